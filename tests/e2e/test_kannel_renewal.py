"""Renewal by SMS end to end through a real Kannel, as a library running its own SMSC link has it.

The acceptance test of Kannel: fakesmsc injects "Horsens forny alle" from the patron's phone;
Kannel's ``sms-service`` calls ``/rest/DK-761500/smsgateway`` of a running ``patronlink serve``
with its ``get-url``; the loan is renewed; the in-process worker sends the Danish reply through
the Kannel driver (smsbox ``sendsms``), and fakesmsc prints it.

Kannel's escape codes in ``get-url``: ``%p`` the sender's number, ``%P`` the number the message
was sent to (the short code), ``%a`` all words of the text; each is URL-encoded by Kannel.
``omit-empty`` keeps Kannel from texting our (empty) HTTP reply back: the reply goes through the
outbox instead.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx

from patronlink.settings import Settings
from patronlink.storage.database import Database
from tests.support.kannel import (
    SENDSMS_PASSWORD,
    SENDSMS_USERNAME,
    KannelPorts,
    kannel_binaries,
    running_kannel,
)
from tests.support.processes import check_cli, free_ports, start, stop, wait_for_health

AGENCY = "DK-761500"
INBOUND_PASSWORD = "inbound-e2e-Secret-42"  # no '%': Kannel would read it as an escape code
PATRON_PHONE = "+4552903991"
SHORTCODE = "1910"
SENDER = "HorsensBib"
WAIT_SECONDS = 60.0
COPENHAGEN = ZoneInfo("Europe/Copenhagen")


def _config(sendsms_url: str) -> str:
    return f"""\
[[agencies]]
id = "{AGENCY}"
name = "Horsens Bibliotek"
timezone = "Europe/Copenhagen"
language = "da"
country_code = "45"

[agencies.sms]
driver = "kannel"
url = "{sendsms_url}"
username = "{SENDSMS_USERNAME}"
password = "${{E2E_KANNEL_PASSWORD}}"
source = "{SENDER}"

[agencies.renewal]
sms_enabled = true
loan_days = 30
max_renewals = 3

[[agencies.integration_users]]
username = "sms"
password = "${{E2E_INBOUND_PASSWORD}}"
"""


def _service(port: int) -> str:
    get_url = (
        f"http://127.0.0.1:{port}/rest/{AGENCY}/smsgateway?user=sms&password={INBOUND_PASSWORD}"
        "&shortcode=%P&countrycode=45&number=%p&text=%a"
    )
    return f"""\
group = sms-service
keyword = default
get-url = "{get_url}"
omit-empty = true
"""


def test_sms_renewal_through_real_kannel(db: Database, settings: Settings, tmp_path: Path) -> None:
    kannel_binaries()  # skip (or, in CI, fail) before starting anything
    # All five held at once, so that patronlink's port is none of Kannel's.
    admin, box, smsc, sendsms, port = free_ports(5)
    ports = KannelPorts(admin, box, smsc, sendsms)
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "PATRONLINK_DATABASE_URL": settings.database_url,
        "PATRONLINK_DISPATCH_POLL_SECONDS": "0.2",
        "E2E_KANNEL_PASSWORD": SENDSMS_PASSWORD,
        "E2E_INBOUND_PASSWORD": INBOUND_PASSWORD,
    }
    config = tmp_path / "patronlink.toml"
    config.write_text(_config(ports.sendsms_url), encoding="utf-8")
    check_cli(["config", "apply", str(config)], env)
    token = check_cli(["token", "create", "--agency", AGENCY, "--name", "e2e"], env).strip()
    today = dt.datetime.now(COPENHAGEN).date()

    log = tmp_path / "serve.log"
    server = start(["serve", "--port", str(port)], env, log)
    try:
        wait_for_health(base, server, log)
        api = f"/api/v1/agencies/{AGENCY}"
        with httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=10
        ) as client:
            for path, body in [
                ("/patrons", {"patron_id": "7001", "name": "Karen Blixen", "phones": ["52903991"]}),
                ("/items", {"item_number": "5010000001", "title": "Babettes gæstebud"}),
                (
                    "/loans",
                    {
                        "patron_id": "7001",
                        "item_number": "5010000001",
                        "due_date": (today + dt.timedelta(days=3)).isoformat(),
                    },
                ),
            ]:
                created = client.post(api + path, json=body)
                assert created.status_code == 201, created.text

            kannel_dir = tmp_path / "kannel"
            kannel_dir.mkdir()
            with running_kannel(
                kannel_dir,
                ports,
                services=_service(port),
                inject=f"{PATRON_PHONE} {SHORTCODE} text Horsens forny alle",
            ) as kannel:
                kannel.wait_for_transcript("fornyet til", timeout=WAIT_SECONDS)
                time.sleep(0.5)  # a second text (a Kannel error reply) would show up now
                transcript = kannel.transcript()

            inbound = client.get(api + "/inbound-sms").json()
            loans = client.get(api + "/patrons/7001/loans").json()
            messages = client.get(api + "/messages").json()
    finally:
        stop(server)
    output = log.read_text(errors="replace")

    assert len(inbound) == 1, inbound
    assert inbound[0]["outcome"] == "renewed", inbound
    assert (inbound[0]["number"], inbound[0]["shortcode"]) == (PATRON_PHONE, SHORTCODE)
    assert inbound[0]["text"] == "Horsens forny alle"
    assert (inbound[0]["renewed"], inbound[0]["patrons_matched"]) == (1, ["7001"])

    [loan] = loans
    new_due = dt.date.fromisoformat(loan["due_date"])
    # today + loan_days, in the agency's time zone (the test may straddle midnight)
    assert new_due in {today + dt.timedelta(days=30), today + dt.timedelta(days=31)}, loan
    assert loan["renewal_count"] == 1

    # One text, from the configured source to the patron, as the fake SMSC line protocol shows
    # it: "from to type text", the reply's second line following on a line of its own.
    assert transcript == (
        f"{SENDER} {PATRON_PHONE} text Fornyelse for Karen Blixen:\n"
        f"Babettes gæstebud: fornyet til {new_due:%d.%m.%Y}"
    )

    # ...and it went out through the Kannel driver, accepted by smsbox.
    [message] = messages
    assert message["id"] in inbound[0]["replies"]
    assert (message["status"], message["origin"], message["to"]) == (
        "sent",
        "renewal",
        PATRON_PHONE,
    )
    assert (message["driver"], message["http_status"], message["code"]) == ("kannel", 202, "0")

    assert "/rest/DK-761500/smsgateway" in output
    assert INBOUND_PASSWORD not in output
    assert SENDSMS_PASSWORD not in output
