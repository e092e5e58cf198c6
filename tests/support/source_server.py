"""A patron-import source on 127.0.0.1: real HTTP and HTTPS, each auth kind, each failure mode.

Certificates are made at test time with ``cryptography``: a CA, a server certificate for
127.0.0.1 and a client certificate for mTLS.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass
class Certificates:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def make_certificates(directory: Path) -> Certificates:
    now = dt.datetime.now(dt.UTC)
    ca_key = _key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "patronlink test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(name: str, server: bool) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = _key()
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
            .add_extension(
                x509.ExtendedKeyUsage(
                    [x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]
                    if server
                    else [x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            )
        return builder.sign(ca_key, hashes.SHA256()), key

    server, server_key = leaf("127.0.0.1", True)
    client, client_key = leaf("patronlink", False)
    pem = serialization.Encoding.PEM
    (directory / "ca.pem").write_bytes(ca.public_bytes(pem))
    (directory / "server.pem").write_bytes(server.public_bytes(pem))
    (directory / "client.pem").write_bytes(client.public_bytes(pem))
    return Certificates(
        ca=directory / "ca.pem",
        server_cert=directory / "server.pem",
        server_key=_write_key(server_key, directory / "server.key"),
        client_cert=directory / "client.pem",
        client_key=_write_key(client_key, directory / "client.key"),
    )


@dataclass
class Feed:
    """What the server answers on one path."""

    body: bytes = b""
    status: int = 200
    content_type: str = "application/json"
    delay: float = 0.0  # seconds before the body (read timeouts)
    # Expected credentials: ("basic", "user:pass"), ("bearer", token), ("header", "Name: value")
    auth: tuple[str, str] | None = None
    declared_length: int | None = None  # a Content-Length larger than the body: a cut connection
    # Send the body in pieces of ``chunk`` bytes with ``chunk_delay`` seconds between them (a
    # slow source, so that a test can kill the importing process part-way through).
    chunk: int = 0
    chunk_delay: float = 0.0


@dataclass
class SourceServer:
    url: str
    feeds: dict[str, Feed] = field(default_factory=dict)
    requests: list[dict[str, str]] = field(default_factory=list)
    # Bytes of the body sent so far, one entry per request (in the order they came).
    sent: list[int] = field(default_factory=list)


def _authorised(feed: Feed, headers: dict[str, str]) -> bool:
    if feed.auth is None:
        return True
    kind, expected = feed.auth
    if kind == "basic":
        token = base64.b64encode(expected.encode()).decode()
        return headers.get("authorization") == f"Basic {token}"
    if kind == "bearer":
        return headers.get("authorization") == f"Bearer {expected}"
    name, _, value = expected.partition(": ")
    return headers.get(name.lower()) == value


@contextmanager
def source_server(
    certificates: Certificates | None = None, *, require_client_cert: bool = False
) -> Iterator[SourceServer]:
    """Serve feeds over HTTP, or HTTPS with ``certificates`` (and mTLS when required)."""
    state = SourceServer(url="")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            headers = {k.lower(): v for k, v in self.headers.items()}
            state.requests.append(headers)
            feed = state.feeds.get(self.path)
            if feed is None:
                self.send_error(404)
                return
            if not _authorised(feed, headers):
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="patrons"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if feed.delay:
                time.sleep(feed.delay)
            self.send_response(feed.status)
            self.send_header("Content-Type", feed.content_type)
            self.send_header("Content-Length", str(feed.declared_length or len(feed.body)))
            self.end_headers()
            index = len(state.sent)
            state.sent.append(0)
            step = feed.chunk or len(feed.body) or 1
            with suppress(BrokenPipeError, ConnectionResetError):
                for start in range(0, len(feed.body), step):
                    if start and feed.chunk_delay:
                        time.sleep(feed.chunk_delay)
                    self.wfile.write(feed.body[start : start + step])
                    self.wfile.flush()
                    state.sent[index] = start + len(feed.body[start : start + step])
            if feed.declared_length:
                self.close_connection = True

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    scheme = "http"
    if certificates is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certificates.server_cert, certificates.server_key)
        if require_client_cert:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(certificates.ca)
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
        scheme = "https"
    state.url = f"{scheme}://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)
