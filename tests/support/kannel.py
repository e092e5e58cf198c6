"""A real Kannel for tests: bearerbox + smsbox, with fakesmsc as the SMSC at the far end.

Needs Debian's ``kannel`` and ``kannel-extras`` packages (fakesmsc is in the latter). Without them
``kannel_binaries`` skips the test on a workstation and fails it in CI (``CI=true``), where it
must run::

    ports = KannelPorts.free()
    with running_kannel(tmp_path, ports, services=..., inject="+4552903991 1910 text hej") as k:
        k.wait_for_message(1)   # what the SMSC link handed fakesmsc (MT messages)

fakesmsc is started last: it sends the ``inject``-ed MO message (if any) as soon as it is
connected, and prints every message Kannel delivers to it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote_to_bytes

import httpx
import pytest

from tests.support.processes import free_ports

FAKESMSC = Path("/usr/lib/kannel/test/fakesmsc")
SENDSMS_USERNAME = "patronlink"
SENDSMS_PASSWORD = "s3cret&p@ss word"  # characters that must survive query-string encoding
ADMIN_PASSWORD = "admin-secret"
STARTUP_SECONDS = 20.0
STOP_SECONDS = 10.0
# fakesmsc logs each message the SMSC link hands it: "Got message 1: <from to type text>".
RECEIVED = re.compile(r"Got message \d+: <(\S+) (\S+) (\S+) (.*)>$")
# The fake SMSC protocol is one message per line and sends GSM text unencoded, so a text with a
# newline arrives as several "Got message" lines; PAYLOAD takes each line's content as it is.
PAYLOAD = re.compile(r"Got message \d+: <(.*)>$")
# The service of the driver tests: MO messages are not their subject.
DEFAULT_SERVICE = """\
group = sms-service
keyword = default
text = "No service"
"""


@dataclass(frozen=True)
class ReceivedSms:
    """One message fakesmsc got from Kannel; ``text`` is decoded whatever its coding."""

    sender: str
    receiver: str
    kind: str  # "text" (GSM, printed as is) or "ucs-2"
    data: str

    @property
    def text(self) -> str:
        if self.kind == "ucs-2":
            # fakesmsc prints UCS-2 as URL-encoded UTF-16BE, with "+" for the space byte.
            return unquote_to_bytes(self.data.replace("+", " ")).decode("utf-16-be")
        return self.data


def kannel_binaries() -> dict[str, Path]:
    """bearerbox, smsbox and fakesmsc; skips (fails with ``CI=true``) when one is missing."""
    found = {
        "bearerbox": _binary("bearerbox", Path("/usr/sbin/bearerbox")),
        "smsbox": _binary("smsbox", Path("/usr/sbin/smsbox")),
        "fakesmsc": _binary("fakesmsc", FAKESMSC),
    }
    missing = sorted(name for name, path in found.items() if path is None)
    if missing:
        reason = (
            f"Kannel not installed (missing {', '.join(missing)}; apt install kannel kannel-extras)"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return {name: path for name, path in found.items() if path is not None}


def _binary(name: str, fallback: Path) -> Path | None:
    found = shutil.which(name)
    if found:
        return Path(found)
    return fallback if os.access(fallback, os.X_OK) else None


@dataclass(frozen=True)
class KannelPorts:
    """Chosen before start-up, so that a test can configure patronlink with the sendsms URL."""

    admin: int
    box: int
    smsc: int
    sendsms: int

    @classmethod
    def free(cls) -> KannelPorts:
        admin, box, smsc, sendsms = free_ports(4)
        return cls(admin, box, smsc, sendsms)

    @property
    def sendsms_url(self) -> str:
        return f"http://127.0.0.1:{self.sendsms}/cgi-bin/sendsms"


def kannel_config(directory: Path, ports: KannelPorts, services: str) -> str:
    return f"""\
group = core
admin-port = {ports.admin}
admin-interface = 127.0.0.1
admin-password = {ADMIN_PASSWORD}
admin-allow-ip = 127.0.0.1
smsbox-port = {ports.box}
smsbox-interface = 127.0.0.1
box-allow-ip = 127.0.0.1
log-file = "{directory / "bearerbox.log"}"
log-level = 0

group = smsc
smsc = fake
smsc-id = fake
port = {ports.smsc}
connect-allow-ip = 127.0.0.1

group = smsbox
bearerbox-host = 127.0.0.1
bearerbox-port = {ports.box}
sendsms-port = {ports.sendsms}
sendsms-interface = 127.0.0.1
log-file = "{directory / "smsbox.log"}"
log-level = 0

group = sendsms-user
username = {SENDSMS_USERNAME}
password = "{SENDSMS_PASSWORD}"
concatenation = true
max-messages = 10

{services}"""


@dataclass
class Kannel:
    ports: KannelPorts
    directory: Path

    @property
    def sendsms_url(self) -> str:
        return self.ports.sendsms_url

    @property
    def fakesmsc_log(self) -> Path:
        return self.directory / "fakesmsc.out"

    def received(self) -> list[ReceivedSms]:
        lines = self.fakesmsc_log.read_text(encoding="utf-8", errors="replace").splitlines()
        return [ReceivedSms(*match.groups()) for line in lines if (match := RECEIVED.search(line))]

    def transcript(self) -> str:
        """Every line fakesmsc got, ``from to type text`` each, joined with newlines.

        A GSM text with newlines reads back whole here, since its lines follow one another.
        """
        lines = self.fakesmsc_log.read_text(encoding="utf-8", errors="replace").splitlines()
        return "\n".join(match[1] for line in lines if (match := PAYLOAD.search(line)))

    def wait_for_transcript(self, fragment: str, timeout: float = 10.0) -> str:
        """Until ``fragment`` is in the transcript; AssertionError (with the logs) after that."""
        deadline = time.monotonic() + timeout
        while fragment not in (transcript := self.transcript()):
            if time.monotonic() > deadline:
                raise AssertionError(f"fakesmsc never got {fragment!r}\n{self.logs()}")
            time.sleep(0.05)
        return transcript

    def wait_for_message(self, count: int, timeout: float = 10.0) -> list[ReceivedSms]:
        """Until fakesmsc got ``count`` messages; AssertionError (with Kannel's logs) after that."""
        deadline = time.monotonic() + timeout
        while len(messages := self.received()) < count:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"fakesmsc got {messages}, expected {count} message(s)\n{self.logs()}"
                )
            time.sleep(0.05)
        return messages

    def logs(self, tail: int = 3000) -> str:
        """The end of every Kannel log and output, for a failure message."""
        return "\n".join(
            f"--- {log.name}\n{log.read_text(errors='replace')[-tail:]}"
            for log in sorted(self.directory.glob("*.log")) + sorted(self.directory.glob("*.out"))
        )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
    process.wait(STOP_SECONDS)


def _wait_until_ready(kannel: Kannel) -> None:
    """Until bearerbox reports the fake SMSC online and smsbox connected, and sendsms answers."""
    deadline = time.monotonic() + STARTUP_SECONDS
    status_url = f"http://127.0.0.1:{kannel.ports.admin}/status.txt?password={ADMIN_PASSWORD}"
    with httpx.Client(timeout=1.0) as client:
        while True:
            try:
                status = client.get(status_url).text
                smsc_online = "(online" in status
                box_connected = "smsbox:" in status
                sendsms = client.get(kannel.sendsms_url)
                if smsc_online and box_connected and sendsms.status_code in (400, 403):
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"Kannel did not start in {STARTUP_SECONDS}s\n{kannel.logs(2000)}"
                )
            time.sleep(0.1)


@contextmanager
def running_kannel(
    directory: Path,
    ports: KannelPorts | None = None,
    *,
    services: str = DEFAULT_SERVICE,
    inject: str | None = None,
) -> Iterator[Kannel]:
    """Start Kannel with these ``sms-service`` groups; stop every process afterwards.

    ``inject``: one MO message for fakesmsc to send, ``"<from> <to> text <words>"``.
    """
    binaries = kannel_binaries()
    kannel = Kannel(ports or KannelPorts.free(), directory)
    conf = directory / "kannel.conf"
    conf.write_text(kannel_config(directory, kannel.ports, services), encoding="utf-8")
    fakesmsc = [str(binaries["fakesmsc"]), "-H", "127.0.0.1", "-r", str(kannel.ports.smsc)]
    # -m: how many MO messages to send; with 0 it only prints what the SMSC link delivers.
    fakesmsc += ["-m", "1", inject] if inject else ["-m", "0", "1 2 text unused"]
    commands = {
        "bearerbox": [str(binaries["bearerbox"]), str(conf)],
        "smsbox": [str(binaries["smsbox"]), str(conf)],
        "fakesmsc": fakesmsc,
    }
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for name, command in commands.items():
            with (directory / f"{name}.out").open("wb") as output:
                processes.append(
                    subprocess.Popen(
                        command, stdout=output, stderr=subprocess.STDOUT, cwd=directory
                    )
                )
            if name == "bearerbox":
                time.sleep(0.3)  # let it bind its ports before the others connect
        _wait_until_ready(kannel)
        yield kannel
    finally:
        # The reverse of start-up: the clients first, so bearerbox has nothing left to wait for.
        for process in reversed(processes):
            _stop(process)
