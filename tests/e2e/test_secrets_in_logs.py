"""No secret reaches a log line: a whole scenario against a real ``patronlink serve``.

The server runs as a subprocess with its worker and debug logging, its stderr captured. The
scenario uses every secret the deployment holds: the integration user's password in the query
string and in a form body (right, wrong, and wrong often enough to be throttled), the SMS
gateway's password from ``${VAR}`` (the worker sends a renewal reply and a staff text through a
test gateway, which first answers a malformed reply, so the error path logs too), an import
source's basic-auth password from ``${VAR}`` (a run through the staff API, and one with a wrong
password that fails). Then every line of the log is searched for every secret, raw and
URL-encoded (and the basic-auth header value): none may appear.
"""

from __future__ import annotations

import base64
import os
import subprocess
import time
from pathlib import Path
from urllib.parse import quote, quote_plus

import httpx

from tests.support.feeds import folio_body, folio_user
from tests.support.gateway_servers import XmlGatewayServer
from tests.support.processes import PATRONLINK, free_port
from tests.support.source_server import Feed, source_server

# Characters that URL encoding changes, so the encoded forms differ from the raw ones.
SMS_PASSWORD = "Gw/pass+word &=ÆØ 1"
INBOUND_PASSWORD = "In/bound+pass &=å 2"
SOURCE_PASSWORD = "Src/pass+word &=ø 3"
WRONG_SOURCE_PASSWORD = "Wrong/src+pass &=4"
WRONG_INBOUND = ["wrong/inbound+pw &=5", "x" * 40 + "-wrong-6"]
SECRETS = [SMS_PASSWORD, INBOUND_PASSWORD, SOURCE_PASSWORD, WRONG_SOURCE_PASSWORD, *WRONG_INBOUND]

CONFIG = """
[[agencies]]
id = "DK-761500"
name = "Horsens"
country_code = "45"
branches = [{{ code = "HOR", name = "Hovedbiblioteket" }}]

[agencies.sms]
driver = "xml"
url = "{gateway}"
username = "horsens"
password = "${{PL_SMS_PASSWORD}}"
read_timeout = 2.0

[agencies.renewal]
sms_enabled = true

[[agencies.integration_users]]
username = "sms"
password = "${{PL_INBOUND_PASSWORD}}"

[[import_sources]]
id = "students"
agency = "DK-761500"
url = "{source}/patrons.json"
format = "folio-json"
auth = {{ type = "basic", username = "cicero", password = "${{PL_SOURCE_PASSWORD}}" }}

[[import_sources]]
id = "students-wrong"
agency = "DK-761500"
url = "{source}/patrons.json"
format = "folio-json"
auth = {{ type = "basic", username = "cicero", password = "${{PL_SOURCE_WRONG}}" }}
"""


def forms(secret: str) -> set[str]:
    """The secret as it could appear in a log: raw, percent- and form-encoded."""
    return {secret, quote(secret), quote(secret, safe=""), quote_plus(secret)}


def basic(secret: str) -> str:
    return base64.b64encode(f"cicero:{secret}".encode()).decode()


def cli(args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(
        [*PATRONLINK, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert not any(s in done.stdout + done.stderr for secret in SECRETS for s in forms(secret))
    return done.stdout.strip()


def test_no_secret_in_any_log_line(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PATRONLINK_DATABASE_URL": f"sqlite:///{tmp_path / 'p.db'}",
        "PATRONLINK_LOG_LEVEL": "debug",
        "PATRONLINK_DISPATCH_POLL_SECONDS": "0.2",
        "PATRONLINK_RETRY_BASE_SECONDS": "0",
        "PATRONLINK_RETRY_CAP_SECONDS": "0",
        "PL_SMS_PASSWORD": SMS_PASSWORD,
        "PL_INBOUND_PASSWORD": INBOUND_PASSWORD,
        "PL_SOURCE_PASSWORD": SOURCE_PASSWORD,
        "PL_SOURCE_WRONG": WRONG_SOURCE_PASSWORD,
    }
    user = folio_user(1)
    user["personal"]["mobilePhone"] = "+45 52903991"
    feed = Feed(body=folio_body([user]), auth=("basic", f"cicero:{SOURCE_PASSWORD}"))
    log_path = tmp_path / "serve.log"
    with XmlGatewayServer() as gateway, source_server() as source:
        source.feeds["/patrons.json"] = feed
        gateway.enqueue(XmlGatewayServer.malformed())  # the first send fails and is retried
        config = tmp_path / "libraries.toml"
        config.write_text(CONFIG.format(gateway=gateway.url, source=source.url))
        cli(["db", "upgrade"], env)
        cli(["config", "apply", str(config)], env)
        token = cli(["token", "create", "--name", "secrets"], env)
        port = free_port()
        with log_path.open("w") as log:
            server = subprocess.Popen(
                [*PATRONLINK, "serve", "--port", str(port)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        base = f"http://127.0.0.1:{port}"
        staff = httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
        try:
            scenario(base, staff, gateway, server)
        finally:
            staff.close()
            server.terminate()
            server.wait(timeout=30)
    lines = log_path.read_text(encoding="utf-8").splitlines()
    assert len(lines) > 20  # the scenario was logged
    assert any("password=***" in line for line in lines)
    for number, line in enumerate(lines, 1):
        for secret in SECRETS:
            for form in forms(secret) | {basic(secret)}:
                assert form not in line, f"log line {number} shows a secret: {line}"
        assert token not in line


def scenario(
    base: str, staff: httpx.Client, gateway: XmlGatewayServer, server: subprocess.Popen[bytes]
) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "server did not answer /healthz in 60 s"
        assert server.poll() is None, "server exited"
        time.sleep(0.2)
    runs = "/api/v1/import-sources/{}/runs"
    imported = staff.post(runs.format("students"), params={"wait": "true"})
    assert imported.status_code == 200, imported.text
    assert imported.json()["status"] == "succeeded", imported.text
    refused = staff.post(runs.format("students-wrong"), params={"wait": "true"})
    assert refused.status_code == 200, refused.text
    assert refused.json()["status"] in ("failed", "source_unavailable"), refused.text
    patron_id = staff.get("/api/v1/agencies/DK-761500/patrons").json()[0]["patron_id"]
    assert staff.post(
        "/api/v1/agencies/DK-761500/items", json={"item_number": "5010001", "title": "Bog"}
    ).is_success
    assert staff.post(
        "/api/v1/agencies/DK-761500/loans", json={"patron_id": patron_id, "item_number": "5010001"}
    ).is_success
    inbound = {
        "user": "sms",
        "shortcode": "1910",
        "countrycode": "45",
        "number": "52903991",
        "text": "Horsens forny alle",
    }
    path = "/rest/DK-761500/smsgateway"
    ok = httpx.get(f"{base}{path}", params={**inbound, "password": INBOUND_PASSWORD})
    assert ok.status_code == 200, ok.text
    posted = httpx.post(
        f"{base}{path}", data={**inbound, "text": "Horsens forny 1", "password": INBOUND_PASSWORD}
    )
    assert posted.status_code == 200, posted.text
    for wrong in [*WRONG_INBOUND] * 4:  # past the throttle's five failures
        answer = httpx.get(f"{base}{path}", params={**inbound, "password": wrong})
        assert answer.status_code in (401, 429)
    queued = staff.post(
        "/api/v1/agencies/DK-761500/messages", json={"to": "52903991", "text": "Hej fra staff"}
    )
    assert queued.status_code == 201, queued.text
    # The renewal reply and the staff text, one of them after a malformed first reply.
    received = gateway.wait_for_requests(3, timeout=30)
    assert {r.form["pass"] for r in received} == {SMS_PASSWORD}
