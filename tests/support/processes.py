"""The real ``patronlink`` command as a subprocess, for end-to-end tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

PATRONLINK = [sys.executable, "-m", "patronlink"]
STOP_SECONDS = 30.0


# Ports for the servers a test starts come from a block of its own for each pytest-xdist worker,
# below the kernel's ephemeral range (32768 and up on Linux). A port the kernel picked (bind to 0)
# is free only until it is closed: the kernel may give it to another worker before the server
# binds it, and then the second server fails to start while its test, asking the port's
# /healthz, gets its answer from the other test's server and goes on against the wrong one.
# Workers never share a port: each hands out its own block in turn, from the start again only
# when it has handed out all of it. Outgoing connections take their source ports from the
# ephemeral range, so they never take these.
PORT_BASE = 20000
PORTS_FOR_TESTS = 12000  # 20000-31999
_cursor: list[int] = []  # the next port to try in this process's block, once one was asked for


def _port_block() -> range:
    """This process's ports: a share of PORTS_FOR_TESTS (at most 1,000), the first one for a
    process that is no xdist worker."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    index = int(worker[2:]) + 1 if worker.startswith("gw") and worker[2:].isdigit() else 0
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0") or 0)
    size = min(1000, PORTS_FOR_TESTS // (workers + 1))
    start = PORT_BASE + index * size
    return range(start, start + size)


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:  # in use, or a closed connection's TIME_WAIT: take the next one
            return False
    return True


def free_ports(count: int) -> list[int]:
    """``count`` ports free on 127.0.0.1 now that no other test of this run is handed."""
    block = _port_block()
    out: list[int] = []
    if not _cursor:
        _cursor.append(block.start)
    for _ in range(len(block)):
        port = _cursor[0]
        _cursor[0] = port + 1 if port + 1 < block.stop else block.start
        if _bindable(port):
            out.append(port)
            if len(out) == count:
                return out
    raise RuntimeError(f"no {count} free ports in {block.start}-{block.stop - 1}")


def free_port() -> int:
    return free_ports(1)[0]


def run_cli(
    args: list[str], env: dict[str, str], timeout: float = 120.0
) -> subprocess.CompletedProcess[str]:
    """Run ``patronlink ARGS`` to completion; the result, whatever its exit code."""
    return subprocess.run(
        [*PATRONLINK, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def check_cli(args: list[str], env: dict[str, str]) -> str:
    """Run ``patronlink ARGS``; its stdout, or AssertionError with its stderr on failure."""
    done = run_cli(args, env)
    assert done.returncode == 0, f"patronlink {' '.join(args)}: {done.stderr}"
    return done.stdout


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start ``patronlink ARGS`` in the background, stdout and stderr appended to ``log``."""
    with log.open("ab") as output:
        return subprocess.Popen(
            [*PATRONLINK, *args], env=env, stdout=output, stderr=subprocess.STDOUT
        )


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (a clean shutdown), SIGKILL when that takes too long; always reaped."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
    process.wait(STOP_SECONDS)


def wait_for_health(base_url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """Until ``/healthz`` answers 200 (60 s at most); fails early when the process exits."""
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert process.poll() is None, f"server exited:\n{log.read_text(errors='replace')}"
        assert time.monotonic() < deadline, "server did not answer /healthz in 60 s"
        time.sleep(0.2)
