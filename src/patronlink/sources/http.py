"""Feeds from an institution's HTTP(S) service, with the source's authentication.

TLS is always verified (against the system's CAs, or the source's CA bundle for mTLS); connect and
read timeouts are explicit; the body is streamed, never held whole. Every httpx error is translated
into ``SourceUnavailable`` here, at the boundary.
"""

from __future__ import annotations

import io
import ssl
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import IO

import httpx

from patronlink import __version__
from patronlink.domain.errors import SourceUnavailable

CHUNK = 256 * 1024


class _BodyStream(io.RawIOBase):
    """The response body as a readable binary stream; transport errors become ours."""

    def __init__(self, chunks: Iterator[bytes], description: str) -> None:
        self._chunks = chunks
        self._pending = b""
        self._description = description

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            try:
                self._pending = next(self._chunks)
            except StopIteration:
                return 0
            except httpx.TimeoutException as exc:
                raise SourceUnavailable(f"{self._description}: read timed out") from exc
            except httpx.HTTPError as exc:
                raise SourceUnavailable(f"{self._description}: {exc}") from exc
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def _client_options(auth: Mapping[str, str]) -> tuple[httpx.Auth | None, dict[str, str], object]:
    """httpx's auth, extra headers and ``verify`` for one of the source's auth kinds.

    ``auth`` has its secrets resolved already: type basic|bearer|header|mtls|none.
    """
    kind = auth.get("type", "none")
    headers: dict[str, str] = {}
    verify: object = True
    basic: httpx.Auth | None = None
    if kind == "basic":
        basic = httpx.BasicAuth(auth["username"], auth["password"])
    elif kind == "bearer":
        headers["Authorization"] = f"Bearer {auth['token']}"
    elif kind == "header":
        headers[auth["name"]] = auth["value"]
    elif kind == "mtls":
        context = ssl.create_default_context(cafile=auth.get("ca_bundle") or None)
        try:
            context.load_cert_chain(auth["cert"], auth["key"])
        except (OSError, ssl.SSLError) as exc:
            raise SourceUnavailable(f"cannot load the client certificate: {exc}") from exc
        verify = context
    return basic, headers, verify


class HttpSource:
    def __init__(
        self,
        url: str,
        auth: Mapping[str, str],
        *,
        connect_timeout: float,
        read_timeout: float,
    ) -> None:
        self.url = url
        self.description = url
        self._auth = dict(auth)
        self._timeout = httpx.Timeout(
            connect=connect_timeout, read=read_timeout, write=read_timeout, pool=connect_timeout
        )

    @contextmanager
    def open(self) -> Iterator[IO[bytes]]:
        basic, headers, verify = _client_options(self._auth)
        headers["User-Agent"] = f"patronlink/{__version__}"
        client = httpx.Client(
            auth=basic,
            headers=headers,
            verify=verify,  # type: ignore[arg-type]  # True or an SSLContext
            timeout=self._timeout,
            follow_redirects=True,
        )
        with client:
            try:
                request = client.build_request("GET", self.url)
                response = client.send(request, stream=True)
            except httpx.TimeoutException as exc:
                raise SourceUnavailable(f"{self.url}: timed out ({type(exc).__name__})") from exc
            except httpx.HTTPError as exc:
                raise SourceUnavailable(f"{self.url}: {exc or type(exc).__name__}") from exc
            try:
                if response.status_code >= 300:
                    raise SourceUnavailable(
                        f"{self.url}: HTTP {response.status_code} {response.reason_phrase}",
                        http_status=response.status_code,
                    )
                raw = _BodyStream(response.iter_bytes(CHUNK), self.url)
                yield io.BufferedReader(raw, CHUNK)
            finally:
                response.close()
