"""Helpers shared by the benchmarks: a server in a subprocess, medians, free ports."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def process(
    args: list[str], ready_url: str, timeout: float = 30.0, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                httpx.get(ready_url, timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"{args} did not start") from None
                time.sleep(0.1)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def gateway(port: int) -> contextlib.AbstractContextManager[subprocess.Popen[bytes]]:
    return process(
        [sys.executable, "-m", "bench.gateway_server", str(port)], f"http://127.0.0.1:{port}/"
    )


def median(values: list[float]) -> float:
    return statistics.median(values)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def closed_loop(
    clients: int,
    more: Callable[[], bool],
    request: Callable[[aiohttp.ClientSession], Any],
) -> tuple[float, list[float]]:
    """``clients`` concurrent clients, each sending its next request as soon as the last is
    answered while ``more()``; requests/s and each request's latency in seconds.

    ``request(session)`` makes the request (``session.get(...)``, not yet sent); it is sent and
    timed here, and any answer but 200 stops the run.
    """
    latencies: list[float] = []

    async def client(session: aiohttp.ClientSession) -> None:
        while more():
            pending = request(session)
            start = time.perf_counter()
            async with pending as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"HTTP {response.status}")
            latencies.append(time.perf_counter() - start)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients)) as session:
        start = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(clients)))
        elapsed = time.perf_counter() - start
    return len(latencies) / elapsed, latencies
