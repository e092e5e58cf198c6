"""The Kannel driver against a real Kannel: bearerbox + smsbox, with fakesmsc as the SMSC.

Needs Debian's ``kannel`` and ``kannel-extras`` packages (fakesmsc is in the latter). Without them
the test is skipped on a workstation and fails in CI (``CI=true``), where it must run.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from patronlink.config.schema import AgencySettings
from patronlink.domain.agency import Agency
from patronlink.domain.errors import PermanentGatewayError
from patronlink.gateways.base import GatewayConfig, OutgoingSms
from patronlink.gateways.registry import build_gateway
from patronlink.settings import Settings
from patronlink.storage.database import Database
from patronlink.storage.outbox import NewMessage
from patronlink.web.app import create_app
from patronlink.worker.dispatcher import Dispatcher
from tests.conftest import FrozenClock
from tests.support.kannel import SENDSMS_PASSWORD, SENDSMS_USERNAME, Kannel, running_kannel
from tests.support.live_server import live_server

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


# -- delivery reports (issue 16) ---------------------------------------------------------------


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def test_kannel_report_marks_the_text_delivered(
    kannel: Kannel, db: Database, settings: Settings, clock: FrozenClock
) -> None:
    """The kannel driver asks for dlr-mask=31 with its dlr-url; fakesmsc answers with a type 8
    and then a type 1 report, which Kannel calls back with, and the text ends ``delivered``."""
    with db.transaction() as repos:
        repos.agencies.upsert(
            Agency(id="DK-761500", name="Horsens"),
            AgencySettings.model_validate(
                {
                    "sms": {
                        "driver": "kannel",
                        "url": kannel.sendsms_url,
                        "username": SENDSMS_USERNAME,
                        "password": SENDSMS_PASSWORD,
                        "source": SENDER,
                    }
                }
            ),
            clock(),
        )
    now = clock()
    with db.transaction() as repos:
        [message_id] = repos.outbox.enqueue(
            [NewMessage("DK-761500", "+4552903991", "Din bog er klar", "GSM-7", 1, "staff", now)],
            now,
        )
    with live_server(create_app(settings, db, clock)) as url:
        dispatcher = Dispatcher(db, clock, build_gateway, public_url=url)
        asyncio.run(_dispatch_once(dispatcher))
        deadline = time.monotonic() + 20
        while (row := _message(db, message_id))["delivery"] != "delivered":
            assert time.monotonic() < deadline, f"{row}\n{kannel.logs()}"
            time.sleep(0.1)
    assert (row["status"], row["delivery_code"]) == ("sent", "1")
    assert row["delivery_description"].startswith("Delivered to phone")
    # Kannel logs the URL it calls back on: it carries an HMAC, never the password.
    log = (kannel.directory / "smsbox.log").read_text(errors="replace")
    callbacks = [line for line in log.splitlines() if "/sms/dlr/kannel/" in line]
    assert callbacks
    assert not any("s3cret" in line or "password" in line for line in callbacks)


async def _dispatch_once(dispatcher: Dispatcher) -> None:
    try:
        await dispatcher.run(once=True)
    finally:
        await dispatcher.aclose()


def _message(db: Database, message_id: int) -> dict[str, Any]:
    with db.transaction() as repos:
        found = repos.outbox.get(message_id)
    assert found is not None
    return found
