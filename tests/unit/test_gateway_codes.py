"""The gateway code tables against the providers' lists and their classification.

Both are described in docs/interfaces/sms-gateways.md.
"""

from __future__ import annotations

import pytest

from patronlink.domain.gateway_codes import (
    LINKMOBILITY_CODES,
    XML_CODES,
    GatewayCode,
    Outcome,
    linkmobility_code,
    xml_code,
)

# The XML family's list, as the spec prints it (docs/interfaces/sms-gateways.md).
SPEC_XML = """\
1001 Invalid username and/or password.
1002 Invalid phone number specified.
1003 A sender alias is not allowed along with a price.
1004 Message is too long.
1005 Unable to process message.
1006 Invalid country code specified.
1007 No gate specified.
1008 Sender alias is too long.
1009 Specified sender alias not allowed.
1010 No sender alias is allowed for user.
1011 No price is allowed for user.
1012 Invalid price specified.
1013 Invalid timing timestamp.
1014 Timing timestamp already expired.
1015 Timing timestamp not allowed along with by-pass queue.
1016 By-pass queue not allowed for user.
1017 Provider(s) not responding.
1018 Unspecified error.
1019 Invalid short code.
1020 Price specified without shortcode.
1021 Not all mandatory variables set.
1022 Unsupported variables attempted set.
1023 Invalid callbackurl.
1024 Gate not found.
1025 Price/donation not allowed on short code.
1026 Bulk messaging not allowed for country.
1027 Message could not be delivered.
1028 Rejected by provider.
1029 Provider temporarily unavailable.
1030 Unknown subscriber.
1031 Invalid message ID.
1032 Callbackurl set without message ID.
1033 Invalid WAP URL.
1034 Donation not allowed.
1035 Donation specified without price.
1036 WAP message too long. 220 characters maximum.
1037 SMS price not established.
1038 Call from non-approved server.
1039 WAP URL not allowed with binary data.
1040 Invalid port.
1041 Message must be hex values when port is set.
1042 Buffered, e.g. because phone is off.
1043 Invalid port.
1044 Message must be binary.
1045 Binary messages not available.
1046 Gateway temporarily unavailable.
1047 Invalid message category.
1048 Invalid charset"""

SPEC_LINK = """\
101100 Invalid authentication. Please check your username and password.
101101 Access denied. Please check your username and password.
106000 Unknown Error. Please contact Support and include your whole transaction.
106001 Parse Error. The object to send in the request is badly formatted.
106102 Unable to access SMSC credentials
106200 Invalid or missing platformId. Please check your platformId.
106201 Invalid or missing platformPartnerId. Please check your platformPartnerId.
106202 Invalid or missing currency for premium message. Please check your price and currency
106300 No gates available. Please contact Support and include your whole transaction.
106301 Specified gate unavailable. Please check your gateId."""


def _rows(spec: str) -> list[tuple[int, str]]:
    return [
        (int(code), text) for code, _, text in (line.partition(" ") for line in spec.splitlines())
    ]


XML_TEMPORARY = {1017, 1029, 1046}
LINK_TEMPORARY = {106000, 106300, 106301}


@pytest.mark.parametrize(("code", "text"), _rows(SPEC_XML))
def test_xml_code_has_spec_text_and_class(code: int, text: str) -> None:
    if code in XML_TEMPORARY:
        expected = Outcome.TEMPORARY
    elif code == 1042:
        expected = Outcome.BUFFERED
    else:
        expected = Outcome.PERMANENT
    assert xml_code(code) == GatewayCode(code, text, expected)


def test_xml_table_is_exactly_0_and_1001_to_1048() -> None:
    assert set(XML_CODES) == {0, *range(1001, 1049)}
    assert xml_code(0).outcome is Outcome.SENT


@pytest.mark.parametrize("code", [1, 999, 1049, 2000, -1])
def test_unknown_xml_code_is_permanent(code: int) -> None:
    assert xml_code(code).outcome is Outcome.PERMANENT
    assert str(code) in xml_code(code).description


@pytest.mark.parametrize(("code", "text"), _rows(SPEC_LINK))
def test_linkmobility_code_has_spec_text_and_class(code: int, text: str) -> None:
    expected = Outcome.TEMPORARY if code in LINK_TEMPORARY else Outcome.PERMANENT
    assert linkmobility_code(code) == GatewayCode(code, text, expected)


def test_linkmobility_table_is_the_spec_list() -> None:
    assert set(LINKMOBILITY_CODES) == {code for code, _ in _rows(SPEC_LINK)}
    assert linkmobility_code(1005) is None  # a result code of success, not an error status


def test_tables_are_read_only() -> None:
    with pytest.raises(TypeError):
        XML_CODES[0] = GatewayCode(0, "x", Outcome.PERMANENT)  # type: ignore[index]
