"""The worker's own small HTTP port: ``/metrics``, ``/healthz`` and ``/readyz``.

``patronlink worker --metrics-port`` serves it beside the dispatcher, in the same event loop. It is
a dedicated port meant for the monitoring network (bind it to a private address), so ``/metrics``
needs no token here. Ready means the database takes a write and every loop of the worker is alive
and making progress (``worker/health.py``).
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from patronlink import __version__
from patronlink.storage.database import Database
from patronlink.web.health import readiness
from patronlink.worker.health import Health


def create_worker_port_app(db: Database, registry: CollectorRegistry, health: Health) -> FastAPI:
    app = FastAPI(title="patronlink worker", version=__version__, docs_url=None, redoc_url=None)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        """The process answers."""
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz() -> JSONResponse:
        """The database takes a write and every loop of the worker runs."""
        return readiness(db, health)

    @app.get("/metrics")
    def metrics() -> Response:
        """Prometheus metrics of this worker: sends, the outbox, imports, its loops."""
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The worker stops on SIGTERM itself, and stops this server with it.
        yield


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound now so that a port in use is a clear error at start-up
    (OSError), not a failure inside the running server."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(64)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def worker_port_server(app: FastAPI, sock: socket.socket) -> uvicorn.Server:
    """A uvicorn server for ``app`` on ``sock``; run ``server.serve(sockets=[sock])`` as a task
    and set ``server.should_exit`` to stop it."""
    config = uvicorn.Config(
        app, log_config=None, access_log=False, server_header=False, lifespan="off"
    )
    return _Server(config)
