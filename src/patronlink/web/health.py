"""Liveness, readiness and metrics."""

from __future__ import annotations

import threading
from wsgiref.simple_server import WSGIServer

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    generate_latest,
    start_http_server,
)

from patronlink.services.secrets import constant_time_equals
from patronlink.settings import Settings
from patronlink.storage.database import Database
from patronlink.web.deps import DbDep
from patronlink.worker.health import Health

router = APIRouter(tags=["operations"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process answers."""
    return {"status": "ok"}


def readiness(db: Database, worker: Health | None) -> JSONResponse:
    """200 when the database takes a write and every loop of the worker (if this process runs
    one) is alive and making progress; otherwise 503 with every reason."""
    problems: list[str] = []
    refused = db.probe_write()
    if refused is not None:
        problems.append(f"database refuses a write: {refused}")
    if worker is not None:
        problems += worker.problems()
    if not problems:
        return JSONResponse({"status": "ready"})
    return JSONResponse(
        {"status": "unavailable", "error": "; ".join(problems), "problems": problems}, 503
    )


@router.get(
    "/readyz",
    responses={
        503: {
            "description": "not ready: the database refuses a write, or the worker "
            "in this process has stopped or is failing; `error` says why"
        }
    },
)
def readyz(db: DbDep, request: Request) -> JSONResponse:
    """Ready for traffic: the database takes a write and the in-process worker (if any) runs."""
    return readiness(db, getattr(request.app.state, "worker_health", None))


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "description": "the Prometheus text exposition format",
            "content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}},
        },
        401: {
            "description": "no or a wrong metrics token",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {"detail": {"type": "string"}},
                        "required": ["detail"],
                    }
                }
            },
        },
        404: {
            "description": "the metrics are served on PATRONLINK_METRICS_PORT instead",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {"detail": {"type": "string"}},
                        "required": ["detail"],
                    }
                }
            },
        },
    },
)
def metrics(request: Request) -> Response:
    """Prometheus metrics: HTTP requests, the outbox, sends and imports.

    Needs ``Authorization: Bearer <PATRONLINK_METRICS_TOKEN>`` unless
    ``PATRONLINK_METRICS_PUBLIC=true``; with ``PATRONLINK_METRICS_PORT`` the metrics are served
    on that port alone and this path answers 404.
    """
    settings: Settings = request.app.state.settings
    if settings.metrics_port is not None:
        return JSONResponse({"detail": "Not Found"}, 404)
    if not settings.metrics_public and not _token_matches(
        settings, request.headers.get("authorization")
    ):
        return JSONResponse(
            {"detail": METRICS_REFUSED}, 401, headers={"WWW-Authenticate": "Bearer"}
        )
    registry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


METRICS_REFUSED = (
    "/metrics needs Authorization: Bearer <PATRONLINK_METRICS_TOKEN> "
    "(or PATRONLINK_METRICS_PUBLIC=true)"
)


def _token_matches(settings: Settings, header: str | None) -> bool:
    if settings.metrics_token is None or not header:
        return False
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return constant_time_equals(given.strip(), settings.metrics_token.get_secret_value())


def start_metrics_server(
    host: str, port: int, registry: CollectorRegistry
) -> tuple[WSGIServer, threading.Thread]:
    """``/metrics`` alone on its own port (PATRONLINK_METRICS_PORT), for a network that only
    the monitoring reaches; a daemon thread serves it until ``server.shutdown()``."""
    return start_http_server(port, addr=host, registry=registry)
