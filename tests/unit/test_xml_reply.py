"""Reading XML-family replies: the plain-shape fast path agrees with the XML parser."""

from __future__ import annotations

import defusedxml.ElementTree as safe
import pytest
from hypothesis import given
from hypothesis import strategies as st

from patronlink.gateways.xml import MalformedReply, _plain_reply, parse_reply

_REPLY = (
    '<?xml version="1.0" encoding="iso-8859-1"?>\n<root>\n<msg_id>{id}</msg_id>\n<status>\n'
    "<statusline>\n<code>{code}</code>\n<description>{desc}</description>\n</statusline>\n"
    "</status>\n</root>\n"
)


@given(
    st.integers(min_value=0, max_value=99999),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=255), max_size=40),
    st.text(alphabet="abcXYZ0123456789-", max_size=12),
)
def test_plain_reply_fast_path_agrees_with_the_parser(code: int, desc: str, msg_id: str) -> None:
    body = _REPLY.format(id=msg_id, code=code, desc=desc).encode("iso-8859-1")
    try:
        root = safe.fromstring(body, forbid_dtd=True)
    except Exception:  # noqa: BLE001 - e.g. "<" or "&" in the description: not plain either
        assert _plain_reply(body) is None
        return
    expected = (
        code,
        (root.findtext("status/statusline/description") or "").strip(),
        (root.findtext("msg_id") or "").strip() or None,
    )
    assert parse_reply(body) == expected


def test_the_spec_reply_takes_the_fast_path() -> None:
    body = _REPLY.format(id="", code=0, desc="SMS afsendt.").encode("iso-8859-1")
    assert _plain_reply(body) == (0, "SMS afsendt.", None)
    latin = _REPLY.format(id="7", code=1042, desc="Buffered, e.g. because phone is off. æøå")
    assert _plain_reply(latin.encode("iso-8859-1"))[2] == "7"  # type: ignore[index]
    assert parse_reply(latin.encode("iso-8859-1"))[1].endswith("æøå")


def test_entities_and_dtds_never_take_the_fast_path() -> None:
    assert _plain_reply(_REPLY.format(id="1", code=0, desc="a &amp; b").encode()) is None
    bomb = b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY e "x">]><root/>'
    assert _plain_reply(bomb) is None
    with pytest.raises(MalformedReply):
        parse_reply(bomb)
