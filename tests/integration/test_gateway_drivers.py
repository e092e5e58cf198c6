"""Every SMS driver over real HTTP against the spec-speaking gateways of tests/support.

First one contract that every entry of ``DRIVERS`` must meet, then each family's wire details.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, replace
from typing import Any, cast
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from patronlink.domain.errors import (
    ConfigError,
    GatewayError,
    InvalidPhoneNumber,
    PermanentGatewayError,
    TemporaryGatewayError,
)
from patronlink.domain.gateway_codes import LINKMOBILITY_CODES, Outcome
from patronlink.gateways.base import GatewayConfig, OutgoingSms, SendResult, SmsGateway
from patronlink.gateways.console import ConsoleGateway
from patronlink.gateways.linkmobility import LinkMobilityGateway
from patronlink.gateways.registry import DRIVERS, build_gateway
from tests.support.gateway_servers import (
    GatewayApiServer,
    KannelServer,
    LinkMobilityServer,
    Reply,
    ScriptedGateway,
    XmlGatewayServer,
)
from tests.support.processes import free_port

pytestmark = pytest.mark.anyio

CPH = ZoneInfo("Europe/Copenhagen")
TO = "+4552903991"
EMOJI = "\N{GRINNING FACE}"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@asynccontextmanager
async def gateway_for(
    config: GatewayConfig, client: aiohttp.ClientSession | None = None
) -> AsyncIterator[SmsGateway]:
    gateway = build_gateway(config, client)
    try:
        yield gateway
    finally:
        await gateway.aclose()


async def send(config: GatewayConfig, message: OutgoingSms) -> SendResult:
    async with gateway_for(config) as gateway:
        return await gateway.send(message)


# -- the contract every driver meets ---------------------------------------------------------------


@dataclass(frozen=True)
class Failure:
    """A scripted failure and what the raised error must carry."""

    http_status: int | None
    code: str | None
    description: str


class Harness:
    """Points a driver at its gateway and scripts that gateway's replies."""

    server: ScriptedGateway | None = None

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config

    def fail(self, gateway: SmsGateway, *, temporary: bool) -> Failure:
        raise NotImplementedError


class XmlHarness(Harness):
    def __init__(self, server: XmlGatewayServer) -> None:
        super().__init__(GatewayConfig("xml", url=server.url, username="u", password="p"))
        self.server = server

    def fail(self, gateway: SmsGateway, *, temporary: bool) -> Failure:
        code, text = (1029, "Provider temporarily unavailable.") if temporary else (1002, "Nej")
        assert self.server is not None
        self.server.enqueue(XmlGatewayServer.code_reply(code, text))
        return Failure(200, str(code), text)


class LinkHarness(Harness):
    def __init__(self, server: LinkMobilityServer) -> None:
        config = GatewayConfig(
            "linkmobility",
            url=server.url,
            username=server.username,
            password=server.password,
            platform_id="COMMON_API",
            platform_partner_id="22928",
            source="Cicero",
        )
        super().__init__(config)
        self.server = server

    def fail(self, gateway: SmsGateway, *, temporary: bool) -> Failure:
        assert self.server is not None
        if temporary:
            self.server.enqueue(LinkMobilityServer.error_reply(503, 106300, "No gates available"))
            return Failure(503, "106300", "No gates available")
        self.server.enqueue(LinkMobilityServer.spec_error(403))
        return Failure(403, "101101", "Access denied")


class KannelHarness(Harness):
    def __init__(self, server: KannelServer) -> None:
        config = GatewayConfig(
            "kannel", url=server.url, username=server.username, password=server.password
        )
        super().__init__(config)
        self.server = server

    def fail(self, gateway: SmsGateway, *, temporary: bool) -> Failure:
        assert self.server is not None
        if temporary:
            self.server.enqueue(KannelServer.unavailable())
            return Failure(503, None, "kannel: Sending failed.")
        self.server.enqueue(Reply(400, "Invalid content, rejected", "text/html"))
        return Failure(400, None, "kannel: Invalid content, rejected")


class GatewayApiHarness(Harness):
    def __init__(self, server: GatewayApiServer) -> None:
        super().__init__(
            GatewayConfig("gatewayapi", url=server.base_url, token=server.token, source="Cicero")
        )
        self.server = server

    def fail(self, gateway: SmsGateway, *, temporary: bool) -> Failure:
        assert self.server is not None
        if temporary:
            self.server.enqueue(Reply(500, '{"message": "Internal error"}', "application/json"))
            return Failure(500, None, "Internal error")
        self.server.enqueue(GatewayApiServer.forbidden())
        return Failure(403, "0x0213", "Unauthorized IP-address: 1.2.3.4")


class ConsoleHarness(Harness):
    def __init__(self) -> None:
        super().__init__(GatewayConfig("console"))

    def fail(self, gateway: SmsGateway, *, temporary: bool) -> Failure:
        kind = TemporaryGatewayError if temporary else PermanentGatewayError
        cast(ConsoleGateway, gateway).fail_next(kind("scripted", http_status=None, code="X"))
        return Failure(None, "X", "scripted")


@contextmanager
def harness_for(driver: str) -> Iterator[Harness]:
    if driver == "console":
        yield ConsoleHarness()
        return
    servers: dict[str, type[ScriptedGateway]] = {
        "xml": XmlGatewayServer,
        "linkmobility": LinkMobilityServer,
        "kannel": KannelServer,
        "gatewayapi": GatewayApiServer,
    }
    harnesses: dict[str, Any] = {
        "xml": XmlHarness,
        "linkmobility": LinkHarness,
        "kannel": KannelHarness,
        "gatewayapi": GatewayApiHarness,
    }
    with servers[driver]() as server:
        yield harnesses[driver](server)


HTTP_DRIVERS = sorted(set(DRIVERS) - {"console"})


def test_registry_lists_the_five_families() -> None:
    assert set(DRIVERS) == {"xml", "linkmobility", "kannel", "console", "gatewayapi"}


def test_unknown_driver_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown SMS driver 'smoke-signals'"):
        build_gateway(GatewayConfig("smoke-signals"))


@pytest.fixture(params=sorted(DRIVERS))
def harness(request: pytest.FixtureRequest) -> Iterator[Harness]:
    with harness_for(request.param) as harness:
        yield harness


async def test_contract_success(harness: Harness) -> None:
    async with gateway_for(harness.config) as gateway:
        assert gateway.name == harness.config.driver
        result = await gateway.send(OutgoingSms(TO, "Hej fra biblioteket"))
    assert isinstance(result, SendResult)
    assert result.buffered is False
    if harness.server is not None:
        [request] = harness.server.requests
        assert "Hej fra biblioteket" in (
            request.form.get("message"),
            request.query.get("text"),
            (request.json or {}).get("userData"),
            (request.json or {}).get("message"),
        )


@pytest.mark.parametrize("temporary", [True, False], ids=["temporary", "permanent"])
async def test_contract_failures_are_classified(harness: Harness, *, temporary: bool) -> None:
    expected_class = TemporaryGatewayError if temporary else PermanentGatewayError
    async with gateway_for(harness.config) as gateway:
        expected = harness.fail(gateway, temporary=temporary)
        with pytest.raises(GatewayError) as caught:
            await gateway.send(OutgoingSms(TO, "Hej"))
    assert type(caught.value) is expected_class
    assert caught.value.http_status == expected.http_status
    assert caught.value.code == expected.code
    assert caught.value.description == expected.description


@pytest.mark.parametrize("driver", HTTP_DRIVERS)
async def test_contract_timeout_is_temporary(driver: str) -> None:
    with harness_for(driver) as harness:
        assert harness.server is not None
        harness.server.default = Reply(delay=10)
        config = replace(harness.config, read_timeout=0.3)
        started = time.monotonic()
        with pytest.raises(TemporaryGatewayError, match="timed out"):
            await send(config, OutgoingSms(TO, "Hej"))
        assert time.monotonic() - started < 3


@pytest.mark.parametrize("driver", HTTP_DRIVERS)
async def test_contract_refused_connection_is_temporary(driver: str) -> None:
    secret = "s3cr3t/p@ss"
    config = GatewayConfig(
        driver,
        url=f"http://127.0.0.1:{free_port()}/cgi-bin/sendsms",
        username="u",
        password=secret,
    )
    with pytest.raises(TemporaryGatewayError) as caught:
        await send(config, OutgoingSms(TO, "Hej"))
    assert caught.value.__cause__ is not None  # translated with "raise ... from"
    assert secret not in str(caught.value)
    assert "s3cr3t" not in repr(config)


@pytest.mark.parametrize("driver", HTTP_DRIVERS)
async def test_contract_dropped_connection_and_5xx_are_temporary(driver: str) -> None:
    with harness_for(driver) as harness:
        assert harness.server is not None
        # aiohttp retries an idempotent GET (Kannel's sendsms) once on a dropped connection.
        drops = [Reply(drop=True)] * (2 if driver == "kannel" else 1)
        harness.server.enqueue(*drops, Reply(500, "boom"))
        async with gateway_for(harness.config) as gateway:
            with pytest.raises(TemporaryGatewayError):
                await gateway.send(OutgoingSms(TO, "Hej"))
            with pytest.raises(TemporaryGatewayError) as caught:
                await gateway.send(OutgoingSms(TO, "Hej"))
        assert caught.value.http_status == 500


@pytest.mark.parametrize("driver", HTTP_DRIVERS)
async def test_contract_borrowed_client_is_not_closed(driver: str) -> None:
    with harness_for(driver) as harness:
        async with aiohttp.ClientSession() as client:
            async with gateway_for(harness.config, client) as gateway:
                await gateway.send(OutgoingSms(TO, "Hej"))
            assert not client.closed


# -- XML family (docs/interfaces/sms-gateways.md) --------------------------------------------------


@pytest.fixture
def xml_server() -> Iterator[XmlGatewayServer]:
    with XmlGatewayServer() as server:
        yield server


def xml_config(server: XmlGatewayServer) -> GatewayConfig:
    return GatewayConfig(
        "xml",
        url=server.url,
        username="user1",
        password="password123",
        country_code="45",
        timezone="Europe/Copenhagen",
    )


@pytest.mark.parametrize(
    "send_at",
    [
        dt.datetime(2016, 11, 29, 8, 0, tzinfo=CPH),
        dt.datetime(2016, 11, 29, 7, 0, tzinfo=dt.UTC),  # the same instant, given in UTC
    ],
)
async def test_xml_form_of_a_scheduled_message(
    xml_server: XmlGatewayServer, send_at: dt.datetime
) -> None:
    await send(xml_config(xml_server), OutgoingSms(TO, "Hej", send_at=send_at))
    [request] = xml_server.requests
    assert request.method == "POST"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert request.form == {
        "user": "user1",
        "pass": "password123",
        "number": "52903991",
        "message": "Hej",
        "charset": "UTF-8",
        "sendtiming": "201611290800",
    }


async def test_xml_sendtiming_is_absent_when_not_scheduled(xml_server: XmlGatewayServer) -> None:
    await send(xml_config(xml_server), OutgoingSms(TO, "Hej æøå €"))
    [request] = xml_server.requests
    assert "sendtiming" not in request.form
    assert "sendtiming" not in request.body.decode()
    assert request.form["message"] == "Hej æøå €"


@pytest.mark.parametrize(
    ("to", "number"), [("+4552903991", "52903991"), ("+4712345678", "4712345678")]
)
async def test_xml_number_is_national_only_for_the_agency_country(
    xml_server: XmlGatewayServer, to: str, number: str
) -> None:
    await send(xml_config(xml_server), OutgoingSms(to, "Hej"))
    assert xml_server.requests[0].form["number"] == number


async def test_xml_spec_success_reply_is_sent(xml_server: XmlGatewayServer) -> None:
    xml_server.enqueue(XmlGatewayServer.spec_success())
    result = await send(xml_config(xml_server), OutgoingSms(TO, "Hej"))
    assert result == SendResult(
        gateway_message_id=None,
        buffered=False,
        http_status=200,
        code="0",
        description="SMS afsendt.",
    )


async def test_xml_message_id_is_kept(xml_server: XmlGatewayServer) -> None:
    xml_server.enqueue(XmlGatewayServer.code_reply(0, "SMS afsendt.", msg_id="A-17"))
    result = await send(xml_config(xml_server), OutgoingSms(TO, "Hej"))
    assert result.gateway_message_id == "A-17"


async def test_xml_1042_is_sent_buffered(xml_server: XmlGatewayServer) -> None:
    xml_server.enqueue(XmlGatewayServer.code_reply(1042))
    result = await send(xml_config(xml_server), OutgoingSms(TO, "Hej"))
    assert result.buffered is True
    assert result.code == "1042"
    assert result.description == "Buffered, e.g. because phone is off."  # the table's text


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (1029, TemporaryGatewayError),
        (1017, TemporaryGatewayError),
        (1046, TemporaryGatewayError),
        (1002, PermanentGatewayError),
        (1001, PermanentGatewayError),
        (4711, PermanentGatewayError),  # not in the spec: "all other codes than 0" are errors
    ],
)
async def test_xml_error_codes(
    xml_server: XmlGatewayServer, code: int, error: type[GatewayError]
) -> None:
    xml_server.enqueue(XmlGatewayServer.code_reply(code, "Ugyldigt nummer: æøå"))
    with pytest.raises(error) as caught:
        await send(xml_config(xml_server), OutgoingSms(TO, "Hej"))
    assert type(caught.value) is error
    assert caught.value.code == str(code)
    assert caught.value.description == "Ugyldigt nummer: æøå"  # decoded as iso-8859-1


@pytest.mark.parametrize(
    "body",
    [
        # An internal entity: must not be expanded into a "sent" reply.
        '<?xml version="1.0" encoding="iso-8859-1"?>\n'
        '<!DOCTYPE root [<!ENTITY ok "0">]>\n'
        "<root><msg_id></msg_id><status><statusline><code>&ok;</code>"
        "<description>SMS afsendt.</description></statusline></status></root>",
        # An external entity: must not be fetched.
        '<?xml version="1.0"?>\n<!DOCTYPE root [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n'
        "<root><status><statusline><code>0</code><description>&x;</description>"
        "</statusline></status></root>",
        # Billion laughs, small.
        '<?xml version="1.0"?>\n<!DOCTYPE root [<!ENTITY a "aaaaaaaaaa">'
        '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>\n'
        "<root><status><statusline><code>0</code><description>&b;</description>"
        "</statusline></status></root>",
    ],
    ids=["internal-entity", "external-entity", "entity-expansion"],
)
async def test_xml_reply_with_dtd_is_malformed_and_not_expanded(
    xml_server: XmlGatewayServer, body: str
) -> None:
    # A 2xx the driver cannot read is sent (issue 16: never text twice), kept as it came: the
    # entities stay unexpanded and nothing is fetched.
    xml_server.enqueue(Reply(200, body, "text/xml"))
    result = await send(xml_config(xml_server), OutgoingSms(TO, "Hej"))
    assert result.description == body.strip()
    assert "root:" not in (result.description or "")
    assert "aaaaaaaaaaaaaaaaaaaa" not in (result.description or "")
    assert result.code is None


@pytest.mark.parametrize(
    ("reply", "error", "http_status"),
    [
        (Reply(503, "Service Unavailable"), TemporaryGatewayError, 503),
        (Reply(429, ""), TemporaryGatewayError, 429),
        (Reply(404, "<html>Not Found</html>", "text/html"), PermanentGatewayError, 404),
    ],
    ids=["503", "429", "404"],
)
async def test_xml_unreadable_replies(
    xml_server: XmlGatewayServer, reply: Reply, error: type[GatewayError], http_status: int
) -> None:
    xml_server.enqueue(reply)
    with pytest.raises(error) as caught:
        await send(xml_config(xml_server), OutgoingSms(TO, "Hej"))
    assert type(caught.value) is error
    assert caught.value.http_status == http_status


@pytest.mark.parametrize(
    "reply",
    [
        XmlGatewayServer.malformed(),
        Reply(200, "<root><status/></root>", "text/xml"),
        Reply(200, "OK", "text/plain"),
    ],
    ids=["truncated", "no-code", "not-xml"],
)
async def test_xml_unrecognised_2xx_is_sent_with_the_reply_kept(
    xml_server: XmlGatewayServer, reply: Reply, caplog: pytest.LogCaptureFixture
) -> None:
    xml_server.enqueue(reply)
    with caplog.at_level(logging.WARNING, logger="patronlink.gateways.xml"):
        result = await send(xml_config(xml_server), OutgoingSms(TO, "Hej"))
    assert (result.http_status, result.code, result.buffered) == (200, None, False)
    assert result.description == reply.payload().decode().strip()
    assert "unrecognised 2xx reply taken as sent" in caplog.text
    assert len(xml_server.requests) == 1


async def test_xml_code_in_an_error_status_is_classified_by_the_code(
    xml_server: XmlGatewayServer,
) -> None:
    xml_server.enqueue(replace(XmlGatewayServer.code_reply(1001, "Forkert login"), status=401))
    with pytest.raises(PermanentGatewayError) as caught:
        await send(xml_config(xml_server), OutgoingSms(TO, "Hej"))
    assert (caught.value.http_status, caught.value.code) == (401, "1001")


async def test_xml_number_without_a_country_is_permanent(xml_server: XmlGatewayServer) -> None:
    with pytest.raises(PermanentGatewayError):
        await send(xml_config(xml_server), OutgoingSms("+99912345678", "Hej"))
    assert xml_server.requests == []


# -- LINK Mobility (docs/interfaces/sms-gateways.md) -----------------------------------------------


@pytest.fixture
def link_server() -> Iterator[LinkMobilityServer]:
    with LinkMobilityServer(username="cicero", password="link pass:æ") as server:
        yield server


def link_config(server: LinkMobilityServer, password: str = "link pass:æ") -> GatewayConfig:
    return GatewayConfig(
        "linkmobility",
        url=server.url,
        username="cicero",
        password=password,
        platform_id="COMMON_API",
        platform_partner_id="22928",
        source="Cicero",
    )


async def link_send(
    server: LinkMobilityServer, message: OutgoingSms, now: dt.datetime | None = None
) -> SendResult:
    clock_now = now or dt.datetime(2017, 6, 1, 12, 0, tzinfo=dt.UTC)
    gateway = LinkMobilityGateway(link_config(server), clock=lambda: clock_now)
    try:
        return await gateway.send(message)
    finally:
        await gateway.aclose()


async def test_link_body_and_auth_as_in_the_spec(link_server: LinkMobilityServer) -> None:
    result = await link_send(link_server, OutgoingSms(TO, "Hi xxx, Please note that yyy zzz"))
    [request] = link_server.requests
    assert request.method == "POST"
    assert request.headers["content-type"] == "application/json"
    assert request.basic_auth() == ("cicero", "link pass:æ")
    assert request.json == {
        "source": "Cicero",
        "destination": "+4552903991",
        "userData": "Hi xxx, Please note that yyy zzz",
        "platformId": "COMMON_API",
        "platformPartnerId": "22928",
        # LINK's MT API 1.18: useDeliveryReport defaults to true and must be false when no
        # delivery-report gate is named; the TON is read from the sender.
        "sourceTON": "ALPHANUMERIC",
        "useDeliveryReport": False,
    }
    assert result == SendResult(
        gateway_message_id="3XSdZm3c23ZjLv4T5e3NiR",
        buffered=False,
        http_status=200,
        code="1005",
        description="Queued",
    )


async def test_link_scheduled_time_is_rfc3339(link_server: LinkMobilityServer) -> None:
    send_at = dt.datetime(2017, 6, 7, 17, 30, tzinfo=CPH)  # 15:30Z, the spec's example
    await link_send(link_server, OutgoingSms(TO, "Hej", send_at=send_at))
    body = link_server.requests[0].json
    assert list(body) == [
        "source",
        "destination",
        "userData",
        "platformId",
        "platformPartnerId",
        "sourceTON",
        "useDeliveryReport",
        "customParameters",
    ]
    assert body["customParameters"] == {"scheduledTime": "2017-06-07T15:30:00Z"}


@pytest.mark.parametrize(
    ("send_at", "allowed"),
    [
        (dt.datetime(2017, 9, 1, 12, 0, tzinfo=dt.UTC), True),  # exactly three months
        (dt.datetime(2017, 9, 1, 12, 1, tzinfo=dt.UTC), False),
        (dt.datetime(2018, 1, 1, tzinfo=dt.UTC), False),
    ],
)
async def test_link_refuses_a_schedule_beyond_three_months(
    link_server: LinkMobilityServer, send_at: dt.datetime, *, allowed: bool
) -> None:
    message = OutgoingSms(TO, "Hej", send_at=send_at)
    if allowed:
        await link_send(link_server, message)
        assert len(link_server.requests) == 1
    else:
        with pytest.raises(PermanentGatewayError, match="3 months"):
            await link_send(link_server, message)
        assert link_server.requests == []


async def test_link_replaces_four_byte_characters(link_server: LinkMobilityServer) -> None:
    await link_send(link_server, OutgoingSms(TO, f"Tak {EMOJI} – æøå €"))
    assert link_server.requests[0].json["userData"] == "Tak ? – æøå €"


async def test_link_204_is_sent(link_server: LinkMobilityServer) -> None:
    link_server.enqueue(Reply(204))
    result = await link_send(link_server, OutgoingSms(TO, "Hej"))
    assert (result.gateway_message_id, result.http_status, result.buffered) == (None, 204, False)


async def test_link_spec_error_reply(link_server: LinkMobilityServer) -> None:
    link_server.enqueue(LinkMobilityServer.spec_error(403))
    with pytest.raises(PermanentGatewayError) as caught:
        await link_send(link_server, OutgoingSms(TO, "Hej"))
    assert (caught.value.http_status, caught.value.code) == (403, "101101")
    assert caught.value.description == "Access denied"


async def test_link_wrong_credentials_are_permanent(link_server: LinkMobilityServer) -> None:
    gateway = build_gateway(link_config(link_server, password="wrong"))
    try:
        with pytest.raises(PermanentGatewayError) as caught:
            await gateway.send(OutgoingSms(TO, "Hej"))
    finally:
        await gateway.aclose()
    assert (caught.value.http_status, caught.value.code) == (401, "101101")
    assert "wrong" not in str(caught.value)


@pytest.mark.parametrize("status", sorted(LINKMOBILITY_CODES))
async def test_link_error_status_is_classified_by_the_table(
    link_server: LinkMobilityServer, status: int
) -> None:
    entry = LINKMOBILITY_CODES[status]
    link_server.enqueue(LinkMobilityServer.error_reply(400, status, ""))
    expected = (
        TemporaryGatewayError if entry.outcome is Outcome.TEMPORARY else PermanentGatewayError
    )
    with pytest.raises(GatewayError) as caught:
        await link_send(link_server, OutgoingSms(TO, "Hej"))
    assert type(caught.value) is expected
    assert caught.value.code == str(status)
    assert caught.value.description == entry.description  # the reply had none: the spec's


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (Reply(429, ""), TemporaryGatewayError),
        (Reply(502, "<html>Bad Gateway</html>", "text/html"), TemporaryGatewayError),
        (LinkMobilityServer.error_reply(500, 999999, "Unlisted"), TemporaryGatewayError),
        (LinkMobilityServer.error_reply(422, 999999, "Unlisted"), PermanentGatewayError),
        (Reply(400, "not json"), PermanentGatewayError),
    ],
    ids=["429", "502", "500-unlisted", "422-unlisted", "400-no-json"],
)
async def test_link_classifies_by_http_status_without_a_listed_code(
    link_server: LinkMobilityServer, reply: Reply, error: type[GatewayError]
) -> None:
    link_server.enqueue(reply)
    with pytest.raises(error) as caught:
        await link_send(link_server, OutgoingSms(TO, "Hej"))
    assert type(caught.value) is error
    assert caught.value.http_status == reply.status


# -- Kannel sendsms --------------------------------------------------------------------------------


@pytest.fixture
def kannel_server() -> Iterator[KannelServer]:
    with KannelServer() as server:
        yield server


def kannel_config(server: KannelServer) -> GatewayConfig:
    return GatewayConfig(
        "kannel",
        url=server.url,
        username=server.username,
        password=server.password,
        source="Horsens Bib",
    )


@pytest.mark.parametrize(
    ("text", "coding"),
    [
        ("Hej æøå {€}", None),
        ("Привет", "2"),
        (f"Tak {EMOJI}", "2"),
    ],
)
async def test_kannel_query(kannel_server: KannelServer, text: str, coding: str | None) -> None:
    result = await send(kannel_config(kannel_server), OutgoingSms(TO, text))
    [request] = kannel_server.requests
    assert request.method == "GET"
    assert request.path == "/cgi-bin/sendsms"
    expected = {
        "username": "kannel-user",
        "password": "kannel-secret",
        "to": "+4552903991",
        "from": "Horsens Bib",
        "text": text,
        "charset": "UTF-8",
    }
    if coding:
        expected["coding"] = coding
    assert request.query == expected
    assert result == SendResult(None, False, 202, "0", "Accepted for delivery")


async def test_kannel_queued_is_sent_buffered(kannel_server: KannelServer) -> None:
    kannel_server.enqueue(KannelServer.queued())
    result = await send(kannel_config(kannel_server), OutgoingSms(TO, "Hej"))
    assert (result.buffered, result.code) == (True, "3")


@pytest.mark.parametrize(
    ("password", "status", "error"),
    [
        ("wrong", 403, PermanentGatewayError),
        (None, 503, TemporaryGatewayError),
    ],
)
async def test_kannel_errors(
    kannel_server: KannelServer,
    password: str | None,
    status: int,
    error: type[GatewayError],
) -> None:
    if status == 503:
        kannel_server.enqueue(KannelServer.unavailable())
    config = kannel_config(kannel_server)
    if password is not None:
        config = replace(config, password=password)
    with pytest.raises(error) as caught:
        await send(config, OutgoingSms(TO, "Hej"))
    assert caught.value.http_status == status
    assert "wrong" not in str(caught.value)


async def test_kannel_cannot_schedule(kannel_server: KannelServer) -> None:
    send_at = dt.datetime(2030, 1, 1, 8, 0, tzinfo=CPH)
    with pytest.raises(PermanentGatewayError, match="cannot schedule"):
        await send(kannel_config(kannel_server), OutgoingSms(TO, "Hej", send_at=send_at))
    assert kannel_server.requests == []


# -- console ---------------------------------------------------------------------------------------


async def test_console_logs_and_records(caplog: pytest.LogCaptureFixture) -> None:
    gateway = ConsoleGateway(GatewayConfig("console"))
    with caplog.at_level(logging.INFO, logger="patronlink.gateways.console"):
        result = await gateway.send(OutgoingSms(TO, "Hej fra konsollen"))
    assert result.gateway_message_id is not None
    assert result.gateway_message_id.startswith("console-")
    assert gateway.sent == [OutgoingSms(TO, "Hej fra konsollen")]
    assert "Hej fra konsollen" in caplog.text
    assert TO in caplog.text


# -- the message itself ----------------------------------------------------------------------------


def test_outgoing_sms_requires_e164_and_an_aware_time() -> None:
    with pytest.raises(InvalidPhoneNumber):
        OutgoingSms("52903991", "Hej")
    with pytest.raises(ValueError, match="aware"):
        OutgoingSms(TO, "Hej", send_at=dt.datetime(2030, 1, 1))  # noqa: DTZ001 - the point
