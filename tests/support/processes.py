"""The real ``patronlink`` command as a subprocess, for end-to-end tests."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

PATRONLINK = [sys.executable, "-m", "patronlink"]
STOP_SECONDS = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
