"""Scale-out on PostgreSQL: two ``worker`` and two ``serve --no-worker`` processes share the load.

Real processes against one database. Staff clients queue texts through both servers at once; a
loopback XML gateway records every text it receives. Each text reaches the gateway exactly once
(nothing crashes here), and both workers send a fair share. An import source is scheduled every
two seconds (croniter's optional sixth field is seconds; with ``* * * * *`` the same claim would
happen once a minute, which is what makes this test fast): each due time runs exactly once,
whichever worker's scheduler claims it.
"""

from __future__ import annotations

import collections
import os
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from patronlink.settings import Settings
from patronlink.storage import tables
from patronlink.storage.database import Database
from tests.support.feeds import folio_body, folio_user
from tests.support.gateway_servers import SPEC_XML_SUCCESS, Reply, XmlGatewayServer
from tests.support.processes import check_cli, free_port, start, stop, wait_for_health

pytestmark = pytest.mark.slow  # a long fault-injection run: `make long` (CI runs it)

AGENCY = "DK-761500"
TEXTS_PER_SERVER = 1000
SCHEDULE_SECONDS = 2
MIN_DUE_TIMES = 4
DEADLINE_SECONDS = 120

CONFIG = """\
[[agencies]]
id = "{agency}"
name = "Horsens"

[agencies.sms]
driver = "xml"
url = "{gateway}"
username = "horsens"
password = "scale-out-sms"
concurrency = 16

[[import_sources]]
id = "students"
agency = "{agency}"
url = "{feed}"
format = "folio-json"
schedule = "* * * * * */{every}"
"""


def queue_texts(base: str, token: str, label: str, answers: list[int]) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
        for n in range(TEXTS_PER_SERVER):
            answer = client.post(
                f"/api/v1/agencies/{AGENCY}/messages",
                json={"to": "52903991", "text": f"Scale-out {label} {n:05d}"},
            )
            answers.append(answer.status_code)


def statuses(db: Database) -> dict[str, int]:
    m = tables.messages
    with db.engine.connect() as conn:
        rows = conn.execute(select(m.c.status, func.count()).group_by(m.c.status)).all()
    return {str(s): int(n) for s, n in rows}


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_two_workers_and_two_servers_share_the_load_without_repeats(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "PATRONLINK_DATABASE_URL": settings.database_url,
        "PATRONLINK_DISPATCH_POLL_SECONDS": "0.1",
        "PATRONLINK_DISPATCH_BATCH_SIZE": "50",
        "PATRONLINK_SCHEDULER_INTERVAL_SECONDS": "0.3",
    }
    log = tmp_path / "processes.log"
    feed = tmp_path / "students.json"
    feed.write_bytes(folio_body([folio_user(i) for i in range(50)]))
    fast = Reply(200, SPEC_XML_SUCCESS, "text/xml", "iso-8859-1", delay=0.01)
    processes: list[subprocess.Popen[bytes]] = []
    with XmlGatewayServer(default=fast) as gateway:
        config = tmp_path / "patronlink.toml"
        config.write_text(
            CONFIG.format(
                agency=AGENCY, gateway=gateway.url, feed=feed.as_uri(), every=SCHEDULE_SECONDS
            )
        )
        check_cli(["config", "apply", str(config)], env)
        token = check_cli(["token", "create", "--name", "scale-out"], env).strip()
        try:
            bases = []
            for _ in range(2):
                port = free_port()
                server = start(["serve", "--no-worker", "--port", str(port)], env, log)
                processes.append(server)
                bases.append(f"http://127.0.0.1:{port}")
                wait_for_health(bases[-1], server, log)
            processes += [start(["worker"], env, log) for _ in range(2)]
            started = time.monotonic()
            answers: list[list[int]] = [[], []]
            clients = [
                threading.Thread(target=queue_texts, args=(base, token, f"s{i}", answers[i]))
                for i, base in enumerate(bases)
            ]
            for client in clients:
                client.start()
            for client in clients:
                client.join(DEADLINE_SECONDS)
            assert [set(a) for a in answers] == [{201}, {201}]
            deadline = time.monotonic() + DEADLINE_SECONDS
            # Every text sent, and the schedule given time for several due times.
            while (left := statuses(db)).keys() - {"sent"} or (
                time.monotonic() - started < SCHEDULE_SECONDS * (MIN_DUE_TIMES + 1)
            ):
                assert all(p.poll() is None for p in processes), log.read_text(errors="replace")
                assert time.monotonic() < deadline, f"not delivered: {left}"
                time.sleep(0.2)
        finally:
            for process in processes:
                stop(process)
        received = collections.Counter(r.form["message"] for r in gateway.requests)

    total = 2 * TEXTS_PER_SERVER
    assert statuses(db) == {"sent": total}
    assert len(received) == total
    assert set(received.values()) == {1}, "a text reached the gateway twice"
    a = tables.message_attempts
    r = tables.import_runs
    with db.engine.connect() as conn:
        shares = dict(conn.execute(select(a.c.worker, func.count()).group_by(a.c.worker)).all())
        runs = list(conn.execute(select(r).order_by(r.c.id)))
    assert len(shares) == 2, f"not both workers sent: {shares}"
    assert min(shares.values()) >= total // 10, f"one worker did almost nothing: {shares}"
    due = [run.due_at for run in runs]
    assert len(due) >= MIN_DUE_TIMES, f"only {len(due)} scheduled runs"
    assert len(set(due)) == len(due), "a due time ran more than once"
    assert {run.trigger for run in runs} == {"schedule"}
    assert {run.status for run in runs} == {"succeeded"}
    print(
        f"texts per worker {sorted(shares.values())}; {len(runs)} scheduled runs, one per due time"
    )
