"""The dispatcher: claims due texts with a lease, sends them concurrently, records the outcomes.

Sends are bounded twice: at most ``max_in_flight`` texts are sent and not yet recorded at once
(sending, or sent with the outcome still waiting for its batch), and each agency's gateway gets
at most ``[agencies.sms] concurrency`` texts at a time: that many senders take the agency's
claimed texts from its queue one after the other. Outcomes are written in batches. A worker
killed mid-send leaves leases that expire after ``lease_seconds``; another worker (or this one,
restarted) then claims those texts again: at-least-once, nothing lost, and at most
``max_in_flight`` texts sent twice per crash.

The loop survives its database: a claim or an outcome batch that fails because the database is
away (refused or cut connections, a read-only database) is logged once per episode, backed off
and tried again; outcomes not yet written are kept and written when the database is back, so a
text that was sent is marked sent and not sent again after its lease. Any other failure ends the
loop: first the texts being sent are finished and their outcomes written, the claimed texts not
yet sent are given back (queued, lease cleared), and then the error is raised for the process to
exit non-zero.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import random
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from patronlink.config.schema import SmsConfig
from patronlink.domain.dispatch import (
    ClaimedMessage,
    DispatchSettings,
    Outcome,
    SendPolicy,
    decide,
)
from patronlink.domain.errors import (
    ConfigError,
    InvalidPhoneNumber,
    PermanentGatewayError,
    TemporaryGatewayError,
)
from patronlink.domain.outbox import AttemptOutcome, MessageStatus, QuietHours
from patronlink.gateways.base import GatewayConfig, OutgoingSms, SmsGateway
from patronlink.gateways.registry import can_schedule
from patronlink.services.agencies import require_agency
from patronlink.services.clock import Clock
from patronlink.services.collector import spare_collector
from patronlink.services.gateway_config import gateway_config
from patronlink.services.secrets import missing_variables
from patronlink.storage.database import NEVER_STALE, Database, is_unavailable
from patronlink.worker.health import Backoff, Loop
from patronlink.worker.metrics import DispatchMetrics

log = logging.getLogger("patronlink.dispatch")

GatewayFactory = Callable[[GatewayConfig], SmsGateway]


@dataclass
class _Route:
    """Everything the dispatcher needs to send one agency's texts."""

    key: str
    gateway: SmsGateway | None
    driver: str
    policy: SendPolicy  # what becomes of a text after an attempt
    concurrency: int  # texts at a time to this gateway
    config_error: str | None = None
    # Variables the agency's gateway settings name but this process lacks: its texts are held
    # as queued (not failed) until the operator sets them and the worker restarts.
    missing: tuple[str, ...] = ()


@dataclass
class _Streak:
    """Temporary failures in a row of one agency's gateway, and whether they were told."""

    failures: int = 0
    warned: bool = False


@dataclass
class DispatchStats:
    claimed: int = 0
    sent: int = 0
    retried: int = 0
    failed: int = 0


class Dispatcher:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        gateway_factory: GatewayFactory,
        *,
        settings: DispatchSettings | None = None,
        environ: Mapping[str, str] | None = None,
        metrics: DispatchMetrics | None = None,
        owner: str | None = None,
        rng: Callable[[], float] = random.random,
        health: Loop | None = None,
        public_url: str = "",
    ) -> None:
        self.db = db
        self.clock = clock
        self.factory = gateway_factory
        self.settings = settings or DispatchSettings()
        # The environment the ${VAR} references resolve in: the composition root passes the
        # process's; without one (tests, benchmarks) none is set.
        self.environ: Mapping[str, str] = {} if environ is None else environ
        self.metrics = metrics
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{random.getrandbits(32):08x}"
        self.rng = rng
        self.health = health or Loop("dispatcher", log, Backoff(), stall_seconds=None, rng=rng)
        # Where providers send delivery reports (``Settings.callback_base``); empty: nowhere.
        self.public_url = public_url
        self.stats = DispatchStats()
        self._streaks: dict[str, _Streak] = {}
        # Set on the way out after a fatal error: senders take no further texts.
        self._closing = False
        self._stop = asyncio.Event()
        # Claimed, and waiting for their agencies' routes to be loaded.
        self._unrouted: list[ClaimedMessage] = []
        # Senders waiting for a permit: they hold a text not yet sent.
        self._at_permit: set[asyncio.Task[None]] = set()
        self._routes: dict[str, _Route] = {}
        self._routes_loaded_at = -1e9
        self._outcomes: list[Outcome] = []
        self._last_flush = time.monotonic()
        self._flushing: asyncio.Task[None] | None = None
        # A text takes a permit before it is sent and gives it back once its outcome is
        # committed: at most ``max_in_flight`` texts are ever sent and not yet recorded, which
        # bounds what a crash can send twice. Texts claimed and waiting for a permit were not
        # sent, so they are not at risk, and the next claim need not wait for the commits.
        self._permits = asyncio.Semaphore(self.settings.max_in_flight)
        # Claimed texts by agency, taken by that agency's senders (tasks, at most its
        # concurrency); a sender ends when its queue is empty.
        self._queues: dict[str, deque[ClaimedMessage]] = {}
        self._senders: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._waiting = 0  # claimed texts without a permit yet
        # Claimed texts wait in the queues; keep at most a batch of them, and claim the next
        # while half of it is left, so sending never waits for a claim.
        self._ahead = min(self.settings.batch_size, self.settings.max_in_flight)
        # Unrecorded outcomes hold permits of the in-flight bound: write them before they hold
        # enough to stop the sends.
        self._flush_size = min(self.settings.flush_size, max(1, self.settings.max_in_flight // 4))
        self._drained = False  # the last claim found fewer texts than it asked for
        # Set when the loop has something to do: claim, write outcomes, or finish.
        self._wake = asyncio.Event()

    # The loop ------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event | None = None, *, once: bool = False) -> DispatchStats:
        """Dispatch until ``stop`` is set (or, with ``once``, until nothing is due)."""
        # Each text leaves a dozen objects alive for a while (claimed, sent, outcome waiting for
        # its batch); the collections they cause would otherwise walk the whole process.
        self._stop = stop or asyncio.Event()
        with spare_collector():
            return await self._run(self._stop, once)

    async def _run(self, stop: asyncio.Event, once: bool) -> DispatchStats:
        self._drained = False
        fatal: BaseException | None = None
        try:
            while not stop.is_set():
                try:
                    if await self._round(once):
                        break
                except Exception as exc:
                    if once or not is_unavailable(exc):
                        fatal = exc
                        raise
                    # The database is away: the outcomes gathered stay in memory (their permits
                    # held, so sending pauses at the in-flight bound) until a write succeeds.
                    delay = self.health.failed(exc)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=delay)
        finally:
            await self._wind_down(fatal)
        return self.stats

    async def _round(self, once: bool) -> bool:
        """One time round the loop; True when ``once`` finds nothing more to do."""
        tasks = self._tasks
        s = self.settings
        # Cleared before anything this round awaits: a sender signalling meanwhile leaves it
        # set, so the wait below cannot miss it.
        self._wake.clear()
        capacity = self._ahead - self._waiting - len(self._unrouted)
        claimed: list[ClaimedMessage] = []
        if self._may_claim():
            self._unrouted += await asyncio.to_thread(self._claim, capacity)
            self.health.progress()  # the database answered: any episode of failures is over
            self._drained = len(self._unrouted) < capacity
        if self._unrouted:
            # Claimed texts wait here until their agencies' routes are loaded: a database
            # failure in between must not lose track of them.
            await self._ensure_routes({m.agency_id for m in self._unrouted})
            claimed, self._unrouted = self._unrouted, []
            self._queue(claimed)
        if self._should_flush():
            await self._flush()
        if claimed:
            await asyncio.sleep(0)
            return False
        if tasks and all(task.done() for task in tasks):
            await asyncio.sleep(0)  # let their done-callbacks take them out of the set
            return False
        if tasks:
            # Woken when there is something to do (asyncio.wait over the senders would
            # re-register a callback on each of them every time round), or to write the
            # outcomes gathered within flush_seconds.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=s.flush_seconds)
            return False
        await self._flush(wait=True)
        if once:
            return True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=s.poll_seconds)
        return False

    async def _wind_down(self, fatal: BaseException | None) -> None:
        """Finish what was claimed, write every outcome, give back what was not sent.

        After a normal stop the claimed texts are still sent: an abandoned text would only go
        out later, once its lease expired. After a fatal error, or once the database has been
        away for ``shutdown_seconds``, senders take no more texts: those waiting for a permit
        have sent nothing and are stopped, those sending finish. What was claimed and not sent
        is given back (queued, lease cleared) for another worker to send now.
        """
        s = self.settings
        tasks = self._tasks
        if fatal is not None:
            self._closing = True
        while tasks:
            if not await self._write_outcomes():
                self._closing = True  # the database stays away: send nothing more
            if self._closing:
                for task in self._at_permit:
                    task.cancel()
            await asyncio.wait(set(tasks), timeout=s.flush_seconds)
        unsent = [m.id for m in self._unrouted]
        unsent += [m.id for queue in self._queues.values() for m in queue]
        self._unrouted.clear()
        self._queues.clear()
        if not await self._write_outcomes():
            log.error(
                "outcomes of %d text(s) could not be written: those texts go out again when "
                "their lease ends",
                len(self._outcomes),
                extra={"unwritten": len(self._outcomes), "owner": self.owner},
            )
        if unsent:
            await self._retrying("giving back unsent texts", lambda: self._give_back(unsent))

    async def _write_outcomes(self) -> bool:
        """Write every outcome gathered; False when the database would not take them for
        ``shutdown_seconds``."""
        return await self._retrying("writing outcomes", lambda: self._flush(wait=True))

    async def _retrying(self, what: str, step: Callable[[], Awaitable[None]]) -> bool:
        """``step`` until it succeeds, backing off while the database is away (on the way out,
        for ``shutdown_seconds`` at most)."""
        deadline = time.monotonic() + self.settings.shutdown_seconds
        while True:
            try:
                await step()
            except Exception as exc:
                if not is_unavailable(exc) or time.monotonic() >= deadline:
                    log.exception("%s failed on the way out", what)
                    return False
                delay = self.health.failed(exc)
                await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
                continue
            return True

    async def _give_back(self, unsent: list[int]) -> None:
        released = await asyncio.to_thread(self._release, unsent)
        log.info(
            "gave back %d claimed and unsent text(s)",
            released,
            extra={"released": released, "owner": self.owner},
        )

    async def aclose(self) -> None:
        for route in self._routes.values():
            if route.gateway is not None:
                await route.gateway.aclose()
        self._routes.clear()

    def _may_claim(self) -> bool:
        # With the database drained, claim again only once the senders are done (or on the
        # next poll), not every time one of them takes a text.
        return self._waiting <= self._ahead // 2 and not (self._drained and self._tasks)

    def _should_flush(self) -> bool:
        if not self._outcomes:
            return False
        return (
            len(self._outcomes) >= self._flush_size
            or time.monotonic() - self._last_flush >= self.settings.flush_seconds
        )

    async def _flush(self, *, wait: bool = False) -> None:
        """Write the collected outcomes in the background, one batch at a time.

        Sending goes on while a batch commits (a commit waits for the disk); ``wait`` drains
        everything, for the end of a round.
        """
        if self._flushing is not None:
            if not (wait or self._flushing.done()):
                return
            flushing, self._flushing = self._flushing, None
            await flushing  # re-raises a failed write: outcomes must not be dropped silently
        batch, self._outcomes = self._outcomes, []
        self._last_flush = time.monotonic()
        if not batch:
            return
        if wait:
            await self._commit_outcomes(batch)
        else:
            self._flushing = asyncio.create_task(self._commit_outcomes(batch))

    async def _commit_outcomes(self, batch: list[Outcome]) -> None:
        try:
            await asyncio.to_thread(self._record, batch)
        except BaseException:
            # Kept for the next write: a text the gateway took must be marked sent, or it goes
            # out again when its lease ends.
            self._outcomes[:0] = batch
            raise
        self.health.progress()
        for _ in batch:  # committed: these texts can no longer be sent twice
            self._permits.release()
        self._wake.set()  # the loop may write the outcomes that piled up meanwhile

    # Database work (in a thread) --------------------------------------------------------
    def _claim(self, limit: int) -> list[ClaimedMessage]:
        now = self.clock()
        lease = now + dt.timedelta(seconds=self.settings.lease_seconds)
        max_age = self.settings.max_age_seconds
        oldest = now - dt.timedelta(seconds=max_age) if max_age > 0 else NEVER_STALE
        with self.db.transaction() as repos:
            claimed = repos.outbox.claim(now, lease, self.owner, limit, oldest)
        self.stats.claimed += len(claimed)
        return claimed

    def _release(self, message_ids: list[int]) -> int:
        with self.db.transaction() as repos:
            return repos.outbox.release(message_ids, self.owner)

    def _record(self, batch: list[Outcome]) -> None:
        with self.db.transaction() as repos:
            held = repos.outbox.record(batch, self.owner)
        if held < len(batch):
            log.warning(
                "outcomes for texts whose lease had passed to another worker",
                extra={"lost_leases": len(batch) - held},
            )

    async def _ensure_routes(self, agency_ids: set[str]) -> None:
        stale = time.monotonic() - self._routes_loaded_at > self.settings.routes_refresh_seconds
        missing = agency_ids - self._routes.keys()
        if not stale and not missing:
            return
        wanted = set(self._routes) | agency_ids
        loaded = await asyncio.to_thread(self._load_routes, wanted)
        for agency_id, (key, build) in loaded.items():
            current = self._routes.get(agency_id)
            if current is not None and current.key == key:
                continue
            if current is not None and current.gateway is not None:
                await current.gateway.aclose()
            self._routes[agency_id] = build()
        self._routes_loaded_at = time.monotonic()

    def _load_routes(self, agency_ids: set[str]) -> dict[str, tuple[str, Callable[[], _Route]]]:
        out: dict[str, tuple[str, Callable[[], _Route]]] = {}
        with self.db.transaction() as repos:
            for agency_id in agency_ids:
                agency = require_agency(repos, agency_id)
                sms = repos.agencies.settings(agency_id).sms
                key = repr((sms, agency.country_code, agency.timezone))

                def build(agency: Any = agency, sms: SmsConfig = sms, key: str = key) -> _Route:
                    quiet = QuietHours.parse(sms.quiet_hours) if sms.quiet_hours else None
                    policy = SendPolicy(
                        max_attempts=sms.max_attempts,
                        retry=self.settings.retry,
                        quiet=quiet,
                        zone=agency.zone,
                        schedules=can_schedule(sms.driver),
                    )
                    route = _Route(
                        key=key,
                        gateway=None,
                        driver=sms.driver,
                        policy=policy,
                        concurrency=sms.concurrency,
                    )
                    route.missing = tuple(sorted(missing_variables(sms.model_dump(), self.environ)))
                    if route.missing:
                        return route
                    try:
                        config = gateway_config(agency, sms, self.environ, self.public_url)
                        route.gateway = self.factory(config)
                    except ConfigError as exc:
                        route.config_error = f"gateway configuration: {exc}"
                    return route

                out[agency_id] = (key, build)
        return out

    # The senders ------------------------------------------------------------------------
    def _queue(self, claimed: list[ClaimedMessage]) -> None:
        """Hand claimed texts to their agencies' senders, starting senders up to each limit."""
        for message in claimed:
            queue = self._queues.get(message.agency_id)
            if queue is None:
                queue = self._queues[message.agency_id] = deque()
            queue.append(message)
        self._waiting += len(claimed)
        for agency_id in {m.agency_id for m in claimed}:
            queue = self._queues[agency_id]
            running = self._senders.get(agency_id, 0)
            wanted = min(self._routes[agency_id].concurrency, len(queue)) - running
            for _ in range(wanted):
                task = asyncio.create_task(self._send_from(agency_id, queue))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            self._senders[agency_id] = running + max(0, wanted)

    async def _send_from(self, agency_id: str, queue: deque[ClaimedMessage]) -> None:
        """One of an agency's senders: its texts one after the other until none is left."""
        try:
            while queue and not self._closing:
                if self._senders[agency_id] > self._routes[agency_id].concurrency:
                    return  # the agency's concurrency was lowered meanwhile
                message = queue.popleft()
                current = asyncio.current_task()
                assert current is not None
                self._at_permit.add(current)
                try:
                    await self._permits.acquire()
                except BaseException:
                    # Stopped while waiting: not sent, so it is given back with the queue.
                    queue.appendleft(message)
                    raise
                finally:
                    self._at_permit.discard(current)
                    # Counted as waiting until it has its permit: claimed and unsent texts stay
                    # within a batch of the in-flight bound.
                    self._waiting -= 1
                    if self._may_claim():
                        self._wake.set()
                # Looked up now, not before the wait: a route rebuilt meanwhile closed its gateway.
                route = self._routes[agency_id]
                try:
                    outcome = await self._attempt(message, route)
                except Exception:
                    # Nothing to record: the text keeps its lease, which expires, and it goes
                    # again. The sender goes on with the next.
                    log.exception("sending text %s failed unexpectedly", message.id)
                    self._permits.release()
                    continue
                except BaseException:
                    self._permits.release()
                    raise
                self._outcomes.append(outcome)
                if len(self._outcomes) >= self._flush_size:
                    self._wake.set()
        finally:
            self._senders[agency_id] -= 1
            if not queue and self._senders[agency_id] == 0:
                del self._senders[agency_id]
                if self._queues.get(agency_id) is queue:
                    del self._queues[agency_id]
            self._wake.set()  # the loop may write the last outcomes, or be done

    async def _attempt(self, message: ClaimedMessage, route: _Route) -> Outcome:
        started = self.clock()
        schedule_at = None
        if route.policy.schedules and message.send_at > started + dt.timedelta(minutes=1):
            schedule_at = message.send_at
        t0 = time.perf_counter()
        outgoing: OutgoingSms | None = None
        problem = route.config_error or "no gateway"
        try:
            outgoing = OutgoingSms(
                to=message.to_number, text=message.text, send_at=schedule_at, message_id=message.id
            )
        except InvalidPhoneNumber as exc:
            # Queued texts are checked; a number changed in the database by hand is not. Sent
            # again it would fail again: to the error queue, with the reason.
            problem = str(exc)
        if message.stale:
            outcome = self._permanent(message, route, started, self._stale_reason(message))
        elif route.missing:
            outcome = self._held(message, route, started)
        elif outgoing is None or route.gateway is None:
            outcome = self._permanent(message, route, started, problem)
        else:
            try:
                result = await route.gateway.send(outgoing)
            except TemporaryGatewayError as exc:
                outcome = self._temporary(message, route, started, exc)
            except PermanentGatewayError as exc:
                outcome = self._permanent(
                    message, route, started, exc.description, exc.http_status, exc.code
                )
            except Exception as exc:  # a driver bug must not lose the text
                log.exception("driver %s failed unexpectedly", route.driver)
                wrapped = TemporaryGatewayError(f"unexpected driver error: {type(exc).__name__}")
                outcome = self._temporary(message, route, started, wrapped)
            else:
                kind = AttemptOutcome.BUFFERED if result.buffered else AttemptOutcome.SENT
                finished = self.clock()
                status = decide(kind, message.attempts, route.policy, finished, 0.0).status
                outcome = Outcome(
                    message_id=message.id,
                    status=status,
                    started_at=started,
                    finished_at=finished,
                    driver=route.driver,
                    attempt_outcome=kind.value,
                    http_status=result.http_status,
                    code=result.code,
                    description=result.description,
                    gateway_message_id=result.gateway_message_id,
                    buffered=result.buffered,
                    delivery="pending" if result.reports_expected else "none",
                )
                self.stats.sent += 1
        if outgoing is not None and route.gateway is not None:
            self._count_streak(message.agency_id, route, outcome)
        if self.metrics is not None:
            self.metrics.observe(message.agency_id, outcome, time.perf_counter() - t0)
        return outcome

    def _count_streak(self, agency_id: str, route: _Route, outcome: Outcome) -> None:
        """Temporary failures in a row of the agency's gateway: one warning when they reach
        the threshold, one line when the gateway answers again."""
        temporary = outcome.attempt_outcome == AttemptOutcome.TEMPORARY.value
        streak = self._streaks.get(agency_id)
        if streak is None:
            if not temporary:
                return  # the usual case, once per text: nothing to count, nothing to change
            streak = self._streaks[agency_id] = _Streak()
        if temporary:
            streak.failures += 1
            threshold = self.settings.gateway_failures_before_warning
            if not streak.warned and streak.failures >= threshold:
                streak.warned = True
                log.warning(
                    "gateway of agency %s (%s) failed %d texts in a row; last: %s",
                    agency_id,
                    route.driver,
                    streak.failures,
                    outcome.description,
                    extra={
                        "agency": agency_id,
                        "driver": route.driver,
                        "failures": streak.failures,
                        "http_status": outcome.http_status,
                        "code": outcome.code,
                    },
                )
        else:
            if streak.warned:
                log.info(
                    "gateway of agency %s (%s) answers again after %d failures in a row",
                    agency_id,
                    route.driver,
                    streak.failures,
                    extra={
                        "agency": agency_id,
                        "driver": route.driver,
                        "failures": streak.failures,
                    },
                )
            del self._streaks[agency_id]
        if self.metrics is not None:
            failures = streak.failures if temporary else 0
            self.metrics.gateway_streak(agency_id, route.driver, failures)

    def _stale_reason(self, message: ClaimedMessage) -> str:
        hours = self.settings.max_age_seconds / 3600
        return (
            f"not sent: still queued more than {hours:g} h after its send time "
            f"({message.send_at:%Y-%m-%d %H:%M} UTC), too late to be of use; retry it to send "
            "it anyway (PATRONLINK_DISPATCH_MAX_AGE_SECONDS)"
        )

    def _temporary(
        self,
        message: ClaimedMessage,
        route: _Route,
        started: dt.datetime,
        exc: TemporaryGatewayError,
    ) -> Outcome:
        outcome = self._decided(
            message,
            route,
            started,
            AttemptOutcome.TEMPORARY,
            self.rng(),
            http_status=exc.http_status,
            code=exc.code,
            description=exc.description,
        )
        if outcome.status is MessageStatus.QUEUED:
            self.stats.retried += 1
        else:
            self.stats.failed += 1
        return outcome

    def _decided(
        self,
        message: ClaimedMessage,
        route: _Route,
        started: dt.datetime,
        kind: AttemptOutcome,
        random_unit: float,
        **details: Any,
    ) -> Outcome:
        """The outcome of a failed or held attempt: ``decide`` gives the next status and time."""
        finished = self.clock()
        status, next_at = decide(kind, message.attempts, route.policy, finished, random_unit)
        return Outcome(
            message_id=message.id,
            status=status,
            started_at=started,
            finished_at=finished,
            driver=route.driver,
            attempt_outcome=kind.value,
            next_attempt_at=next_at,
            **details,
        )

    def _held(self, message: ClaimedMessage, route: _Route, started: dt.datetime) -> Outcome:
        """Back to the queue, never to the error queue: the fault is this process's environment.
        The attempt is given back and is no failure of the gateway (``AttemptOutcome.HELD``)."""
        self.stats.retried += 1
        return self._decided(
            message,
            route,
            started,
            AttemptOutcome.HELD,
            0.0,
            description="held: environment variable(s) not set in the worker: "
            + ", ".join(route.missing),
        )

    def _permanent(
        self,
        message: ClaimedMessage,
        route: _Route,
        started: dt.datetime,
        description: str,
        http_status: int | None = None,
        code: str | None = None,
    ) -> Outcome:
        self.stats.failed += 1
        return self._decided(
            message,
            route,
            started,
            AttemptOutcome.PERMANENT,
            0.0,
            http_status=http_status,
            code=code,
            description=description,
        )
