"""Reading PUT bodies and writing the replies of the Aleph New Patron API (pure, no I/O)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote_plus
from xml.etree.ElementTree import canonicalize

import pytest
from hypothesis import given
from hypothesis import strategies as st

from patronlink.domain.registration import SPEC_FORM, Problem
from patronlink.web.aleph_xml import (
    MAX_BODY_BYTES,
    REPLY_CODES,
    XmlRefused,
    created_reply,
    error_reply,
    form_reply,
    parse_new_patron,
    xml_text,
)

FIXTURES = Path(__file__).parent.parent / "fixtures"
SPEC_GET = (FIXTURES / "aleph_get_example.xml").read_text("utf-8")
SPEC_PUT = (FIXTURES / "aleph_put_body.txt").read_bytes()
SPEC_PUT_REPLY = (FIXTURES / "aleph_put_reply.xml").read_text("utf-8")
SPEC_XML = SPEC_PUT.removeprefix(b"post_xml=")


def canonical(xml: str | bytes) -> str:
    text = xml.decode("utf-8") if isinstance(xml, bytes) else xml
    return canonicalize(text, strip_text=True)


def parse(body: bytes) -> dict[str, str]:
    return parse_new_patron(xml_text(body))


def kind_of(body: bytes) -> str:
    with pytest.raises(XmlRefused) as info:
        parse(body)
    return info.value.kind


def test_form_reply_of_the_spec_form_is_the_spec_example() -> None:
    assert canonical(form_reply(SPEC_FORM)) == canonical(SPEC_GET)


def test_created_reply_is_the_spec_reply() -> None:
    assert canonical(created_reply("0044", "0044")) == canonical(SPEC_PUT_REPLY)


def test_spec_put_body_is_read_as_is() -> None:
    fields = parse(SPEC_PUT)
    assert fields["patron-name"] == "Richardson, James the 1st"
    assert fields["home-library"] == "LAW "  # trimmed later, by validation
    assert fields["address-4"] == ""
    assert list(fields)[:3] == ["patron-name", "internal-id", "local-sub-library"]
    assert len(fields) == 35


@pytest.mark.parametrize(
    "body",
    [
        SPEC_PUT,
        b"post_xml=" + quote_plus(SPEC_XML.decode()).encode(),
        b"post_xml=%3C%3Fxml%20version%3D%221.0%22%3F%3E" + quote_plus(SPEC_XML[38:]).encode(),
        SPEC_XML,
        b"\r\n  " + SPEC_PUT,
        b"\xef\xbb\xbf" + SPEC_XML,
        b"submit=Send&post_xml=" + quote_plus(SPEC_XML.decode()).encode(),
    ],
    ids=["raw", "urlencoded", "percent", "bare", "leading-space", "bom", "second-param"],
)
def test_every_body_shape_gives_the_same_fields(body: bytes) -> None:
    assert parse(body) == parse(SPEC_PUT)


def test_raw_xml_keeps_plus_and_ampersand() -> None:
    body = (
        b"post_xml=<get-new-patron><new-patron><patron-name>A &amp; B</patron-name>"
        b"<telephone-1>+45 52903991</telephone-1></new-patron></get-new-patron>"
    )
    assert parse(body) == {"patron-name": "A & B", "telephone-1": "+45 52903991"}


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (b"", "malformed"),
        (b"hello", "malformed"),
        (b"post_xml=", "malformed"),
        (b"post_xml=<get-new-patron>", "malformed"),
        (b"<put-new-patron><new-patron/></put-new-patron>", "malformed"),
        (b"<get-new-patron/>", "malformed"),
        (b"<get-new-patron><new-patron/><new-patron/></get-new-patron>", "malformed"),
        (
            b"<get-new-patron><new-patron><zip>1</zip><zip>2</zip></new-patron></get-new-patron>",
            "malformed",
        ),
        (
            b"<get-new-patron><new-patron><zip><a/></zip></new-patron></get-new-patron>",
            "malformed",
        ),
        (b"<get-new-patron><new-patron><zip>\xff</zip></new-patron></get-new-patron>", "not-utf8"),
        (b"post_xml=%3Cget-new-patron%3E%FF", "not-utf8"),
        (b"x" * (MAX_BODY_BYTES + 1), "too-large"),
        (b"<a>" * 9 + b"</a>" * 9, "too-deep"),
    ],
)
def test_bad_bodies_are_refused_by_kind(body: bytes, kind: str) -> None:
    assert kind_of(body) == kind


XXE = b"""post_xml=<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>
<get-new-patron><new-patron><patron-name>&e;</patron-name></new-patron></get-new-patron>"""

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<get-new-patron><new-patron><patron-name>&lol9;</patron-name></new-patron></get-new-patron>"""


@pytest.mark.parametrize(
    "body",
    [
        XXE,
        BILLION_LAUGHS,
        b'<!DOCTYPE get-new-patron SYSTEM "http://127.0.0.1:9/x.dtd"><get-new-patron/>',
        b"<!DOCTYPE get-new-patron><get-new-patron/>",
    ],
    ids=["xxe", "billion-laughs", "external-dtd", "bare-doctype"],
)
def test_dtds_and_entities_are_refused(body: bytes) -> None:
    with pytest.raises(XmlRefused) as info:
        parse(body)
    assert info.value.kind == "forbidden-xml"
    assert "root:" not in info.value.message


def test_error_reply_carries_code_and_text() -> None:
    reply = error_reply("put-new-patron", "0101", "Mandatory parameters are missing: zip\x00")
    assert canonical(reply) == canonical(
        "<put-new-patron><reply-text>Mandatory parameters are missing: zip\ufffd</reply-text>"
        "<reply-code>0101</reply-code></put-new-patron>"
    )


def test_reply_codes_are_distinct_four_digit_codes() -> None:
    codes = [code for code, _ in REPLY_CODES.values()]
    assert len(codes) == len(set(codes))
    assert all(len(c) == 4 and c.isdigit() for c in codes)
    assert REPLY_CODES["ok"][0] == "0000"
    # Every reason the domain can refuse a registration has its code.
    assert {p.value for p in Problem} <= set(REPLY_CODES)


@given(st.binary(max_size=600))
def test_any_bytes_are_read_or_refused(body: bytes) -> None:
    try:
        fields = parse(body)
    except XmlRefused as exc:
        kind = exc.kind
        assert kind in REPLY_CODES
        return
    assert all(isinstance(v, str) for v in fields.values())


@given(
    st.dictionaries(
        st.text("abcdefghijklmnopqrstuvwxyz-0123456789", min_size=1, max_size=20).filter(
            lambda s: s[0].isalpha()
        ),
        st.text(max_size=30),
        max_size=8,
    )
)
def test_generated_forms_round_trip_through_post_xml(fields: dict[str, str]) -> None:
    from xml.sax.saxutils import escape

    inner = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in fields.items())
    xml = f'<?xml version="1.0" encoding="UTF-8"?><get-new-patron><new-patron>{inner}'
    xml += "</new-patron></get-new-patron>"
    body = ("post_xml=" + quote_plus(xml)).encode()
    try:
        parsed = parse(body)
    except XmlRefused as exc:
        kind = exc.kind
        # Characters XML 1.0 cannot carry, such as most control characters.
        assert kind == "malformed"
        return
    # XML normalises line ends to \n.
    assert parsed == {k: v.replace("\r\n", "\n").replace("\r", "\n") for k, v in fields.items()}
