"""Logs that keep what matters and hide patrons' data (issue 14, item 3).

Before: a traceback in a JSON line came out as ``"<traceback object at 0x7f...>"`` (or not at
all), fields passed as ``extra`` were dropped, an uncaught exception was Python's bare traceback
on stderr, and the access log held the number and text of every inbound SMS.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest

from patronlink.settings import Settings
from tests.support.processes import check_cli, free_port, start, stop, wait_for_health

SCRIPT = textwrap.dedent(
    """
    import logging, threading
    from patronlink.web.observability import configure_logging

    configure_logging("info", "json")
    log = logging.getLogger("patronlink.test")
    try:
        {{}}["missing"]
    except KeyError:
        log.error("lookup failed", exc_info=True, extra={{"agency": "DK-761500", "attempt": 3}})
    log.warning("with an exception object", exc_info=ValueError("bad value"))
    thread = threading.Thread(target=lambda: 1 / 0, name="{thread}")
    thread.start()
    thread.join()
    raise RuntimeError("fatal at the top")
    """
)


def test_json_lines_keep_tracebacks_extra_fields_and_fatal_errors() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(thread="side-thread")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    raw = done.stderr.strip().splitlines()
    lines = [json.loads(line) for line in raw]  # every line is JSON, the fatal ones too
    assert len(lines) == 4, raw

    lookup, warning, thread, fatal = lines
    assert lookup["level"] == "error"
    assert lookup["agency"] == "DK-761500"
    assert lookup["attempt"] == 3
    assert lookup["exception"].startswith("Traceback (most recent call last):")
    assert "KeyError: 'missing'" in lookup["exception"]
    assert "ValueError: bad value" in warning["exception"]
    assert thread["level"] == "critical"
    assert "side-thread" in thread["event"]
    assert "ZeroDivisionError" in thread["exception"]
    assert fatal["level"] == "critical"
    assert "RuntimeError: fatal at the top" in fatal["exception"]
    assert "Traceback" in fatal["exception"]
    assert "traceback object" not in done.stderr


CONFIG = """\
[[agencies]]
id = "DK-761500"
name = "Horsens Bibliotek"

[agencies.sms]
driver = "console"

[agencies.renewal]
sms_enabled = true

[[agencies.integration_users]]
username = "sms"
password = "inbound-secret-pw"
"""
NUMBER = "52903991"
TEXT = "Horsens forny alle"


def _access_line(log: Path) -> dict[str, object]:
    for raw in log.read_text(errors="replace").splitlines():
        if raw.startswith("{"):
            line = json.loads(raw)
            if line.get("event") == "request" and "smsgateway" in str(line.get("path")):
                return dict(line)
    raise AssertionError(f"no access log line:\n{log.read_text(errors='replace')}")


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize("patron_data", [False, True])
def test_access_log_hides_the_inbound_number_and_text_unless_asked(
    settings: Settings, tmp_path: Path, patron_data: bool
) -> None:
    env = {**os.environ, "PATRONLINK_DATABASE_URL": settings.database_url}
    config = tmp_path / "patronlink.toml"
    config.write_text(CONFIG, encoding="utf-8")
    check_cli(["config", "apply", str(config)], env)
    if patron_data:
        env["PATRONLINK_LOG_PATRON_DATA"] = "true"
    port = free_port()
    log = tmp_path / "serve.log"
    server = start(["serve", "--no-worker", "--port", str(port)], env, log)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for_health(base, server, log)
        answer = httpx.get(
            f"{base}/rest/DK-761500/smsgateway",
            params={
                "user": "sms",
                "password": "inbound-secret-pw",
                "shortcode": "1919",
                "countrycode": "45",
                "number": NUMBER,
                "text": TEXT,
            },
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
    finally:
        stop(server)
    query = str(_access_line(log)["query"])
    assert "password=***" in query
    assert "inbound-secret-pw" not in log.read_text()
    if patron_data:
        assert f"number={NUMBER}" in query
        assert "text=Horsens+forny+alle" in query
    else:
        assert "number=***" in query, query
        assert "text=***" in query, query
        assert NUMBER not in query
        assert "forny" not in query
        assert "shortcode=1919" in query  # what is not patron data stays, for debugging
