"""`patronlink serve` behind a proxy: `FORWARDED_ALLOW_IPS` decides whether X-Forwarded-For names
the client, and so whom the inbound login throttle blocks (docs/deployment.md)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.processes import check_cli, free_port, start, stop, wait_for_health

WRONG = (
    "/rest/DK-761500/smsgateway?user=sms&password=wrong&shortcode=1910&countrycode=45"
    "&number=52903991&text=Horsens%20forny%20alle"
)
FAILURES = 5  # PATRONLINK_INBOUND_FAILURES_BEFORE_THROTTLE's default


@dataclass(frozen=True)
class Served:
    base: str
    log: Path

    def tail(self) -> str:
        """The server's log, for a failure's message: whom it saw, and what it answered."""
        return self.log.read_text(errors="replace")[-4000:]


def _serve(tmp_path: Path, forwarded_allow_ips: str) -> Iterator[Served]:
    env = {
        **os.environ,
        "PATRONLINK_DATABASE_URL": f"sqlite:///{tmp_path / 'var' / 'p.db'}",
        "FORWARDED_ALLOW_IPS": forwarded_allow_ips,
    }
    check_cli(["db", "upgrade"], env)
    check_cli(["demo"], env)
    port = free_port()
    log = tmp_path / "serve.log"
    process = start(["serve", "--no-worker", "--port", str(port)], env, log)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for_health(base, process, log)
        yield Served(base, log)
    finally:
        stop(process)


@pytest.fixture
def behind_proxy(tmp_path: Path) -> Iterator[Served]:
    """The proxy (this test, on 127.0.0.1) is trusted."""
    yield from _serve(tmp_path, "127.0.0.1")


@pytest.fixture
def proxy_not_trusted(tmp_path: Path) -> Iterator[Served]:
    """Only some other address is trusted: X-Forwarded-For from 127.0.0.1 is ignored."""
    yield from _serve(tmp_path, "10.9.9.9")


def _fail_as(client: httpx.Client, forwarded_for: str) -> int:
    return client.get(WRONG, headers={"X-Forwarded-For": forwarded_for}).status_code


def test_a_trusted_proxys_clients_are_throttled_one_by_one(behind_proxy: Served) -> None:
    with httpx.Client(base_url=behind_proxy.base) as client:
        failures = [_fail_as(client, "198.51.100.7") for _ in range(FAILURES)]
        assert failures == [401] * FAILURES, behind_proxy.tail()
        assert _fail_as(client, "198.51.100.7") == 429, behind_proxy.tail()
        # Another client behind the same proxy is not blocked with it.
        assert _fail_as(client, "203.0.113.9") != 429, behind_proxy.tail()


def test_an_untrusted_sender_of_x_forwarded_for_is_one_client(proxy_not_trusted: Served) -> None:
    with httpx.Client(base_url=proxy_not_trusted.base) as client:
        failures = [_fail_as(client, "198.51.100.7") for _ in range(FAILURES)]
        assert failures == [401] * FAILURES, proxy_not_trusted.tail()
        # The header is not believed: the next "client" is the same address, and blocked.
        assert _fail_as(client, "203.0.113.9") == 429, proxy_not_trusted.tail()
