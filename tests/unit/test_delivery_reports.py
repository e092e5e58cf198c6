"""Delivery reports in the domain: the providers' tables, how reports combine, the parsers of
their callbacks (published examples, then hypothesis), and the senders LINK and GatewayAPI allow."""

from __future__ import annotations

import contextlib
import datetime as dt
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from patronlink.config.schema import SmsConfig
from patronlink.domain.delivery import (
    FINAL,
    GATEWAYAPI_STATUSES,
    KANNEL_DLR_TYPES,
    LINKMOBILITY_RESULT_CODES,
    Delivery,
    after_report,
    after_send,
    kannel_signature,
    message_id_of,
)
from patronlink.domain.errors import ValidationError
from patronlink.domain.provider_formats import (
    gatewayapi_inbound,
    gatewayapi_report,
    kannel_report,
    linkmobility_inbound,
    linkmobility_report,
)
from patronlink.domain.sender import check_linkmobility_source, linkmobility_ton

D, F, P = Delivery.DELIVERED, Delivery.FAILED, Delivery.PENDING


# LINK MT/DLR 1.18 "Result Codes": TEMP rows stay pending, FINAL: DELIVERED is delivered, every
# other FINAL (including the unknown-delivery ones) is failed.
@pytest.mark.parametrize(
    ("code", "state"),
    [
        ("1000", P), ("1001", D), ("1002", F), ("1005", P), ("1006", F), ("1007", D),
        ("1008", P), ("1010", F), ("1012", P), ("2104", F), ("2106", F), ("4", F), ("0", F),
    ],
)  # fmt: skip
def test_linkmobility_table(code: str, state: Delivery) -> None:
    assert LINKMOBILITY_RESULT_CODES[code].state is state


@pytest.mark.parametrize(("kind", "state"), [("1", D), ("2", F), ("4", P), ("8", P), ("16", F)])
def test_kannel_table(kind: str, state: Delivery) -> None:
    assert KANNEL_DLR_TYPES[kind].state is state


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("DELIVERED", D), ("UNDELIVERABLE", F), ("EXPIRED", F), ("REJECTED", F), ("DELETED", F),
        ("SKIPPED", F), ("ENROUTE", P), ("BUFFERED", P), ("SCHEDULED", P), ("ACCEPTED", D),
    ],
)  # fmt: skip
def test_gatewayapi_table(status: str, state: Delivery) -> None:
    assert GATEWAYAPI_STATUSES[status].state is state


STATES = st.sampled_from(list(Delivery))


@given(st.lists(STATES, min_size=1, max_size=8))
def test_a_final_state_is_never_left_whatever_the_order(reports: list[Delivery]) -> None:
    state = Delivery.PENDING
    for report in reports:
        state = after_report(state, report)
    finals = [r for r in reports if r in FINAL]
    assert state is (finals[0] if finals else reports[-1])


def test_the_send_outcome_keeps_a_report_that_came_first() -> None:
    assert after_send(Delivery.DELIVERED, reports_expected=True) is Delivery.DELIVERED
    assert after_send(Delivery.NONE, reports_expected=True) is Delivery.PENDING
    assert after_send(Delivery.NONE, reports_expected=False) is Delivery.NONE


@pytest.mark.parametrize(
    ("value", "expected"),
    [("4711", 4711), (4711, 4711), ("0", None), (0, None), ("foobar", None), (None, None),
     (True, None), ("12" * 10, None), ("-3", None), ("٣", None)],
)  # fmt: skip
def test_message_id_of(value: Any, expected: int | None) -> None:
    assert message_id_of(value) == expected


def test_kannel_signature_depends_on_agency_id_and_secret() -> None:
    base = kannel_signature("pw", "DK-761500", 1)
    assert len(base) == 32
    assert base != kannel_signature("pw", "DK-761500", 2)
    assert base != kannel_signature("pw", "DK-775100", 1)
    assert base != kannel_signature("other", "DK-761500", 1)


def test_link_published_delivered_example() -> None:
    body = {
        "refId": "0", "id": "0", "operator": "no.telenor",
        "sentTimestamp": "2015-11-19T09:37:35Z", "timestamp": "2015-11-19T09:37:00Z",
        "resultCode": 1001, "operatorResultCode": "2", "segments": 1,
        "gateCustomParameters": {}, "customParameters": {"received": "2015-11-19 10:37:36"},
    }  # fmt: skip
    report = linkmobility_report(body)
    assert report.message_id is None  # "0": none of ours
    assert (report.state, report.code) == (Delivery.DELIVERED, "1001")
    assert report.at == dt.datetime(2015, 11, 19, 9, 37, tzinfo=dt.UTC)


def test_link_unknown_result_code_is_intermediate() -> None:
    report = linkmobility_report({"refId": "9", "resultCode": 9999})
    assert (report.message_id, report.state, report.code) == (9, Delivery.PENDING, "9999")


def test_gatewayapi_mo_example() -> None:
    text = gatewayapi_inbound(
        {"id": 1000001, "msisdn": 4587654321, "receiver": 451204, "message": "foo Hello World",
         "senttime": 1450000000, "webhook_label": "test", "country_code": "DK",
         "country_prefix": 45}
    )  # fmt: skip
    assert (text.number, text.shortcode, text.text) == ("+4587654321", "451204", "foo Hello World")


def test_link_mo_example_fields() -> None:
    text = linkmobility_inbound(
        {"destination": "NO-2333", "source": "+4741560067",
         "content": {"type": "SMS", "userData": "Bclt hello", "encoding": "TEXT"}}
    )  # fmt: skip
    assert (text.number, text.shortcode, text.text) == ("+4741560067", "NO-2333", "Bclt hello")


def test_kannel_report_reads_the_filled_in_escapes() -> None:
    report = kannel_report(5, {"type": "16", "at": "1764500000", "reply": "NACK/0x0000000b"})
    assert (report.state, report.code) == (Delivery.FAILED, "16")
    assert report.description == "Non-delivered to SMSC: NACK/0x0000000b"
    assert report.at == dt.datetime.fromtimestamp(1764500000, dt.UTC)
    with pytest.raises(ValidationError):
        kannel_report(5, {"type": "%d"})


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=6)
    ),
    max_leaves=20,
)
KEYS = st.sampled_from(
    ["refId", "resultCode", "operator", "operatorResultCode", "timestamp", "status", "userref",
     "time", "error", "code", "source", "destination", "content", "msisdn", "receiver", "message"]
)  # fmt: skip
SHAPED = st.dictionaries(KEYS, JSON, max_size=8)
PARSERS = [linkmobility_report, gatewayapi_report, linkmobility_inbound, gatewayapi_inbound]


@pytest.mark.parametrize("parse", PARSERS, ids=lambda p: p.__name__)
@given(body=JSON | SHAPED)
def test_parsers_read_or_refuse_never_crash(parse: Any, body: Any) -> None:
    # Anything else (TypeError, KeyError, AttributeError, ...) would be a 500 at the endpoint.
    with contextlib.suppress(ValidationError):
        parse(body)


@given(st.dictionaries(st.sampled_from(["type", "at", "reply"]), st.text(max_size=30)))
def test_kannel_parser_reads_or_refuses(params: dict[str, str]) -> None:
    try:
        report = kannel_report(1, params)
    except ValidationError:
        return
    assert report.state in set(Delivery)


@pytest.mark.parametrize(
    ("source", "ton", "ok"),
    [
        ("1910", None, True), ("HorsensBib", None, True), ("+4552903991", None, True),
        ("Horsens Bibliotek", None, False),  # 17 characters: LINK takes up to 11
        ("Bib&Co", None, False), ("1910", "ALPHANUMERIC", True), ("Horsens", "SHORTNUMBER", False),
        ("123456789012345", None, False), ("+45", None, False),
    ],
)  # fmt: skip
def test_linkmobility_sender_rules(source: str, ton: str | None, *, ok: bool) -> None:
    if ok:
        assert check_linkmobility_source(source, ton) == (ton or linkmobility_ton(source))
    else:
        with pytest.raises(ValidationError):
            check_linkmobility_source(source, ton)


def _sms(**values: Any) -> dict[str, Any]:
    return {
        "driver": "linkmobility", "url": "https://wsx.sp247.net/sms/send", "username": "u",
        "password": "p", "platform_id": "COMMON_API", "platform_partner_id": "1",
        "source": "Horsens", **values,
    }  # fmt: skip


def test_config_validates_the_link_sender_and_ton() -> None:
    assert SmsConfig.model_validate(_sms(source_ton="ALPHANUMERIC", dlr_gate_id="G1")).dlr_gate_id
    with pytest.raises(ValueError, match="sender of type ALPHANUMERIC"):
        SmsConfig.model_validate(_sms(source="Horsens Bibliotek"))
    with pytest.raises(ValueError, match="source_ton"):
        SmsConfig.model_validate(_sms(source_ton="NATIONAL"))


def test_config_gatewayapi_needs_url_and_token_and_a_valid_sender() -> None:
    with pytest.raises(ValueError, match="needs url, token"):
        SmsConfig.model_validate({"driver": "gatewayapi"})
    ok = {"driver": "gatewayapi", "url": "https://gatewayapi.com", "token": "${GWAPI_TOKEN}"}
    assert SmsConfig.model_validate(ok | {"source": "HorsensBib"}).driver == "gatewayapi"
    with pytest.raises(ValueError, match="GatewayAPI takes a sender"):
        SmsConfig.model_validate(ok | {"source": "Horsens Bibliotek"})
