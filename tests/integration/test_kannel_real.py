"""The Kannel driver against a real Kannel: bearerbox + smsbox, with fakesmsc as the SMSC.

Needs Debian's ``kannel`` and ``kannel-extras`` packages (fakesmsc is in the latter). Without them
the test is skipped on a workstation and fails in CI (``CI=true``), where it must run.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from patronlink.domain.errors import PermanentGatewayError
from patronlink.gateways.base import GatewayConfig, OutgoingSms
from patronlink.gateways.registry import build_gateway
from tests.support.kannel import SENDSMS_PASSWORD, SENDSMS_USERNAME, Kannel, running_kannel

pytestmark = pytest.mark.anyio

SENDER = "HorsensBib"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def kannel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kannel]:
    with running_kannel(tmp_path_factory.mktemp("kannel")) as running:
        yield running


def _config_for(kannel: Kannel, password: str = SENDSMS_PASSWORD) -> GatewayConfig:
    return GatewayConfig(
        "kannel",
        url=kannel.sendsms_url,
        username=SENDSMS_USERNAME,
        password=password,
        source=SENDER,
    )


async def test_gsm_text_reaches_the_smsc(kannel: Kannel) -> None:
    before = len(kannel.received())
    text = "Hej Anna, dit lån er fornyet til 24/12 {€}"
    gateway = build_gateway(_config_for(kannel))
    try:
        result = await gateway.send(OutgoingSms("+4552903991", text))
    finally:
        await gateway.aclose()
    assert (result.http_status, result.code, result.buffered) == (202, "0", False)
    got = kannel.wait_for_message(before + 1)[before]
    assert (got.sender, got.receiver, got.kind, got.data) == (SENDER, "+4552903991", "text", text)


async def test_ucs2_text_reaches_the_smsc(kannel: Kannel) -> None:
    before = len(kannel.received())
    text = "Привет, книга ждёт \N{GRINNING FACE}"
    gateway = build_gateway(_config_for(kannel))
    try:
        await gateway.send(OutgoingSms("+4712345678", text))
    finally:
        await gateway.aclose()
    got = kannel.wait_for_message(before + 1)[before]
    assert (got.sender, got.receiver, got.kind) == (SENDER, "+4712345678", "ucs-2")
    assert got.text == text


async def test_wrong_password_is_permanent(kannel: Kannel) -> None:
    gateway = build_gateway(_config_for(kannel, password="not-the-password"))
    try:
        with pytest.raises(PermanentGatewayError) as caught:
            await gateway.send(OutgoingSms("+4552903991", "Hej"))
    finally:
        await gateway.aclose()
    assert caught.value.http_status == 403
    assert "not-the-password" not in str(caught.value)


async def test_danish_reply_reaches_the_smsc_intact(kannel: Kannel) -> None:
    """A renewal reply with Danish letters and an en dash reaches the SMSC byte for byte."""
    before = len(kannel.received())
    text = "Lån fornyet – Æblet Ørn Åen"
    gateway = build_gateway(_config_for(kannel))
    try:
        await gateway.send(OutgoingSms("+4552903991", text))
    finally:
        await gateway.aclose()
    got = kannel.wait_for_message(before + 1)[before]
    assert (got.receiver, got.kind) == ("+4552903991", "ucs-2")  # the en dash is not in GSM-7
    assert got.text == text
