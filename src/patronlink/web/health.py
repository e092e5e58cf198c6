"""Liveness, readiness and metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

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
        }
    },
)
def metrics(request: Request) -> Response:
    """Prometheus metrics: HTTP requests, the outbox, sends and imports."""
    registry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
