"""Benchmark: self-registration PUTs per second, against GET /healthz in the same run.

Starts the real server (``patronlink serve --no-worker``) on 127.0.0.1 with a fresh SQLite database
in a temporary directory and the spec's form, then for several rounds runs N concurrent clients
for a fixed time against ``GET /healthz`` and against ``PUT /rest-dlf/patron/`` (each PUT a
distinct patron, the spec's example body with its own internal id), once with the spec's PIN and
once without (argon2 hashing of the PIN dominates a PUT). Reports the median requests/s of each
and its ratio to /healthz.

    python -m bench.registration [--clients 8] [--seconds 3] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

PATRONLINK = [sys.executable, "-m", "patronlink"]
CONFIG = """\
[[agencies]]
id = "DK-761500"
name = "Benchmark library"
branches = [
  { code = "LAW", name = "Law Library" },
  { code = "MED", name = "Medicine Library" },
  { code = "WID", name = "Main Library" },
]

[agencies.registration]
new_patron_status = "active"
"""
# The spec's PUT example; {id} makes every patron distinct, {pin} is its PIN (or empty).
PUT_BODY = (
    'post_xml=<?xml version="1.0" encoding="UTF-8"?> <get-new-patron> <new-patron> '
    "<patron-name>Richardson, James the 1st</patron-name> <internal-id>{id}</internal-id> "
    "<local-sub-library>LAW</local-sub-library> "
    "<internal-id-verification>{pin}</internal-id-verification> <con-lng>ENG</con-lng> "
    "<address>7 Ridgmount Street </address> <address-2>London WC1E 7AE </address-2> "
    "<address-3>United Kingdom </address-3> <address-4/> <zip/> "
    "<email-address>infouk@exlibrisgroup.com</email-address> "
    "<telephone-1>111222999</telephone-1> <telephone-2/> <telephone-3/> <telephone-4/> "
    "<sms-number/> <want-sms>Y</want-sms> <address-type>01</address-type> "
    "<address-valid-from>20150101</address-valid-from> "
    "<address-valid-to>20160712</address-valid-to> <gender>M</gender> <birthplace/> "
    "<birth-date/> <export-consent/> <mail-attachment/> <forgot-password-question/> "
    "<forgot-password-answer/> <field-1/> <field-2/> <field-3/> <note-1/> <note-2/> "
    "<home-library>LAW </home-library> <additional-id/> <additional-id-verification/> "
    "</new-patron> </get-new-patron>"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def patronlink(args: list[str], env: dict[str, str]) -> None:
    subprocess.run([*PATRONLINK, *args], env=env, check=True, capture_output=True, timeout=120)


async def load(
    clients: int, seconds: float, request: Callable[[httpx.AsyncClient], Awaitable[bool]], url: str
) -> tuple[float, int]:
    """Requests per second over ``seconds`` with ``clients`` concurrent loops, and failures."""
    done = 0
    failed = 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        deadline = time.perf_counter() + seconds

        async def loop() -> None:
            nonlocal done, failed
            while time.perf_counter() < deadline:
                ok = await request(client)
                done += 1
                failed += not ok

        start = time.perf_counter()
        await asyncio.gather(*(loop() for _ in range(clients)))
        elapsed = time.perf_counter() - start
    return done / elapsed, failed


async def run(clients: int, seconds: float, rounds: int, url: str) -> None:
    ids = itertools.count(1)

    async def healthz(client: httpx.AsyncClient) -> bool:
        response = await client.get("/healthz")
        return response.status_code == 200

    def put(pin: str) -> Callable[[httpx.AsyncClient], Awaitable[bool]]:
        async def request(client: httpx.AsyncClient) -> bool:
            body = PUT_BODY.format(id=f"B{next(ids):010d}", pin=pin)
            response = await client.put("/rest-dlf/patron/", content=body.encode())
            return (
                response.status_code == 200 and b"<reply-code>0000</reply-code>" in response.content
            )

        return request

    scenarios: dict[str, Callable[[httpx.AsyncClient], Awaitable[bool]]] = {
        "GET /healthz": healthz,
        "PUT /rest-dlf/patron/": put("0044"),
        "PUT, no PIN (no argon2)": put(""),
    }
    rates: dict[str, list[float]] = {name: [] for name in scenarios}
    failures = 0
    await load(clients, 1.0, healthz, url)  # warm up
    for number in range(1, rounds + 1):
        line = []
        for name, request in scenarios.items():
            rate, failed = await load(clients, seconds, request, url)
            failures += failed
            rates[name].append(rate)
            line.append(f"{name} {rate:7.1f}/s")
        print(f"round {number}: " + "   ".join(line))
    medians = {name: statistics.median(values) for name, values in rates.items()}
    health = medians["GET /healthz"]
    print(f"median of {rounds} rounds, {clients} clients, {seconds:g} s each:")
    print("  scenario                    requests/s   ratio to /healthz")
    for name, rate in medians.items():
        print(f"  {name:<26} {rate:10.1f}   {rate / health:8.3f}")
    print(f"  failed requests: {failures}")
    if failures:
        sys.exit(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="patronlink-bench-") as tmp:
        env = {
            **os.environ,
            "PATRONLINK_DATABASE_URL": f"sqlite:///{Path(tmp) / 'bench.db'}",
            "PATRONLINK_LOG_LEVEL": "warning",
            "PATRONLINK_DEFAULT_AGENCY": "DK-761500",
        }
        config = Path(tmp) / "bench.toml"
        config.write_text(CONFIG)
        patronlink(["db", "upgrade"], env)
        patronlink(["config", "apply", str(config)], env)
        port = free_port()
        server = subprocess.Popen(
            [*PATRONLINK, "serve", "--port", str(port), "--no-worker"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    sys.exit("the server did not start")
                time.sleep(0.1)
            asyncio.run(run(args.clients, args.seconds, args.rounds, url))
        finally:
            server.terminate()
            server.wait(timeout=10)


if __name__ == "__main__":
    main()
