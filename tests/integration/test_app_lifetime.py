"""An app that is done with is freed: nothing global keeps it alive.

FastAPI keeps every endpoint and dependency it has classified in caches of up to 4,096
callables. An endpoint defined as a closure over its app (``/docs`` was one) kept that whole app
alive: its routes, models and validators, some 15,000 objects. One app per process never notices;
the test suite builds an app for most tests, and its workers grew to millions of objects whose
garbage collections held the interpreter for seconds and stalled later tests' requests past
their timeouts.
"""

from __future__ import annotations

import gc
import weakref

import httpx

from patronlink.settings import Settings
from patronlink.storage.database import Database
from patronlink.web.app import create_app
from tests.conftest import FrozenClock
from tests.support.live_server import live_server

PATHS = ("/healthz", "/docs", "/openapi.json", "/staff/login", "/rest-dlf/patron/")


def _served_and_dropped(
    settings: Settings, db: Database, clock: FrozenClock
) -> weakref.ref[object]:
    app = create_app(settings, db, clock)
    with live_server(app) as url, httpx.Client(base_url=url) as client:
        statuses = {path: client.get(path).status_code for path in PATHS}
    assert statuses["/healthz"] == 200
    assert statuses["/docs"] == 200
    return weakref.ref(app)


def test_an_app_that_served_requests_is_freed(
    db: Database, settings: Settings, clock: FrozenClock
) -> None:
    apps = [_served_and_dropped(settings, db, clock) for _ in range(2)]
    gc.collect()
    assert [ref() is None for ref in apps] == [True, True]
