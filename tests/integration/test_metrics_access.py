"""Issue 13, item 3: /metrics is bounded and not public.

Invented methods and unmatched paths all land in the label value ``other``, so no client can add
series; /metrics asks for PATRONLINK_METRICS_TOKEN unless PATRONLINK_METRICS_PUBLIC=true, or is
served on PATRONLINK_METRICS_PORT alone.
"""

from __future__ import annotations

import re
import secrets

import httpx

from patronlink.settings import Settings
from patronlink.storage.database import Database
from patronlink.web.app import create_app
from patronlink.web.health import start_metrics_server
from tests.conftest import FrozenClock
from tests.support.live_server import live_server

TOKEN = "metrics-token-" + "x" * 20


def series(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_invented_methods_and_paths_add_no_series(
    db: Database, settings: Settings, clock: FrozenClock
) -> None:
    public = settings.model_copy(update={"metrics_public": True})
    with live_server(create_app(public, db, clock)) as url, httpx.Client(base_url=url) as c:

        def invent(n: int) -> None:
            for i in range(n):
                method = "X" + secrets.token_hex(4).upper()
                c.request(method, "/healthz")
                c.request(method, f"/no/such/path/{i}")
                c.get(f"/also/not/here/{i}")

        c.get("/healthz")
        invent(5)
        c.get("/metrics")
        before = series(c.get("/metrics").text)
        invent(300)
        after = c.get("/metrics").text
    # Before issue 13 each invented method was a label value of its own: 300 methods made
    # thousands of series. Now the first few requests made every series there will be.
    assert len(series(after)) == len(before)
    methods = set(re.findall(r'method="([^"]*)"', after))
    assert methods <= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"}
    routes = set(re.findall(r'route="([^"]*)"', after))
    assert not any(r.startswith(("/no/", "/also/")) for r in routes)
    assert (
        'patronlink_http_requests_total{method="other",route="/healthz",status="405"} 305.0'
        in after
    )
    assert 'patronlink_http_requests_total{method="GET",route="other",status="404"} 305.0' in after


def test_metrics_need_the_token_by_default(
    db: Database, settings: Settings, clock: FrozenClock
) -> None:
    for configured in (settings, Settings(database_url=settings.database_url, metrics_token=TOKEN)):
        app = create_app(configured, db, clock)
        with live_server(app) as url, httpx.Client(base_url=url) as c:
            refused = c.get("/metrics")
            assert refused.status_code == 401
            assert refused.headers["www-authenticate"] == "Bearer"
            assert "PATRONLINK_METRICS_TOKEN" in refused.json()["detail"]
            wrong = c.get("/metrics", headers={"Authorization": "Bearer not-the-token"})
            assert wrong.status_code == 401
            if configured.metrics_token is not None:
                good = c.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
                assert good.status_code == 200
                assert "patronlink_http_requests_total" in good.text


def test_public_metrics_when_configured(
    db: Database, settings: Settings, clock: FrozenClock
) -> None:
    public = settings.model_copy(update={"metrics_public": True})
    with live_server(create_app(public, db, clock)) as url:
        assert httpx.get(f"{url}/metrics").status_code == 200


def test_metrics_on_their_own_port(db: Database, settings: Settings, clock: FrozenClock) -> None:
    apart = settings.model_copy(update={"metrics_port": 21999})
    app = create_app(apart, db, clock)
    server, thread = start_metrics_server("127.0.0.1", 0, app.state.metrics.registry)
    try:
        port = server.server_port
        with live_server(app) as url:
            httpx.get(f"{url}/healthz")
            assert httpx.get(f"{url}/metrics").status_code == 404  # not on the main port
            own = httpx.get(f"http://127.0.0.1:{port}/metrics")
        assert own.status_code == 200
        assert 'route="/healthz"' in own.text
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_the_token_is_kept_out_of_reprs(settings: Settings) -> None:
    configured = Settings(database_url=settings.database_url, metrics_token=TOKEN)
    assert TOKEN not in repr(configured)  # a SecretStr, like every secret in a log line
    assert TOKEN not in str(configured.model_dump())
