"""JSON logs, an access log that never shows a secret, and Prometheus metrics."""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Any
from urllib.parse import quote, unquote

import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Query parameters whose values never reach a log line (the inbound SMS spec puts the password in
# the query string).
SECRET_PARAMETERS = frozenset({"password", "pass", "pwd", "token", "secret", "api_key", "apikey"})
# Query parameters that carry patrons' data: the inbound SMS callback's sender and text (spec
# §3), and the staff searches by number or name. Redacted unless PATRONLINK_LOG_PATRON_DATA.
PATRON_PARAMETERS = frozenset({"number", "text", "to", "from", "msisdn", "q"})
REDACTED = "***"
# Metric labels take only values from these sets: a client that invents methods or paths must not
# be able to add series (each one costs memory for the life of the process, and /metrics grows).
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER = "other"


def metric_labels(scope: Scope) -> tuple[str, str]:
    """The (method, route) labels of a request: a known method and a route template, or other."""
    method = scope.get("method", "")
    route = scope.get("route")
    template = getattr(route, "path", None)
    return (
        method if method in KNOWN_METHODS else OTHER,
        template if isinstance(template, str) else OTHER,
    )


def configure_logging(level: str = "info", fmt: str = "json") -> None:
    """Route stdlib and structlog records through one JSON (or console) renderer on stderr."""
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    # JSON has no place for a traceback object: render it as text, in the "exception" field
    # (the console renderer prints it itself, prettily).
    exceptions: list[Any] = [structlog.processors.format_exc_info] if fmt == "json" else []
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                *exceptions,
                renderer,
            ],
            # ExtraAdder: the fields a stdlib call passes as ``extra={...}`` are kept.
            foreign_pre_chain=[
                *shared,
                structlog.stdlib.ExtraAdder(),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("uvicorn.access", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    _log_uncaught_exceptions()


def _log_uncaught_exceptions() -> None:
    """An exception nobody caught ends as one log line at critical level like every other line
    (JSON with the traceback as text), not as Python's bare traceback on stderr."""
    fatal = logging.getLogger("patronlink.fatal")

    def on_uncaught(kind: type[BaseException], error: BaseException, tb: Any) -> None:
        if issubclass(kind, KeyboardInterrupt):
            sys.__excepthook__(kind, error, tb)
            return
        fatal.critical(
            "uncaught exception: %s: %s", kind.__name__, error, exc_info=(kind, error, tb)
        )

    def on_thread_uncaught(args: threading.ExceptHookArgs) -> None:
        if args.exc_value is None or issubclass(args.exc_type, SystemExit):
            return
        name = args.thread.name if args.thread is not None else "?"
        fatal.critical(
            "uncaught exception in thread %s: %s: %s",
            name,
            args.exc_type.__name__,
            args.exc_value,
            exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
        )

    sys.excepthook = on_uncaught
    threading.excepthook = on_thread_uncaught


def redact_query(raw: bytes, hidden: frozenset[str] = SECRET_PARAMETERS) -> str:
    """The query string with the values of ``hidden`` parameters (by default the secret ones)
    replaced, safe to log.

    Works on the raw bytes, so malformed percent-encoding or invalid UTF-8 is still redacted.
    """
    parts = []
    for pair in raw.split(b"&"):
        name, sep, _value = pair.partition(b"=")
        decoded = unquote(name.decode("latin-1").replace("+", " "), errors="replace")
        if sep and decoded.strip().lower() in hidden:
            parts.append(name.decode("latin-1") + "=" + REDACTED)
        else:
            parts.append(quote(pair.decode("latin-1"), safe="=&+%/:,;@!$'()*~"))
    return "&".join(parts)


class Metrics:
    """The app's metrics, in a registry of its own (several apps can live in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "patronlink_http_requests",
            "HTTP requests by route template, method and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "patronlink_http_request_duration_seconds",
            "HTTP request latency by route template",
            ["method", "route"],
            registry=self.registry,
        )


class AccessLog:
    """ASGI middleware: one log line and the metrics per request, secrets redacted."""

    def __init__(self, app: ASGIApp, metrics: Metrics, *, patron_data: bool = False) -> None:
        self.app = app
        self.metrics = metrics
        # Patrons' numbers and texts stay out of the log unless the operator asks for them.
        self.hidden = SECRET_PARAMETERS if patron_data else SECRET_PARAMETERS | PATRON_PARAMETERS
        self.log = structlog.get_logger("patronlink.access")
        self._stdlib = logging.getLogger("patronlink.access")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - start
            method, template = metric_labels(scope)
            self.metrics.requests.labels(method, template, str(status)).inc()
            self.metrics.latency.labels(method, template).observe(elapsed)
            # At level warning there is no line to write: skip redacting and rendering it.
            if self._stdlib.isEnabledFor(logging.INFO):
                client = scope.get("client")
                self.log.info(
                    "request",
                    method=scope["method"],
                    path=scope.get("raw_path", b"").decode("latin-1") or scope["path"],
                    query=redact_query(scope.get("query_string", b""), self.hidden),
                    status=status,
                    duration_ms=round(elapsed * 1000, 2),
                    client=client[0] if client else None,
                )
