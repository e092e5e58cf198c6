"""A corpus of hostile requests to the endpoints providers and Aleph clients call.

``/rest/{agency}/smsgateway`` (GET and POST) and ``/rest-dlf/patron/`` (GET and PUT) take input
the OpenAPI schema cannot describe: raw query strings and ``post_xml`` bodies. Each request of the
corpus is sent as raw bytes over a socket (no client library tidies it first) and must get a
clear 4xx, or for rest-dlf HTTP 200 with a reply-code other than 0000 (how Aleph refuses). After
each one the server still answers ``/healthz`` and no patron, text or inbound SMS was written.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest

from patronlink.services.demo import DEMO_INBOUND_PASSWORD, load_demo
from patronlink.settings import Settings
from patronlink.storage.database import Database
from patronlink.web.app import create_app
from tests.conftest import FrozenClock
from tests.support.live_server import live_server
from tests.support.snapshots import row_counts

MB = 1_000_000
WATCHED = ("patrons", "messages", "inbound_sms")
GOOD = {
    "user": "sms",
    "password": DEMO_INBOUND_PASSWORD,
    "shortcode": "1910",
    "countrycode": "45",
    "number": "52903991",
    "text": "Horsens forny alle",
}


def query(**changes: str | None) -> bytes:
    """The demo's valid inbound query with ``changes`` (None drops a parameter), raw values."""
    values = {**GOOD, **changes}
    return "&".join(f"{k}={quote(v)}" for k, v in values.items() if v is not None).encode()


SQL = "' OR '1'='1'; DROP TABLE patrons;--"
SHELL = "$(reboot)`id`;|& rm -rf / #"
BOMB = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + b"".join(
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10 if i > 1 else "&lol;" * 10}">'.encode()
        for i in range(1, 10)
    )
    + b"]><get-new-patron><new-patron><patron-name>&lol9;</patron-name></new-patron>"
    b"</get-new-patron>"
)
XXE = (
    b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
    b"<get-new-patron><new-patron><patron-name>&e;</patron-name></new-patron></get-new-patron>"
)
PASSWORD = DEMO_INBOUND_PASSWORD.encode()
# The PUT body is Aleph's unencoded post_xml=<xml>, so no "&" (a form separator) in it.
SHELL_BIRTH = b"<birth-date>$(reboot)`id`;| rm -rf /</birth-date>"
SPEC_PUT = (Path(__file__).parent.parent / "fixtures" / "aleph_put_body.txt").read_bytes()

# (name, the query string or form body, the status the callback must answer)
INBOUND: list[tuple[str, bytes, int]] = [
    *[(f"missing {p}", query(**{p: None}), 400) for p in GOOD],
    ("nothing at all", b"", 400),
    ("repeated user", query() + b"&user=admin", 400),
    ("repeated text", query() + b"&text=x+forny+alle", 400),
    ("1 MB text", query(text="a" * MB), 400),
    ("1 MB password", query(password="p" * MB), 400),
    ("invalid UTF-8", query() .replace(b"text=", b"text=%FF%FE") , 400),
    ("invalid UTF-8 in a name", b"%FF=1&" + query(), 400),
    ("bad percent-encoding", query(text=None) + b"&text=%ZZ%E2%82", 400),
    ("NUL in text", query(text=None) + b"&text=a%00b", 400),
    ("NUL in password", query(password=None) + b"&password=" + PASSWORD + b"%00", 400),
    ("many parameters", query() + b"&x=1" * 100, 400),
    ("SQL in user", query(user=SQL), 401),
    ("SQL in password", query(password=SQL), 401),
    ("shell in user", query(user=SHELL), 401),
    ("shell in password", query(password=SHELL), 401),
    ("XML bomb as text", query(password="wrong", text=BOMB.decode()[:480]), 401),
]  # fmt: skip

PATHS = ["/rest/DK-761500/smsgateway", "/rest/761500/smsgateway"]
BAD_AGENCIES = [quote(SQL, safe=""), quote(SHELL, safe=""), "DK%00", "%FF%FE", "a" * 4000]

PUT_BODIES: list[tuple[str, bytes]] = [
    ("empty", b""),
    ("post_xml without XML", b"post_xml="),
    ("repeated post_xml", SPEC_PUT + b"&" + SPEC_PUT),
    ("1 MB post_xml", b"post_xml=" + b"a" * MB),
    ("invalid UTF-8", SPEC_PUT.replace(b"Richardson", b"Rich\xff\xfeardson")),
    ("bad percent-encoding", b"post_xml=%ZZ%E2%82" + SPEC_PUT[9:]),
    ("NUL in the XML", SPEC_PUT.replace(b"Richardson", b"Rich\x00ardson")),
    ("SQL in the id", SPEC_PUT.replace(b"<internal-id>0044", f"<internal-id>{SQL}".encode())),
    ("shell in the birth date", SPEC_PUT.replace(b"<birth-date/>", SHELL_BIRTH)),
    ("XML bomb", BOMB),
    ("XML bomb in post_xml", b"post_xml=" + quote(BOMB.decode()).encode()),
    ("XXE", XXE),
    ("XXE in post_xml", b"post_xml=" + quote(XXE.decode()).encode()),
]  # fmt: skip


def raw_request(base: str, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
    """Send exactly these bytes; ``(status, body)`` of the answer, status 0 if none came.

    A server that refuses a huge request answers and closes before reading the rest, and the
    unread rest makes its kernel reset the connection, which can discard an answer not yet read.
    So a thread reads while the request is written, and a body waits for ``100 Continue`` (or an
    early final answer) as HTTP/1.1 clients do.
    """
    split = urlsplit(base)
    assert split.hostname is not None
    assert split.port is not None
    head += b"\r\nHost: test\r\nConnection: close\r\n"
    if body or head.startswith((b"POST", b"PUT")):
        head += b"Content-Type: application/x-www-form-urlencoded\r\n"
        head += b"Content-Length: %d\r\nExpect: 100-continue\r\n" % len(body)
    chunks: list[bytes] = []
    with socket.create_connection((split.hostname, split.port), timeout=30) as s:
        reader = threading.Thread(target=_read_all, args=(s, chunks))
        reader.start()
        try:
            _send(s, head + b"\r\n", chunks)
            if body:
                deadline = time.monotonic() + 5
                while not chunks and time.monotonic() < deadline:
                    time.sleep(0.005)
                if b"".join(chunks).startswith(b"HTTP/1.1 100"):
                    _send(s, body, chunks)
        except OSError:
            pass  # reset by a server that answered early: the reader has the answer
        reader.join(30)
    reply = re.sub(rb"^HTTP/1\.1 100 [^\r]*\r\n\r\n", b"", b"".join(chunks))
    match = re.match(rb"HTTP/1\.[01] (\d{3})", reply)
    return (int(match[1]) if match else 0), reply.partition(b"\r\n\r\n")[2]


def _send(s: socket.socket, data: bytes, answered: list[bytes]) -> None:
    for start in range(0, len(data), 1 << 14):
        if answered and not b"".join(answered).startswith(b"HTTP/1.1 100"):
            return  # a final answer came early: stop writing
        s.sendall(data[start : start + (1 << 14)])


def _read_all(s: socket.socket, chunks: list[bytes]) -> None:
    try:
        while chunk := s.recv(1 << 16):
            chunks.append(chunk)
    except OSError:
        pass


@pytest.fixture
def server(db: Database, settings: Settings, clock: FrozenClock) -> Iterator[str]:
    load_demo(db, clock)
    # No throttling: each request of the corpus is judged on its own, not as the n-th failure.
    relaxed = settings.model_copy(
        update={
            "inbound_failures_before_throttle": 1_000_000,
            "registration_failures_before_throttle": 1_000_000,
        }
    )
    with live_server(create_app(relaxed, db, clock)) as url:
        yield url


def still_fine(base: str, db: Database, before: dict[str, int]) -> None:
    assert raw_request(base, b"GET /healthz HTTP/1.1")[0] == 200
    after = row_counts(db)
    assert {t: after[t] for t in WATCHED} == {t: before[t] for t in WATCHED}


def test_inbound_corpus(server: str, db: Database) -> None:
    before = row_counts(db)
    for name, params, expected in INBOUND:
        for path in PATHS:
            got = raw_request(server, b"GET " + path.encode() + b"?" + params + b" HTTP/1.1")
            posted = raw_request(server, b"POST " + path.encode() + b" HTTP/1.1", params)
            assert (name, got[0], posted[0]) == (name, expected, expected), (got, posted)
            still_fine(server, db, before)
    for agency in BAD_AGENCIES:
        status, _ = raw_request(
            server, f"GET /rest/{agency}/smsgateway?".encode() + query() + b" HTTP/1.1"
        )
        assert 400 <= status < 500, agency
        still_fine(server, db, before)


def test_raw_bytes_in_the_request_line_are_4xx(server: str, db: Database) -> None:
    before = row_counts(db)
    for junk in (b"a\x00b", b"\xff\xfe", b"a b"):
        line = b"GET /rest/DK-761500/smsgateway?" + query(text=None) + b"&text=" + junk
        status, _ = raw_request(server, line + b" HTTP/1.1")
        assert 400 <= status < 500, junk
        still_fine(server, db, before)


def test_rest_dlf_corpus(server: str, db: Database) -> None:
    before = row_counts(db)
    for name, body in PUT_BODIES:
        for path in ("/rest-dlf/patron/", "/rest-dlf/DK-761500/patron"):
            status, reply = raw_request(server, f"PUT {path} HTTP/1.1".encode(), body)
            assert status == 200, (name, status, reply[:200])
            assert b"<reply-code>" in reply, (name, reply[:200])
            assert b"<reply-code>0000</reply-code>" not in reply, (name, reply[:300])
            assert b"root:" not in reply  # nothing of /etc/passwd
            still_fine(server, db, before)
    for agency in BAD_AGENCIES:
        for method in ("GET", "PUT"):
            line = f"{method} /rest-dlf/{agency}/patron/ HTTP/1.1".encode()
            status, reply = raw_request(server, line, SPEC_PUT if method == "PUT" else b"")
            refused = status == 200 and b"<reply-code>0000</reply-code>" not in reply
            assert refused or 400 <= status < 500, (agency, status, reply[:200])
            still_fine(server, db, before)
