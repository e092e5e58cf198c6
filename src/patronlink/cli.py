"""The ``patronlink`` command. Errors are one line on stderr and a non-zero exit, never a trace."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from patronlink.domain.errors import ConfigError, PatronlinkError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from patronlink.bootstrap import Container
    from patronlink.domain.paging import Paged
    from patronlink.services.clock import Clock
    from patronlink.settings import Settings
    from patronlink.storage.database import Database

F = TypeVar("F", bound=Callable[..., Any])

EXIT_USAGE = 2
EXIT_FAILED = 1


class Context:
    """What every command needs: the composition root's ``Container``, built on first use (so
    ``--help`` reads no settings and touches no database)."""

    def __init__(self, database_url: str | None, command: str | None = None) -> None:
        self._database_url = database_url
        # PostgreSQL's application_name: which command holds a connection (pg_stat_activity).
        self.application_name = f"patronlink {command}" if command else "patronlink"
        self._container: Container | None = None

    @property
    def container(self) -> Container:
        if self._container is None:
            from patronlink.bootstrap import build_container

            self._container = build_container(
                application_name=self.application_name, database_url=self._database_url
            )
        return self._container

    @property
    def settings(self) -> Settings:
        return self.container.settings

    @property
    def db(self) -> Database:
        return self.container.database

    @property
    def environ(self) -> Mapping[str, str]:
        """Where ``${VAR}`` secrets of the configuration resolve from: the process's environment."""
        return self.container.environ

    @property
    def clock(self) -> Clock:
        return self.container.clock

    def close(self) -> None:
        if self._container is not None:
            self._container.close()


pass_ctx = click.make_pass_decorator(Context)


def fail(message: str, code: int = EXIT_FAILED) -> None:
    click.echo(f"patronlink: {message}", err=True)
    sys.exit(code)


def cli_actor() -> Any:
    """The operator at this terminal, for the audit log: the login name and the host."""
    import getpass
    import socket

    from patronlink.domain.audit import Actor, ActorKind

    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no login name in a bare container
        user = f"uid {os.getuid()}"
    return Actor(ActorKind.CLI, user, socket.gethostname())


def _database_name(ctx: Context) -> str:
    """The database as messages name it: the SQLite file's absolute path, or the URL's host."""
    path = ctx.settings.sqlite_path()
    if path is not None:
        return str(path)
    from sqlalchemy.engine import make_url

    return make_url(ctx.settings.database_url).render_as_string(hide_password=True)


def _ensure_schema(ctx: Context) -> None:
    path = ctx.settings.sqlite_path()
    if path is not None and not path.exists():
        # Opening it would create an empty database here, in whatever folder this runs from.
        fail(
            f"there is no database at {path}: run `patronlink db upgrade` first, from the "
            "folder that holds var/, or set PATRONLINK_DATABASE_URL"
        )
    from patronlink.storage.migrate import schema_state

    state = schema_state(ctx.db.engine)
    if state.up_to_date:
        return
    if state.newer:
        message = (
            f"the database schema of {_database_name(ctx)} is at revision {state.current}, "
            f"newer than this patronlink (which expects {state.head}): it was upgraded by a "
            "newer version; run that version"
        )
        if not ctx.settings.allow_newer_schema:
            fail(f"{message} (or set PATRONLINK_ALLOW_NEWER_SCHEMA=true, see docs/operations.md)")
        click.echo(f"patronlink: warning: {message}; starting anyway", err=True)
        return
    fail(
        f"the database schema of {_database_name(ctx)} is at revision "
        f"{state.current or 'empty'}, older than this patronlink (which expects {state.head}): "
        "run `patronlink db upgrade` first"
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--database-url",
    envvar="PATRONLINK_DATABASE_URL",
    help="SQLAlchemy URL (default: SQLite under ./var/).",
    show_envvar=True,
)
@click.version_option(package_name="patronlink")
@click.pass_context
def main(click_ctx: click.Context, database_url: str | None) -> None:
    """patronlink: patron import, SMS, renewal by SMS and self-registration for libraries."""
    click_ctx.obj = Context(database_url, click_ctx.invoked_subcommand)
    click_ctx.call_on_close(click_ctx.obj.close)


@main.group()
def db() -> None:
    """The database schema."""


@db.command("upgrade")
@pass_ctx
def db_upgrade(ctx: Context) -> None:
    """Create or migrate the schema to the newest version (safe to run again, and at once)."""
    from sqlalchemy.exc import OperationalError

    from patronlink.storage.migrate import LOCK_NOT_AVAILABLE, NewerSchemaError, upgrade

    settings = ctx.settings

    def waiting() -> None:
        click.echo("another `patronlink db upgrade` is running: waiting for it", err=True)

    def retrying(attempt: int, delay: float) -> None:
        click.echo(
            f"a migration waited {settings.migration_lock_timeout_seconds:g} s for a table lock "
            f"held by another transaction (attempt {attempt}); trying again in {delay:g} s",
            err=True,
        )

    try:
        before, after = upgrade(
            ctx.db.engine,
            lock_timeout_seconds=settings.migration_lock_timeout_seconds,
            attempts=settings.migration_attempts,
            on_wait=waiting,
            on_retry=retrying,
        )
    except NewerSchemaError as exc:
        fail(str(exc))
    except OperationalError as exc:
        if getattr(exc.orig, "sqlstate", None) != LOCK_NOT_AVAILABLE:
            raise
        fail(
            f"a migration could not take a table lock within "
            f"{settings.migration_lock_timeout_seconds:g} s in {settings.migration_attempts} "
            "attempts: a long transaction holds it (see pg_stat_activity); nothing was changed"
        )
    if before == after:
        click.echo(f"database schema is up to date ({after})")
    else:
        click.echo(f"database schema upgraded from {before or 'empty'} to {after}")


@main.group()
def config() -> None:
    """Agencies, gateways, renewal, users and import sources from a TOML file."""


@config.command("apply")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--check", is_flag=True, help="Validate only; write nothing.")
@pass_ctx
def config_apply(ctx: Context, file: Path, check: bool) -> None:
    """Validate FILE completely, then apply it in one transaction (nothing is written on error)."""
    from patronlink.config.loader import load_config
    from patronlink.services.configure import apply_config

    known: list[str] = []
    if not check:
        _ensure_schema(ctx)
        with ctx.db.transaction() as repos:
            known = [a.id for a in repos.agencies.list()]
    try:
        loaded = load_config(file, ctx.environ, known)
    except ConfigError as exc:
        fail(f"{file}: {exc}", EXIT_USAGE)
    if check:
        click.echo(f"{file}: valid")
        return
    report = apply_config(ctx.db, loaded, ctx.environ, ctx.clock, actor=cli_actor())
    for line in report.changes:
        click.echo(line)
    if not report.changed:
        click.echo("nothing changed")


@config.command("show")
@click.option("--agency", default=None, help="Only this agency (default: all).")
@pass_ctx
def config_show(ctx: Context, agency: str | None) -> None:
    """Print the configuration in the database as TOML (secrets hidden; ${VAR} shown as is)."""
    import tomli_w

    from patronlink.services.config_export import export_config

    _ensure_schema(ctx)
    click.echo(tomli_w.dumps(export_config(ctx.db, agency)), nl=False)


@main.command()
@pass_ctx
def demo(ctx: Context) -> None:
    """Load the demo agency DK-761500 with patrons, items and loans (idempotent)."""
    from patronlink.services.demo import DEMO_AGENCY, load_demo

    _ensure_schema(ctx)
    created = load_demo(ctx.db, ctx.clock)
    for line in created:
        click.echo(f"created {line}")
    if not created:
        click.echo(f"demo agency {DEMO_AGENCY} is loaded already")


@main.command()
@click.option("--host", default=None, help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default 8000).")
@click.option("--no-worker", is_flag=True, help="Serve HTTP only; run `patronlink worker` apart.")
@pass_ctx
def serve(ctx: Context, host: str | None, port: int | None, no_worker: bool) -> None:
    """Run the HTTP server (and, unless --no-worker, the SMS worker in the same process)."""
    import gc

    import uvicorn

    from patronlink.web.app import create_app
    from patronlink.web.observability import configure_logging

    settings = ctx.settings
    configure_logging(settings.log_level, settings.log_format)
    _ensure_schema(ctx)
    _check_environment(ctx)
    c = ctx.container
    app = create_app(
        settings,
        c.database,
        c.clock,
        run_worker=not no_worker,
        environ=c.environ,
        gateways=c.gateways,
    )
    if settings.metrics_port is not None:
        from patronlink.web.health import start_metrics_server

        start_metrics_server(
            host or settings.host, settings.metrics_port, app.state.metrics.registry
        )
    # What exists now (modules, the app, the table metadata) lives as long as the process. Frozen,
    # it is left out of the garbage collector's full collections, which otherwise walk all of it
    # and stopped every request for up to hundreds of ms under load (bench/inbound.py).
    gc.collect()
    gc.freeze()
    uvicorn.run(
        app,
        host=host or settings.host,
        port=port or settings.port,
        log_config=None,
        access_log=False,  # our own access log redacts secrets in query strings
        server_header=False,
    )


@main.command()
@click.option("--once", is_flag=True, help="Deliver everything due now, then exit.")
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Serve /metrics, /healthz and /readyz on this port (no token: keep it private).",
)
@click.option(
    "--metrics-host",
    default=None,
    help="Address of the metrics port (default 127.0.0.1).",
)
@pass_ctx
def worker(ctx: Context, once: bool, metrics_port: int | None, metrics_host: str | None) -> None:
    """Run the SMS dispatcher (and the import scheduler) until stopped with SIGTERM or Ctrl-C.

    Exits 1 when a loop meets a failure it cannot carry on after (the database going away is
    not one: the loops wait for it), so that a supervisor starts it again.
    """
    import logging

    from patronlink.web.observability import configure_logging
    from patronlink.web.worker_port import bind
    from patronlink.worker.runner import WorkerFailed

    settings = ctx.settings
    configure_logging(settings.log_level, settings.log_format)
    _ensure_schema(ctx)
    _check_environment(ctx)
    port = metrics_port if metrics_port is not None else settings.worker_metrics_port
    host = metrics_host or settings.worker_metrics_host
    sock = None
    if port is not None and not once:
        try:
            sock = bind(host, port)
        except OSError as exc:
            fail(f"cannot listen on {host}:{port} for metrics: {exc.strerror or exc}", EXIT_USAGE)
    try:
        _run_worker_process(ctx, once, sock)
    except WorkerFailed as exc:
        # Logged as JSON (with the traceback) for the log collector, and exit non-zero so that
        # the supervisor starts the worker again.
        logging.getLogger("patronlink.worker").critical(
            "worker ends: %s", exc, exc_info=exc.__cause__ or exc
        )
        sys.exit(EXIT_FAILED)


def _run_worker_process(ctx: Context, once: bool, sock: Any) -> None:
    """The worker's event loop: the loops, and the metrics port on ``sock`` if given."""
    import asyncio
    import logging
    import signal

    from prometheus_client import CollectorRegistry

    from patronlink.services.import_metrics import ImportMetrics
    from patronlink.web.worker_port import create_worker_port_app, worker_port_server
    from patronlink.worker.metrics import LoopHealthCollector, QueueDepthCollector
    from patronlink.worker.runner import run_worker, worker_health

    settings = ctx.settings

    async def main_loop() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        registry = CollectorRegistry()
        health = worker_health(settings)
        server = None
        serving = None
        if sock is not None:
            registry.register(QueueDepthCollector(ctx.db, ctx.clock))
            registry.register(LoopHealthCollector(health))
            server = worker_port_server(create_worker_port_app(ctx.db, registry, health), sock)
            serving = asyncio.create_task(server.serve(sockets=[sock]))
            bound = sock.getsockname()
            logging.getLogger("patronlink.worker").info(
                "metrics, health and readiness on http://%s:%s",
                bound[0],
                bound[1],
                extra={"metrics_port": bound[1]},
            )
        try:
            stats = await run_worker(
                ctx.db,
                settings,
                ctx.clock,
                stop,
                once=once,
                registry=registry,
                import_observer=ImportMetrics(registry) if sock is not None else None,
                health=health,
                environ=ctx.environ,
                gateways=ctx.container.gateways,
            )
        finally:
            if server is not None and serving is not None:
                server.should_exit = True
                await serving
        if once:
            click.echo(
                f"claimed {stats.claimed}, sent {stats.sent}, "
                f"retry later {stats.retried}, error queue {stats.failed}"
            )

    asyncio.run(main_loop())


def _check_environment(ctx: Context) -> None:
    """Warn, naming them, about ${VAR}s the configuration uses and this process lacks.

    The process still starts (other agencies work); the named agencies' texts wait as queued.
    """
    import structlog

    from patronlink.services.environment_check import describe, missing_secrets

    missing = missing_secrets(ctx.db, ctx.environ)
    for line in describe(missing):
        click.echo(f"patronlink: warning: {line}", err=True)
    if missing:
        structlog.get_logger("patronlink.startup").warning(
            "configuration names environment variables this process lacks",
            missing=dict(missing),
        )


# --- listing commands ------------------------------------------------------------------------
_T = TypeVar("_T")


def listing(what: str, *, limit: int = 50, json_help: str | None = None) -> Callable[[F], F]:
    """The options of every command that lists: ``--limit``, ``--offset``, ``--all`` and
    ``--json`` (the parameters ``limit``, ``offset``, ``show_all`` and ``as_json``); feed them to
    ``_gather`` and ``_say_the_rest``."""
    json_text = "One JSON object per line" + (f", {json_help}." if json_help else ".")
    options = (
        click.option("--limit", default=limit, show_default=True, type=click.IntRange(1, 10000)),
        click.option(
            "--offset", default=0, show_default=True, type=click.IntRange(0), help="Skip rows."
        ),
        click.option("--all", "show_all", is_flag=True, help=f"Every {what} (ignores --limit)."),
        click.option("--json", "as_json", is_flag=True, help=json_text),
    )

    def decorate(command: F) -> F:
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


def _gather(
    fetch: Callable[[int, int], Paged[_T]], limit: int, offset: int, show_all: bool
) -> tuple[list[_T], Paged[_T]]:
    """The rows a listing command shows: one page, or with ``--all`` every page from ``offset``
    (fetched 1,000 at a time); and the last page fetched, for ``_say_the_rest``."""
    paged = fetch(1000 if show_all else limit, offset)
    rows = list(paged.items)
    while show_all and paged.next_offset is not None:
        paged = fetch(1000, paged.next_offset)
        rows.extend(paged.items)
    return rows, paged


def _say_the_rest(paged: Paged[Any], show_all: bool) -> None:
    """On stderr, so that ``--json`` output stays clean: how many rows match and how to see them."""
    if not show_all and paged.has_more:
        click.echo(
            f"patronlink: showing {paged.first}-{paged.last} of {paged.total}; "
            "use --all, or --offset and --limit, for the rest",
            err=True,
        )


@main.group()
def sms() -> None:
    """Outgoing texts and the staff error queue."""


def _parse_time(value: str | None, option: str) -> Any:
    import datetime as dt

    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        fail(f"{option} {value!r} is not an ISO 8601 time such as 2026-11-29T08:00+01:00", 2)
    if parsed.tzinfo is None:
        fail(f"{option} {value!r} needs a UTC offset, such as 2026-11-29T08:00+01:00", 2)
    return parsed


@sms.command("send")
@click.option("--agency", required=True, help="Agency ISIL or number.")
@click.option("--to", "to", required=True, help="Phone number (national or international).")
@click.option("--text", required=True, help="The text.")
@click.option(
    "--at",
    "at",
    default=None,
    help="Send at this time: ISO 8601, e.g. 2026-12-01T09:30 in the agency's time zone, "
    "or with an offset (+01:00, Z).",
)
@pass_ctx
def sms_send(ctx: Context, agency: str, to: str, text: str, at: str | None) -> None:
    """Queue a text; prints its message id."""
    import datetime as dt

    from patronlink.services.agencies import require_agency
    from patronlink.services.outbox import queue_sms

    _ensure_schema(ctx)
    send_at: dt.datetime | None = None
    if at is not None:
        try:
            parsed = dt.datetime.fromisoformat(at)
        except ValueError:
            fail(
                f"--at {at!r} is not an ISO 8601 time such as 2026-12-01T09:30 (the agency's "
                "local time) or 2026-12-01T09:30+01:00",
                2,
            )
            return
        if parsed.tzinfo is None:
            # A time without an offset is the agency's local time (daylight saving included).
            with ctx.db.transaction() as repos:
                parsed = parsed.replace(tzinfo=require_agency(repos, agency).zone)
        send_at = parsed
    click.echo(queue_sms(ctx.db, agency, to, text, ctx.clock, send_at=send_at, origin="cli"))


def _message_filter(
    ctx: Context,
    agency: str | None,
    status: tuple[str, ...],
    code: str | None,
    since: str | None = None,
    ids: tuple[int, ...] = (),
    delivery: tuple[str, ...] = (),
) -> Any:
    from patronlink.domain.outbox import MessageStatus
    from patronlink.services.agencies import require_agency
    from patronlink.storage.outbox import MessageFilter

    agency_id = None
    if agency:
        with ctx.db.transaction() as repos:
            agency_id = require_agency(repos, agency).id
    return MessageFilter(
        agency_id=agency_id,
        statuses=tuple(MessageStatus(s) for s in status),
        code=code,
        since=_parse_time(since, "--since"),
        ids=ids,
        deliveries=delivery,
    )


_STATUSES = click.Choice(["queued", "sending", "sent", "error", "cancelled"])


@sms.command("list")
@click.option("--agency", default=None, help="Only this agency.")
@click.option("--status", multiple=True, type=_STATUSES, help="Only these statuses (repeatable).")
@click.option("--code", default=None, help="Only this gateway code (e.g. 1002).")
@click.option(
    "--delivery",
    multiple=True,
    type=click.Choice(["none", "pending", "delivered", "failed"]),
    help="Only these delivery states (repeatable); failed: the operator did not deliver.",
)
@listing("matching text")
@pass_ctx
def sms_list(
    ctx: Context,
    agency: str | None,
    status: tuple[str, ...],
    code: str | None,
    delivery: tuple[str, ...],
    limit: int,
    offset: int,
    show_all: bool,
    as_json: bool,
) -> None:
    """List texts, newest first: a table with the time and the full last reason.

    When more texts match than are shown, a line on stderr says how many and how to see them.
    """
    import json

    from patronlink.services.outbox import page_messages

    _ensure_schema(ctx)
    f = _message_filter(ctx, agency, status, code, delivery=delivery)
    rows, paged = _gather(lambda n, at: page_messages(ctx.db, f, n, at), limit, offset, show_all)
    if as_json:
        for row in rows:
            click.echo(json.dumps(row, default=str, ensure_ascii=False))
    else:
        for line in _message_table(rows):
            click.echo(line)
    _say_the_rest(paged, show_all)


def _message_table(rows: list[dict[str, Any]]) -> list[str]:
    """Aligned columns under a header; the reason is last and never cut short."""
    header = ("ID", "CREATED (UTC)", "AGENCY", "STATUS", "TO", "ATTEMPTS", "REASON")
    table = [header]
    for row in rows:
        reason = " ".join(
            part
            for part in (
                row["last_code"] or "",
                row["last_description"] or "",
                f"(HTTP {row['last_http_status']})" if row["last_http_status"] else "",
            )
            if part
        )
        if row.get("delivery") == "failed":  # the operator's reason is the one staff need
            reason = f"{row['delivery_code'] or ''} {row['delivery_description'] or ''}".strip()
        table.append(
            (
                str(row["id"]),
                row["created_at"].strftime("%Y-%m-%d %H:%M"),
                row["agency_id"],
                row["status"],
                row["to_number"],
                str(row["attempts"]),
                reason,
            )
        )
    widths = [max(len(r[i]) for r in table) for i in range(len(header) - 1)]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1]
        for r in table
    ]


@sms.command("retry")
@click.argument("message_ids", nargs=-1, type=int)
@click.option(
    "--all-errors", is_flag=True, help="Retry every text on the error queue that matches."
)
@click.option("--agency", default=None, help="With --all-errors: only this agency.")
@click.option("--code", default=None, help="With --all-errors: only this gateway code.")
@click.option(
    "--since", default=None, help="With --all-errors: only texts created since (ISO 8601)."
)
@pass_ctx
def sms_retry(
    ctx: Context,
    message_ids: tuple[int, ...],
    all_errors: bool,
    agency: str | None,
    code: str | None,
    since: str | None,
) -> None:
    """Put texts from the error queue back in the queue, due now, with fresh attempts."""
    from patronlink.domain.outbox import MessageStatus
    from patronlink.services.outbox import move_messages, move_one

    _ensure_schema(ctx)
    if all_errors == bool(message_ids):
        fail("give message ids or --all-errors (with optional --agency, --code, --since)", 2)
    if message_ids:
        for message_id in message_ids:
            move_one(ctx.db, message_id, None, MessageStatus.QUEUED, ctx.clock, actor=cli_actor())
            click.echo(f"{message_id} queued")
        return
    f = _message_filter(ctx, agency, ("error",), code, since)
    moved = move_messages(ctx.db, f, MessageStatus.QUEUED, ctx.clock, actor=cli_actor())
    click.echo(f"{len(moved)} text(s) queued again")


@sms.command("cancel")
@click.argument("message_ids", nargs=-1, type=int, required=True)
@pass_ctx
def sms_cancel(ctx: Context, message_ids: tuple[int, ...]) -> None:
    """Cancel queued texts or texts on the error queue."""
    from patronlink.domain.outbox import MessageStatus
    from patronlink.services.outbox import move_one

    _ensure_schema(ctx)
    for message_id in message_ids:
        move_one(ctx.db, message_id, None, MessageStatus.CANCELLED, ctx.clock, actor=cli_actor())
        click.echo(f"{message_id} cancelled")


@sms.command("pause")
@click.option("--agency", default=None, help="Only this agency (default: every agency).")
@click.option("--reason", default=None, help="Why, shown to staff beside the pause.")
@pass_ctx
def sms_pause(ctx: Context, agency: str | None, reason: str | None) -> None:
    """Stop sending: queued texts stay queued until `sms resume` (in every worker)."""
    from patronlink.services.sms_pause import describe, pause_sending

    _ensure_schema(ctx)
    actor = cli_actor()
    change = pause_sending(
        ctx.db, agency, f"cli:{actor.name}", ctx.clock, reason=reason, actor=actor
    )
    state = "paused" if change.changed else "was paused already"
    click.echo(
        f"sending {state} for {describe(change.scope)}; {change.queued} text(s) held in the queue"
    )


@sms.command("resume")
@click.option("--agency", default=None, help="Only this agency (default: the pause of all).")
@pass_ctx
def sms_resume(ctx: Context, agency: str | None) -> None:
    """Send again: end the pause of every agency (or of one, with --agency)."""
    from patronlink.services.sms_pause import describe, resume_sending

    _ensure_schema(ctx)
    actor = cli_actor()
    change = resume_sending(ctx.db, agency, f"cli:{actor.name}", ctx.clock, actor=actor)
    state = "resumed" if change.changed else "was not paused"
    click.echo(f"sending {state} for {describe(change.scope)}; {change.queued} text(s) queued")
    if change.still_paused:
        click.echo(
            f"still paused: {', '.join(describe(s) for s in change.still_paused)} "
            "(resume each with --agency)"
        )


@main.group()
def token() -> None:
    """Staff API tokens."""


@token.command("create")
@click.option("--agency", default=None, help="Limit the token to this agency (default: all).")
@click.option("--name", required=True, help="Who or what uses the token.")
@click.option(
    "--expires",
    default=None,
    help="When it stops working: a date (YYYY-MM-DD, end of that day UTC), an ISO 8601 time, "
    "or a number of days (e.g. 90d).",
)
@pass_ctx
def token_create(ctx: Context, agency: str | None, name: str, expires: str | None) -> None:
    """Create a staff API token and print it (it is shown only this once)."""
    from patronlink.services.access import create_token

    _ensure_schema(ctx)
    expires_at = _expiry(expires, ctx.clock())
    click.echo(
        create_token(ctx.db, name, agency, ctx.clock, actor=cli_actor(), expires_at=expires_at)
    )


def _expiry(value: str | None, now: Any) -> Any:
    import datetime as dt

    if value is None:
        return None
    text = value.strip()
    if text.endswith("d") and text[:-1].isdigit():
        return now + dt.timedelta(days=int(text[:-1]))
    try:
        if len(text) == 10:
            day = dt.date.fromisoformat(text)
            return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), dt.UTC)
        return _parse_time(text, "--expires")
    except ValueError:
        fail(f"--expires {value!r}: give YYYY-MM-DD, an ISO 8601 time or days like 90d", 2)


@token.command("list")
@click.option("--agency", default=None, help="Only this agency's tokens.")
@listing("token")
@pass_ctx
def token_list(
    ctx: Context, agency: str | None, limit: int, offset: int, show_all: bool, as_json: bool
) -> None:
    """Tokens, newest first: id, name, scope, state, created, expires, last used."""
    import json

    from patronlink.services.access import page_tokens
    from patronlink.services.agencies import require_agency

    _ensure_schema(ctx)
    agency_id = None
    if agency:
        with ctx.db.transaction() as repos:
            agency_id = require_agency(repos, agency).id
    now = ctx.clock()

    def when(value: Any) -> str:
        return value.strftime("%Y-%m-%d %H:%M") if value else "-"

    rows, paged = _gather(
        lambda n, at: page_tokens(ctx.db, agency_id, limit=n, offset=at), limit, offset, show_all
    )
    if as_json:
        for t in rows:
            record = {
                "id": t.id,
                "name": t.name,
                "agency_id": t.agency_id,
                "state": t.state(now),
                "created_at": t.created_at,
                "expires_at": t.expires_at,
                "last_used_at": t.last_used_at,
                "revoked_at": t.revoked_at,
            }
            click.echo(json.dumps(record, default=str))
        _say_the_rest(paged, show_all)
        return
    table = [("ID", "AGENCY", "STATE", "CREATED", "EXPIRES", "LAST USED", "NAME")]
    table += [
        (
            str(t.id),
            t.agency_id or "(all)",
            t.state(now),
            when(t.created_at),
            when(t.expires_at),
            when(t.last_used_at),
            t.name,
        )
        for t in rows
    ]
    widths = [max(len(r[i]) for r in table) for i in range(6)]
    for r in table:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r[:6], widths, strict=True)) + "  " + r[6])
    _say_the_rest(paged, show_all)


@token.command("revoke")
@click.argument("token_id", type=int)
@pass_ctx
def token_revoke(ctx: Context, token_id: int) -> None:
    """Revoke a token at once; requests with it are refused from now on."""
    from patronlink.services.access import revoke_token

    _ensure_schema(ctx)
    found = revoke_token(ctx.db, token_id, ctx.clock, actor=cli_actor())
    click.echo(f"token {token_id} ({found.name}) revoked")


# --- patron import: `patronlink import run` (docs/import.md) ----------------------------------
# Exit codes of `patronlink import run`: 0 succeeded, 1 failed or source unavailable (or a run of
# the source in progress), 3 succeeded with record errors.
EXIT_IMPORT_RECORD_ERRORS = 3
# The run succeeded, but set something aside: a record's warning, or a safety stop.
EXIT_IMPORT_WARNINGS = 4
MAX_LISTED_ERRORS = 50


class ImportProgress:
    """A live line on stderr: records read, records/s and the counts so far (only on a terminal)."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.live = sys.stderr.isatty()

    def __call__(self, counts: Any) -> None:
        if not self.live:
            return
        rate = counts.records / max(time.monotonic() - self.start, 1e-6)
        click.echo(
            f"\r{counts.records:>10,} records {rate:>9,.0f}/s  created {counts.created:,}  "
            f"updated {counts.updated:,}  unchanged {counts.unchanged:,}  "
            f"failed {counts.failed:,}",
            err=True,
            nl=False,
        )

    def done(self) -> None:
        if self.live:
            click.echo("", err=True)


def import_summary(report: Any, elapsed: float) -> list[str]:
    c = report.counts
    rows = [
        ("source", report.source_id),
        ("run", "dry run (nothing written)" if report.dry_run else str(report.run_id)),
        ("status", report.status.value),
        ("records", f"{c.records:,}"),
        ("created", f"{c.created:,}"),
        ("updated", f"{c.updated:,}"),
        ("unchanged", f"{c.unchanged:,}"),
        ("deactivated", f"{c.deactivated:,}"),
        ("failed", f"{c.failed:,}"),
        ("warnings", f"{c.warnings:,}"),
        ("seconds", f"{elapsed:.1f}"),
    ]
    if report.message:
        rows.append(("note", report.message))
    width = max(len(k) for k, _ in rows)
    return [f"{k.ljust(width)}  {v}" for k, v in rows]


def _record_error_line(error: Any) -> str:
    """``record 17 [S1234]: warning: phone ...``, as ``import run`` and ``import errors`` print."""
    from patronlink.domain.import_records import Severity

    ext = f" [{error.external_id}]" if error.external_id else ""
    kind = "warning: " if error.severity is Severity.WARNING else ""
    return f"record {error.number}{ext}: {kind}{error.reason}"


def _import_run(ctx: Context, source_id: str, dry_run: bool, file: Path | None) -> None:
    import datetime as dt

    from patronlink.domain.import_runs import RunStatus, Trigger
    from patronlink.services.import_patrons import run_import

    progress = ImportProgress()
    started = time.monotonic()
    try:
        report = run_import(
            ctx.db,
            source_id,
            trigger=Trigger.CLI,
            clock=ctx.clock,
            environ=ctx.environ,
            dry_run=dry_run,
            file=file,
            progress=progress,
            lease=dt.timedelta(seconds=ctx.settings.import_lease_seconds),
            actor=cli_actor(),
        )
    finally:
        progress.done()
    if report.dry_run:
        for change in report.changes:
            fields = f" ({', '.join(change.fields)})" if change.fields else ""
            click.echo(f"would {change.action:<10} {change.patron_id}  {change.name}{fields}")
    for error in report.errors[:MAX_LISTED_ERRORS]:
        click.echo(_record_error_line(error), err=True)
    if len(report.errors) > MAX_LISTED_ERRORS:
        rest = len(report.errors) - MAX_LISTED_ERRORS
        where = (
            "a run without --dry-run keeps them all"
            if report.dry_run
            else f"patronlink import errors {report.run_id} --all"
        )
        click.echo(f"... and {rest} more record errors ({where})", err=True)
    for line in import_summary(report, time.monotonic() - started):
        click.echo(line)
    exit_codes = {
        RunStatus.SUCCEEDED: 0,
        RunStatus.SUCCEEDED_WITH_ERRORS: EXIT_IMPORT_RECORD_ERRORS,
        RunStatus.SUCCEEDED_WITH_WARNINGS: EXIT_IMPORT_WARNINGS,
    }
    sys.exit(exit_codes.get(report.status, EXIT_FAILED))


@main.group("import")
def import_group() -> None:
    """Patron import from institutions' systems."""


@import_group.command("run")
@click.argument("source_id")
@click.option("--dry-run", is_flag=True, help="Show what would change; write nothing.")
@click.option(
    "--file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="Read the feed from this file instead of the source's URL.",
)
@pass_ctx
def import_run(ctx: Context, source_id: str, dry_run: bool, file: Path | None) -> None:
    """Import SOURCE_ID now. Exit 0 succeeded, 1 failed, 3 succeeded with record errors,
    4 succeeded with warnings (a record's, or missing patrons kept by a safety rule)."""
    from patronlink.web.observability import configure_logging

    _ensure_schema(ctx)
    # Logs go to stderr, so that stdout carries only the summary (and the dry run's changes).
    configure_logging(ctx.settings.log_level, ctx.settings.log_format)
    _import_run(ctx, source_id, dry_run, file)


@import_group.command("runs")
@click.argument("source_id", required=False)
@click.option("--agency", default=None, help="Only this agency's sources.")
@listing("run", limit=20, json_help="as the staff API lists them")
@pass_ctx
def import_runs_list(
    ctx: Context,
    source_id: str | None,
    agency: str | None,
    limit: int,
    offset: int,
    show_all: bool,
    as_json: bool,
) -> None:
    """Import runs, newest first: every source's, or SOURCE_ID's, with their counts."""
    from patronlink.services import import_runs
    from patronlink.services.agencies import get_agency
    from patronlink.web.imports_api import RunOut

    _ensure_schema(ctx)
    agency_id = get_agency(ctx.db, agency).id if agency else None
    if source_id is not None:
        import_runs.source_in_scope(ctx.db, source_id, agency_id)
    rows, paged = _gather(
        lambda n, at: import_runs.page_runs(ctx.db, agency_id, source_id, n, at),
        limit,
        offset,
        show_all,
    )
    if as_json:
        for run in rows:
            click.echo(RunOut.of(run).model_dump_json(exclude={"errors"}))
    else:
        header = ("ID", "STARTED (UTC)", "SOURCE", "TRIGGER", "STATUS", "RECORDS")
        table: list[tuple[str, ...]] = [
            (*header, "CREATED", "UPDATED", "DEACTIVATED", "FAILED", "WARNINGS")
        ]
        for run in rows:
            c = run.counts
            table.append(
                (
                    str(run.id),
                    run.started_at.strftime("%Y-%m-%d %H:%M"),
                    run.source_id,
                    run.trigger.value,
                    run.status.value,
                    *(f"{n:,}" for n in (c.records, c.created, c.updated)),
                    *(f"{n:,}" for n in (c.deactivated, c.failed, c.warnings)),
                )
            )
        widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
        for r in table:
            click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    _say_the_rest(paged, show_all)


@import_group.command("errors")
@click.argument("run_id", type=click.IntRange(1))
@listing("finding", json_help="as the staff API shows them")
@pass_ctx
def import_errors(
    ctx: Context, run_id: int, limit: int, offset: int, show_all: bool, as_json: bool
) -> None:
    """A run's record errors and warnings, by record number."""
    from patronlink.services import import_runs
    from patronlink.web.imports_api import RecordErrorOut

    _ensure_schema(ctx)
    rows, paged = _gather(
        lambda n, at: import_runs.run_with_errors(ctx.db, run_id, None, limit=n, offset=at)[1],
        limit,
        offset,
        show_all,
    )
    for error in rows:
        line = RecordErrorOut.of(error).model_dump_json() if as_json else _record_error_line(error)
        click.echo(line)
    _say_the_rest(paged, show_all)


# --- end of patron import ---------------------------------------------------------------------


# --- staff users of the web UI: `patronlink user ...` (docs/staff-ui.md) ----------------------


@main.group()
def user() -> None:
    """Staff users of the web UI at /staff."""


@user.command("create")
@click.option("--username", required=True, help="The name to log in with.")
@click.option("--agency", default=None, help="The user's agency (ISIL or number).")
@click.option("--admin", is_flag=True, help="An administrator, who sees every agency.")
@click.option(
    "--language",
    type=click.Choice(["da", "en"]),
    default="da",
    show_default=True,
    help="The pages' language until the user picks another.",
)
@click.option(
    "--password-stdin", is_flag=True, help="Read the password from the first line of stdin."
)
@pass_ctx
def user_create(
    ctx: Context,
    username: str,
    agency: str | None,
    admin: bool,
    language: str,
    password_stdin: bool,
) -> None:
    """Create a staff user. The password is asked for (never given on the command line)."""
    from patronlink.services.staff_users import create_staff_user

    if admin == bool(agency):
        fail("give either --agency ID or --admin", EXIT_USAGE)
    _ensure_schema(ctx)
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    created = create_staff_user(
        ctx.db, username, password, agency, ctx.clock, language=language, actor=cli_actor()
    )
    scope = created.agency_id or "every agency (administrator)"
    click.echo(f"created staff user {created.username} for {scope}")


@user.command("list")
@listing("user")
@pass_ctx
def user_list(ctx: Context, limit: int, offset: int, show_all: bool, as_json: bool) -> None:
    """List staff users by name: their agency, language and whether they are disabled."""
    import json

    from patronlink.services.staff_users import page_staff_users

    _ensure_schema(ctx)
    rows, paged = _gather(lambda n, at: page_staff_users(ctx.db, n, at), limit, offset, show_all)
    for row in rows:
        disabled = row.disabled_at.isoformat() if row.disabled_at else None
        if as_json:
            click.echo(
                json.dumps(
                    {
                        "username": row.username,
                        "agency": row.agency_id,
                        "language": row.language,
                        "created_at": row.created_at.isoformat(),
                        "disabled_at": disabled,
                    },
                    ensure_ascii=False,
                )
            )
        else:
            scope = row.agency_id or "(administrator)"
            state = f"disabled since {disabled}" if disabled else "enabled"
            click.echo(f"{row.username:<24} {scope:<16} {row.language}  {state}")
    _say_the_rest(paged, show_all)


@user.command("disable")
@click.argument("username")
@pass_ctx
def user_disable(ctx: Context, username: str) -> None:
    """Refuse the user's logins and end their sessions at once."""
    from patronlink.services.staff_users import disable_staff_user

    _ensure_schema(ctx)
    ended = disable_staff_user(ctx.db, username, ctx.clock, actor=cli_actor())
    click.echo(f"disabled staff user {username}; ended {ended} session(s)")


@user.command("enable")
@click.argument("username")
@pass_ctx
def user_enable(ctx: Context, username: str) -> None:
    """Let a disabled user log in again."""
    from patronlink.services.staff_users import enable_staff_user

    _ensure_schema(ctx)
    enable_staff_user(ctx.db, username, ctx.clock, actor=cli_actor())
    click.echo(f"enabled staff user {username}")


@user.command("reset-password")
@click.argument("username")
@click.option(
    "--password-stdin", is_flag=True, help="Read the password from the first line of stdin."
)
@pass_ctx
def user_reset_password(ctx: Context, username: str, password_stdin: bool) -> None:
    """Give the user a new password (asked for) and end every session of theirs."""
    from patronlink.services.staff_users import reset_staff_password

    _ensure_schema(ctx)
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("New password", hide_input=True, confirmation_prompt=True)
    ended = reset_staff_password(ctx.db, username, password, ctx.clock, actor=cli_actor())
    click.echo(f"new password for staff user {username}; ended {ended} session(s)")


# --- end of staff users -----------------------------------------------------------------------


# --- patrons through their life (issue 18) ---------------------------------------------------
_PATRON_STATUSES = click.Choice(["active", "blocked", "expired", "inactive", "pending"])


@main.group()
def patron() -> None:
    """Patrons: list by status; approve, reject, block, unblock, deactivate, anonymise."""


@patron.command("list")
@click.option("--agency", required=True, help="Agency ISIL or number.")
@click.option("--status", type=_PATRON_STATUSES, default=None, help="Only this status.")
@click.option("--search", default=None, help="Name, patron id or phone.")
@listing("matching patron", json_help="as the staff API lists them")
@pass_ctx
def patron_list(
    ctx: Context,
    agency: str,
    status: str | None,
    search: str | None,
    limit: int,
    offset: int,
    show_all: bool,
    as_json: bool,
) -> None:
    """Patrons by patron id, e.g. the self-registrations waiting: --status pending."""
    from patronlink.domain.patron import PatronStatus
    from patronlink.services.patrons import page_patrons
    from patronlink.web.schemas import PatronOut

    _ensure_schema(ctx)
    wanted = PatronStatus(status) if status else None
    rows, paged = _gather(
        lambda n, at: page_patrons(ctx.db, agency, search, n, at, status=wanted),
        limit,
        offset,
        show_all,
    )
    if as_json:
        for p in rows:
            click.echo(PatronOut.of(p).model_dump_json())
    else:
        table = [("PATRON ID", "STATUS", "NAME", "NUMBERS")]
        table += [
            (p.patron_id, p.status.value, p.name, " ".join(sorted(p.numbers()))) for p in rows
        ]
        widths = [max(len(r[i]) for r in table) for i in range(3)]
        for r in table:
            line = "  ".join(c.ljust(w) for c, w in zip(r[:3], widths, strict=True))
            click.echo(line + "  " + r[3])
    _say_the_rest(paged, show_all)


def _patron_move(name: str, summary: str) -> None:
    @patron.command(name, help=summary)
    @click.argument("agency")
    @click.argument("patron_id")
    @click.option("--reason", default=None, help="Why (required to block).")
    @pass_ctx
    def command(ctx: Context, agency: str, patron_id: str, reason: str | None) -> None:
        from patronlink.domain.patron_lifecycle import LifecycleAction
        from patronlink.services.patron_lifecycle import change_status

        _ensure_schema(ctx)
        state = change_status(
            ctx.db,
            agency,
            patron_id,
            LifecycleAction(name),
            ctx.clock,
            actor=cli_actor(),
            reason=reason,
        )
        click.echo(f"{patron_id}: {state.patron.status.value if state.patron else 'removed'}")


_patron_move("approve", "Approve a pending self-registration.")
_patron_move("reject", "Reject a pending self-registration (it is removed).")
_patron_move("block", "Block a patron; --reason is required. Renewals are refused.")
_patron_move("unblock", "Lift a block.")
_patron_move("deactivate", "Deactivate a patron.")


@patron.command("anonymise")
@click.argument("agency")
@click.argument("patron_id")
@click.option("--yes", is_flag=True, help="Do it without asking (the erasure is final).")
@pass_ctx
def patron_anonymise(ctx: Context, agency: str, patron_id: str, yes: bool) -> None:
    """Erase a person on request (GDPR art. 17); loans keep their history without them."""
    from patronlink.services.patron_lifecycle import anonymise_patron

    _ensure_schema(ctx)
    if not yes:
        click.confirm(f"Erase every personal detail of patron {patron_id}?", abort=True)
    anonymous = anonymise_patron(ctx.db, agency, patron_id, ctx.clock, actor=cli_actor())
    click.echo(f"{patron_id}: anonymised as {anonymous.patron_id}")


@patron.command("retention")
@click.option("--agency", default=None, help="Only this agency (default: every agency).")
@click.option("--dry-run", is_flag=True, help="List the patrons due; change nothing.")
@pass_ctx
def patron_retention(ctx: Context, agency: str | None, dry_run: bool) -> None:
    """Anonymise the patrons past their agency's retention_days (the worker does it hourly)."""
    from patronlink.services.patron_lifecycle import apply_retention

    _ensure_schema(ctx)
    results = apply_retention(
        ctx.db, ctx.clock, dry_run=dry_run, agency_ref=agency, actor=cli_actor()
    )
    verb = "due" if dry_run else "anonymised"
    for result in results:
        for patron_id in result.patron_ids:
            click.echo(f"{result.agency_id}  {patron_id}  {verb}")
        click.echo(f"{result.agency_id}: {len(result.patron_ids)} patron(s) {verb}", err=True)
    if not results:
        click.echo("no agency sets retention_days", err=True)


def run() -> None:
    from sqlalchemy.exc import OperationalError

    try:
        main(standalone_mode=True)
    except PatronlinkError as exc:
        fail(str(exc))
    except OperationalError as exc:
        fail(f"cannot use the database: {exc.orig or exc}")


if __name__ == "__main__":  # pragma: no cover
    run()
