"""Scriptable SMS gateways over real HTTP on 127.0.0.1, for driver, outbox and chaos tests.

Each server runs ``http.server.ThreadingHTTPServer`` on an ephemeral port in a thread, answers in
the spec's format and records what it received::

    with XmlGatewayServer() as gateway:
        gateway.enqueue(XmlGatewayServer.code_reply(1029))   # next request: temporary error
        gateway.default = XmlGatewayServer.spec_success()    # every request after that
        ...send through a driver pointed at gateway.url...
        assert gateway.requests[0].form["number"] == "52903991"

Replies are taken from the ``enqueue``-d queue first, then ``default``. A ``Reply`` may be slow
(``delay``, for timeout tests; ``stop`` cuts the wait short) or may ``drop`` the connection
without answering.
"""

from __future__ import annotations

import base64
import json
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

# The spec's examples, verbatim: the XML family's success reply and LINK Mobility's success and
# error replies (docs/interfaces/sms-gateways.md shows them).
SPEC_XML_SUCCESS = """<?xml version="1.0" encoding="iso-8859-1"?>
<root>
<msg_id></msg_id>
<status>
<statusline>
<code>0</code>
<description>SMS afsendt.</description>
</statusline>
</status>
</root>
"""
SPEC_LINK_SUCCESS = """{
"messageId": "3XSdZm3c23ZjLv4T5e3NiR",
"resultCode": 1005,
"description": "Queued"
}"""
SPEC_LINK_ERROR = """{
"status": 101101,
"description": "Access denied",
"translatedDescription": "Access denied"
}"""


@dataclass(frozen=True)
class Reply:
    """One scripted answer. ``body`` given as str is encoded with ``encoding``."""

    status: int = 200
    body: bytes | str = b""
    content_type: str = "text/plain"
    encoding: str = "utf-8"
    delay: float = 0.0
    drop: bool = False
    headers: tuple[tuple[str, str], ...] = ()

    def payload(self) -> bytes:
        return self.body.encode(self.encoding) if isinstance(self.body, str) else self.body


@dataclass(frozen=True)
class ReceivedRequest:
    """What a gateway received: ``query`` and ``form`` hold the first value of each name."""

    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    query: dict[str, str]
    form: dict[str, str]
    raw_query: str = ""
    json: Any = None
    query_all: dict[str, list[str]] = field(default_factory=dict)

    def basic_auth(self) -> tuple[str, str] | None:
        """``(username, password)`` of an HTTP Basic ``Authorization`` header, if any."""
        scheme, _, token = self.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return None
        user, _, password = base64.b64decode(token).decode("utf-8").partition(":")
        return user, password


def _first(values: dict[str, list[str]]) -> dict[str, str]:
    return {name: items[0] for name, items in values.items()}


class ScriptedGateway:
    """The common machinery: serve, queue replies, record requests. Subclasses speak a format."""

    def __init__(self, default: Reply) -> None:
        self.default = default
        self._queue: deque[Reply | Callable[[ReceivedRequest], Reply]] = deque()
        self._requests: list[ReceivedRequest] = []
        self._lock = threading.Condition()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- scripting ------------------------------------------------------------------------------

    def enqueue(self, *replies: Reply | Callable[[ReceivedRequest], Reply]) -> None:
        """Answer the next requests with these, in order (a callable gets the request)."""
        with self._lock:
            self._queue.extend(replies)

    @property
    def requests(self) -> list[ReceivedRequest]:
        with self._lock:
            return list(self._requests)

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> list[ReceivedRequest]:
        """Block until ``count`` requests arrived; AssertionError after ``timeout`` seconds."""
        with self._lock:
            if not self._lock.wait_for(lambda: len(self._requests) >= count, timeout):
                raise AssertionError(f"expected {count} requests, got {len(self._requests)}")
            return list(self._requests)

    def respond(self, request: ReceivedRequest) -> Reply:
        """The reply to ``request``: the queue first, then ``default``. Subclasses check first."""
        with self._lock:
            scripted = self._queue.popleft() if self._queue else self.default
        return scripted(request) if callable(scripted) else scripted

    # -- lifecycle ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("gateway server is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{self.path}"

    path = "/"

    def start(self) -> Self:
        gateway = self
        self._stopping.clear()

        class Handler(_Handler):
            pass

        Handler.gateway = gateway
        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        # A short poll interval keeps ``stop`` (which waits for the next poll) fast.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wake slow replies so shutdown does not wait for them
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _record(self, request: ReceivedRequest) -> None:
        with self._lock:
            self._requests.append(request)
            self._lock.notify_all()


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog of 5 overflows when a dispatcher opens dozens of connections
    # at once; the kernel then holds completed handshakes back for a second, and a client with a
    # short read timeout sees a timeout the script never asked for.
    request_queue_size = 256

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (timeout tests) breaks the pipe; that is the point, not a failure.
        pass


class _Handler(BaseHTTPRequestHandler):
    gateway: ScriptedGateway

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if len(body) < length:
            # The client went away mid-request (a killed worker): a gateway acts on nothing.
            self.close_connection = True
            return
        split = urlsplit(self.path)
        query_all = parse_qs(split.query, keep_blank_values=True)
        content_type = self.headers.get("Content-Type", "")
        form: dict[str, str] = {}
        parsed_json: Any = None
        if content_type.startswith("application/x-www-form-urlencoded"):
            form = _first(parse_qs(body.decode("utf-8"), keep_blank_values=True))
        elif content_type.startswith("application/json") and body:
            parsed_json = json.loads(body)
        request = ReceivedRequest(
            method=self.command,
            path=split.path,
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
            query=_first(query_all),
            form=form,
            raw_query=split.query,
            json=parsed_json,
            query_all=query_all,
        )
        self.gateway._record(request)
        reply = self.gateway.respond(request)
        if reply.delay and self.gateway._stopping.wait(reply.delay):
            return
        if reply.drop:
            self.close_connection = True
            return
        payload = reply.payload()
        self.send_response(reply.status)
        if reply.status not in (204, 304):
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(payload)))
        for name, value in reply.headers:
            self.send_header(name, value)
        self.end_headers()
        if reply.status not in (204, 304):
            self.wfile.write(payload)


# -- the three gateway families -------------------------------------------------------------------


class XmlGatewayServer(ScriptedGateway):
    """The XML/form family: form POST in, ``<root>...<code>`` XML (iso-8859-1) out.

    The wire is described in docs/interfaces/sms-gateways.md.
    """

    def __init__(self, default: Reply | None = None) -> None:
        super().__init__(default or self.spec_success())

    @staticmethod
    def spec_success() -> Reply:
        """The spec's example success reply, byte for byte."""
        return Reply(200, SPEC_XML_SUCCESS, "text/xml", encoding="iso-8859-1")

    @staticmethod
    def code_reply(code: int | str, description: str = "", msg_id: str = "") -> Reply:
        """A reply in the spec's structure with this code (and description, message id)."""
        xml = (
            '<?xml version="1.0" encoding="iso-8859-1"?>\n'
            f"<root>\n<msg_id>{msg_id}</msg_id>\n<status>\n<statusline>\n"
            f"<code>{code}</code>\n<description>{description}</description>\n"
            "</statusline>\n</status>\n</root>\n"
        )
        return Reply(200, xml, "text/xml", encoding="iso-8859-1")

    @staticmethod
    def malformed() -> Reply:
        return Reply(200, "<root><status><code>0</code>", "text/xml")


class LinkMobilityServer(ScriptedGateway):
    """LINK Mobility (docs/interfaces/sms-gateways.md): JSON POST with Basic auth in, JSON out.

    Wrong or missing credentials get 401 with the spec's error JSON, whatever is scripted.
    """

    def __init__(
        self,
        username: str = "link-user",
        password: str = "link-secret",
        default: Reply | None = None,
    ) -> None:
        super().__init__(default or self.spec_success())
        self.username = username
        self.password = password

    @staticmethod
    def spec_success() -> Reply:
        return Reply(200, SPEC_LINK_SUCCESS, "application/json")

    @staticmethod
    def spec_error(http_status: int = 401) -> Reply:
        return Reply(http_status, SPEC_LINK_ERROR, "application/json")

    @staticmethod
    def error_reply(http_status: int, status: int, description: str) -> Reply:
        body = {"status": status, "description": description, "translatedDescription": description}
        return Reply(http_status, json.dumps(body), "application/json")

    def respond(self, request: ReceivedRequest) -> Reply:
        if request.basic_auth() != (self.username, self.password):
            return self.spec_error(401)
        return super().respond(request)


class KannelServer(ScriptedGateway):
    """Kannel's smsbox ``sendsms`` (GET, query parameters in, ``N: text`` out)."""

    path = "/cgi-bin/sendsms"

    def __init__(
        self,
        username: str = "kannel-user",
        password: str = "kannel-secret",
        default: Reply | None = None,
    ) -> None:
        super().__init__(default or self.accepted())
        self.username = username
        self.password = password

    @staticmethod
    def accepted() -> Reply:
        return Reply(202, "0: Accepted for delivery", "text/html")

    @staticmethod
    def queued() -> Reply:
        return Reply(202, "3: Queued for later delivery", "text/html")

    @staticmethod
    def unavailable() -> Reply:
        return Reply(503, "Sending failed.", "text/html")

    def respond(self, request: ReceivedRequest) -> Reply:
        credentials = (request.query.get("username"), request.query.get("password"))
        if credentials != (self.username, self.password):
            return Reply(403, "Authorization failed for sendsms", "text/html")
        if not request.query.get("to"):
            return Reply(400, "Missing receiver number, rejected", "text/html")
        return super().respond(request)


# GatewayAPI's REST docs ("POST /rest/mtsms", example response and error), verbatim.
GATEWAYAPI_SUCCESS = """{
    "ids": [
        421332671
    ],
    "usage": {
        "countries": {
            "DK": 2
        },
        "currency": "DKK",
        "total_cost": 0.30
    }
}"""
GATEWAYAPI_FORBIDDEN = """{
  "code": "0x0213",
  "incident_uuid": "d8127429-fa0c-4316-b1f2-e610c3958f43",
  "message": "Unauthorized IP-address: %1",
  "variables": [
    "1.2.3.4"
  ]
}"""


class GatewayApiServer(ScriptedGateway):
    """GatewayAPI's REST ``/rest/mtsms``: JSON in with the API token as the Basic username, JSON
    out. A wrong or missing token gets 401 whatever is scripted."""

    path = "/rest/mtsms"

    def __init__(self, token: str = "gwapi-token", default: Reply | None = None) -> None:
        super().__init__(default or self.success())
        self.token = token

    @property
    def base_url(self) -> str:
        """What an agency configures: the site, without ``/rest/mtsms``."""
        return self.url.removesuffix(self.path)

    @staticmethod
    def success() -> Reply:
        return Reply(200, GATEWAYAPI_SUCCESS, "application/json")

    @staticmethod
    def forbidden() -> Reply:
        return Reply(403, GATEWAYAPI_FORBIDDEN, "application/json")

    @staticmethod
    def error_reply(http_status: int, code: str, message: str) -> Reply:
        body = {"code": code, "incident_uuid": "0", "message": message}
        return Reply(http_status, json.dumps(body), "application/json")

    def respond(self, request: ReceivedRequest) -> Reply:
        auth = request.basic_auth()
        if auth is None or auth[0] != self.token:
            return self.error_reply(401, "0x0223", "Invalid Consumer Key")
        return super().respond(request)
