"""Drivers as the providers publish them (issue 16): delivery-report requests, the gatewayapi
driver, and 2xx replies a driver does not recognise (sent once, never again).

Wire shapes come from each provider's published material: LINK Mobility's "SMS REST API - MT and
Delivery Reports" 1.18, GatewayAPI's REST docs (``POST /rest/mtsms``), Kannel's user guide
(``dlr-mask``, ``dlr-url`` escapes). The gateways are real HTTP servers on 127.0.0.1.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest

from patronlink.domain.delivery import kannel_signature
from patronlink.domain.errors import GatewayError, PermanentGatewayError, TemporaryGatewayError
from patronlink.gateways.base import GatewayConfig, OutgoingSms, SendResult
from patronlink.gateways.registry import build_gateway
from tests.support.gateway_servers import (
    GatewayApiServer,
    KannelServer,
    LinkMobilityServer,
    Reply,
)

pytestmark = pytest.mark.anyio

TO = "+4552903991"
PUBLIC = "https://patronlink.example.dk"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def send(config: GatewayConfig, message: OutgoingSms) -> SendResult:
    gateway = build_gateway(config)
    try:
        return await gateway.send(message)
    finally:
        await gateway.aclose()


# -- LINK Mobility ----------------------------------------------------------------------------


@pytest.fixture
def link() -> Iterator[LinkMobilityServer]:
    with LinkMobilityServer() as server:
        yield server


def link_config(server: LinkMobilityServer, **extra: str) -> GatewayConfig:
    return GatewayConfig(
        "linkmobility",
        url=server.url,
        username=server.username,
        password=server.password,
        platform_id="COMMON_API",
        platform_partner_id="22928",
        source="1910",
        agency_id="DK-761500",
        public_url=PUBLIC,
        **extra,
    )


async def test_link_asks_for_reports_at_the_configured_gate(link: LinkMobilityServer) -> None:
    result = await send(
        link_config(link, dlr_gate_id="Gate-7xY"), OutgoingSms(TO, "Hej", message_id=4711)
    )
    body = link.requests[0].json
    assert body["refId"] == "4711"
    assert body["useDeliveryReport"] is True
    assert body["deliveryReportGates"] == ["Gate-7xY"]
    assert body["sourceTON"] == "SHORTNUMBER"  # "1910": digits only
    assert result.reports_expected is True


async def test_link_without_a_gate_asks_for_no_reports(link: LinkMobilityServer) -> None:
    result = await send(link_config(link), OutgoingSms(TO, "Hej", message_id=4711))
    body = link.requests[0].json
    assert body["useDeliveryReport"] is False
    assert "deliveryReportGates" not in body
    assert result.reports_expected is False


@pytest.mark.parametrize(
    ("source", "ton", "expected"),
    [("+4552903991", "", "MSISDN"), ("Horsens", "", "ALPHANUMERIC"), ("1910", "MSISDN", "MSISDN")],
)
async def test_link_source_ton(
    link: LinkMobilityServer, source: str, ton: str, expected: str
) -> None:
    config = link_config(link, source_ton=ton)
    config = GatewayConfig(**{**_fields(config), "source": source})
    await send(config, OutgoingSms(TO, "Hej"))
    assert link.requests[0].json["sourceTON"] == expected


def _fields(config: GatewayConfig) -> dict[str, object]:
    return {name: getattr(config, name) for name in config.__slots__}


@pytest.mark.parametrize(
    "reply",
    [Reply(200, '{"resultCode": 1005}', "application/json"), Reply(200, "not json")],
    ids=["no-id", "not-json"],
)
async def test_link_unrecognised_2xx_is_sent_once(
    link: LinkMobilityServer, reply: Reply, caplog: pytest.LogCaptureFixture
) -> None:
    link.enqueue(reply)
    with caplog.at_level(logging.WARNING):
        result = await send(link_config(link), OutgoingSms(TO, "Hej"))
    assert result.gateway_message_id is None
    assert result.description == reply.payload().decode()
    assert "taken as sent" in caplog.text


# -- Kannel ------------------------------------------------------------------------------------


@pytest.fixture
def kannel() -> Iterator[KannelServer]:
    with KannelServer() as server:
        yield server


def kannel_config(server: KannelServer, public_url: str = PUBLIC) -> GatewayConfig:
    return GatewayConfig(
        "kannel",
        url=server.url,
        username=server.username,
        password=server.password,
        agency_id="DK-761500",
        public_url=public_url,
    )


async def test_kannel_asks_for_every_report_with_a_signed_url(kannel: KannelServer) -> None:
    result = await send(kannel_config(kannel), OutgoingSms(TO, "Hej", message_id=4711))
    query = kannel.requests[0].query
    assert query["dlr-mask"] == "31"
    url = query["dlr-url"]
    assert url.startswith(f"{PUBLIC}/sms/dlr/kannel/DK-761500?")
    assert url.endswith("&type=%d&at=%T&reply=%A")  # Kannel's escapes, as Kannel must see them
    params = parse_qs(urlsplit(url.removesuffix("&type=%d&at=%T&reply=%A")).query)
    assert params["id"] == ["4711"]
    assert params["sig"] == [kannel_signature(kannel.password, "DK-761500", 4711)]
    assert kannel.password not in url
    assert result.reports_expected is True


async def test_kannel_without_a_public_url_or_id_asks_for_no_report(kannel: KannelServer) -> None:
    result = await send(kannel_config(kannel), OutgoingSms(TO, "Hej"))
    await send(kannel_config(kannel, public_url=""), OutgoingSms(TO, "Hej", message_id=1))
    assert all("dlr-url" not in r.query and "dlr-mask" not in r.query for r in kannel.requests)
    assert result.reports_expected is False


@pytest.mark.parametrize(
    "reply", [Reply(202, "Sent.", "text/html"), Reply(200, "")], ids=["sent-dot", "empty"]
)
async def test_kannel_older_sent_reply_is_sent_not_retried(
    kannel: KannelServer, reply: Reply, caplog: pytest.LogCaptureFixture
) -> None:
    kannel.enqueue(reply)
    with caplog.at_level(logging.WARNING, logger="patronlink.gateways.kannel"):
        result = await send(kannel_config(kannel), OutgoingSms(TO, "Hej", message_id=5))
    assert (result.http_status, result.code, result.buffered) == (reply.status, None, False)
    assert result.description == (reply.payload().decode().strip() or f"HTTP {reply.status}")
    assert "unrecognised 2xx reply taken as sent" in caplog.text
    assert len(kannel.requests) == 1


# -- GatewayAPI --------------------------------------------------------------------------------


@pytest.fixture
def gwapi() -> Iterator[GatewayApiServer]:
    with GatewayApiServer() as server:
        yield server


def gwapi_config(server: GatewayApiServer, **extra: str) -> GatewayConfig:
    fields: dict[str, str] = {
        "url": server.base_url,
        "token": server.token,
        "source": "HorsensBib",
        "agency_id": "DK-761500",
        "public_url": PUBLIC,
        **extra,
    }
    return GatewayConfig("gatewayapi", **fields)  # type: ignore[arg-type]


async def test_gatewayapi_request_as_documented(gwapi: GatewayApiServer) -> None:
    result = await send(gwapi_config(gwapi), OutgoingSms(TO, "Hej Anna {€}", message_id=4711))
    [request] = gwapi.requests
    assert (request.method, request.path) == ("POST", "/rest/mtsms")
    assert request.headers["content-type"] == "application/json"
    assert request.basic_auth() == (gwapi.token, "")
    assert "token" not in request.query  # never in a URL
    assert request.json == {
        "sender": "HorsensBib",
        "message": "Hej Anna {€}",
        "recipients": [{"msisdn": 4552903991}],
        "userref": "4711",
        "callback_url": f"{PUBLIC}/sms/dlr/gatewayapi/DK-761500",
    }
    # The docs' example response: its first id is GatewayAPI's id of the text.
    assert result == SendResult(
        gateway_message_id="421332671", http_status=200, reports_expected=True
    )


async def test_gatewayapi_ucs2_and_schedule(gwapi: GatewayApiServer) -> None:
    send_at = dt.datetime(2030, 1, 2, 8, 0, tzinfo=dt.UTC)
    await send(gwapi_config(gwapi), OutgoingSms(TO, "Привет", send_at=send_at))
    body = gwapi.requests[0].json
    assert body["encoding"] == "UCS2"
    assert body["sendtime"] == int(send_at.timestamp())


async def test_gatewayapi_url_may_name_the_endpoint_itself(gwapi: GatewayApiServer) -> None:
    await send(gwapi_config(gwapi, url=gwapi.url), OutgoingSms(TO, "Hej"))
    assert gwapi.requests[0].path == "/rest/mtsms"


@pytest.mark.parametrize(
    ("reply", "error", "code", "description"),
    [
        (
            GatewayApiServer.forbidden(),
            PermanentGatewayError,
            "0x0213",
            "Unauthorized IP-address: 1.2.3.4",
        ),
        (
            GatewayApiServer.error_reply(403, "0x0216", "Insufficient credit"),
            PermanentGatewayError,
            "0x0216",
            "Insufficient credit",
        ),
        (
            GatewayApiServer.error_reply(422, "0x0218", "Unknown message class id %1"),
            PermanentGatewayError,
            "0x0218",
            "Unknown message class id %1",
        ),
        (Reply(500, "{}", "application/json"), TemporaryGatewayError, None, "gatewayapi: HTTP 500"),
        (Reply(429, ""), TemporaryGatewayError, None, "gatewayapi: HTTP 429"),
        (
            Reply(502, "<html>Bad Gateway</html>"),
            TemporaryGatewayError,
            None,
            "gatewayapi: HTTP 502",
        ),
    ],
    ids=["ip", "credit", "class", "500", "429", "502"],
)
async def test_gatewayapi_errors_are_classified(
    gwapi: GatewayApiServer,
    reply: Reply,
    error: type[GatewayError],
    code: str | None,
    description: str,
) -> None:
    gwapi.enqueue(reply)
    with pytest.raises(GatewayError) as caught:
        await send(gwapi_config(gwapi), OutgoingSms(TO, "Hej"))
    assert type(caught.value) is error
    assert (caught.value.http_status, caught.value.code) == (reply.status, code)
    assert caught.value.description == description


async def test_gatewayapi_wrong_token_is_permanent(gwapi: GatewayApiServer) -> None:
    with pytest.raises(PermanentGatewayError) as caught:
        await send(gwapi_config(gwapi, token="wrong-token"), OutgoingSms(TO, "Hej"))
    assert caught.value.http_status == 401
    assert "wrong-token" not in str(caught.value)


async def test_gatewayapi_unrecognised_2xx_is_sent_once(
    gwapi: GatewayApiServer, caplog: pytest.LogCaptureFixture
) -> None:
    gwapi.enqueue(Reply(200, "OK"))
    with caplog.at_level(logging.WARNING, logger="patronlink.gateways.gatewayapi"):
        result = await send(gwapi_config(gwapi), OutgoingSms(TO, "Hej"))
    assert (result.gateway_message_id, result.description) == (None, "OK")
    assert "taken as sent" in caplog.text
    assert len(gwapi.requests) == 1
