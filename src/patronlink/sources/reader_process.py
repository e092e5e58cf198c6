"""A feed read in a second process: parsing and validation beside the database writes.

An import spends most of its time in Python on one core: parsing the feed (ijson), the
fingerprint of each entry, reading entries into records and validating them (phone numbers,
dates). None of that depends on the database, so for a large feed it runs in a child process on
the other core while this one matches and writes. Small feeds are read in-process (starting the
child costs about a tenth of a second).

Three pipes connect the two:

* **feed** (parent to child): the body's bytes as the source gives them. A thread of the parent
  copies the open stream into it, so the source, its authentication and its errors stay in the
  parent; the pipe's own buffer bounds how far ahead the copy runs.
* **results** (child to parent): the entries in feed order, a few hundred per message. An entry
  goes *light* (number, external id, fingerprint: enough to see that it is unchanged) or *full*
  (also the validated patron or the reason it is not one). While most entries need reading
  (a first import), the parent asks for full entries, which the child then reads ahead of need;
  while most are unchanged, light ones, and the child keeps their parsed form until asked.
* **control** (parent to child): after matching each batch, which light entries of it the parent
  needs read (the child answers on the results pipe), that the entries up to the batch's end may
  be dropped, and whether to send full entries from now on. The child keeps at most ``KEEP``
  entries and waits for the parent beyond that, so memory stays bounded whatever the feed's size.

The parent decides everything as before (unchanged, duplicate, create, update, errors in feed
order); the child only reads. A malformed body fails the run from the child's reader, a source
that fails mid-body fails it from the copying thread (that error is the one reported).
Messages are length-prefixed pickles between two processes of this same program.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import gc
import json
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from patronlink.domain.errors import SourceFormatError
from patronlink.domain.import_records import (
    Checked,
    Fault,
    FeedItem,
    ImportedRecord,
    PendingRecord,
    RecordError,
    Severity,
    pending,
    validate,
)
from patronlink.domain.patron import Patron, PatronStatus
from patronlink.sources.base import ReaderOptions
from patronlink.sources.folio_json import present_only

# Entries per message from the child, and how often it looks for the parent's requests.
SEND = 250
# Light entries the child keeps for the parent to ask about (a little more than two batches of
# the synchroniser); beyond that it waits for the parent to release some.
KEEP = 5000
CHUNK = 256 * 1024
# Linux lets a pipe buffer grow to 1 MiB without privileges: fewer switches between processes.
PIPE_SIZE = 1 << 20
_HEADER = struct.Struct("<I")

# Wire forms: tuples, which pickle and unpickle in C, several times faster than dataclasses.
# An entry is (kind, number, ...); a checked entry (kind, ...).
_LIGHT, _FULL, _ERROR = 0, 1, 2  # entries
_UNREADABLE, _VALID, _INVALID = 0, 1, 2  # checked
_STATUSES = {s.value: s for s in PatronStatus}


# Framing: a little-endian length, then the pickle.


def _write_message(out: IO[bytes], message: object) -> None:
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    out.write(_HEADER.pack(len(body)))
    out.write(body)
    out.flush()


def _read_exact(source: IO[bytes], size: int) -> bytes | None:
    parts = []
    while size:
        part = source.read(size)
        if not part:
            return None
        parts.append(part)
        size -= len(part)
    return b"".join(parts)


def _read_message(source: IO[bytes]) -> Any:
    """The next message, or None at the end of the pipe."""
    header = _read_exact(source, _HEADER.size)
    if header is None:
        return None
    body = _read_exact(source, _HEADER.unpack(header)[0])
    if body is None:
        return None
    return pickle.loads(body)  # noqa: S301 - written by our own child or parent, private pipe


def _grow(fd: int) -> None:
    size = getattr(fcntl, "F_SETPIPE_SZ", None)  # Linux only; elsewhere the default size
    if size is not None:
        with contextlib.suppress(OSError):
            fcntl.fcntl(fd, size, PIPE_SIZE)


# ---------------------------------------------------------------------------------------------
# The child


class _Child:
    def __init__(self, config: dict[str, Any]) -> None:
        self._config = config
        self._control = os.fdopen(config["control"], "rb", buffering=0)
        self._out = os.fdopen(config["out"], "wb", buffering=CHUNK)
        self._kept: dict[int, PendingRecord] = {}
        self._eager = False

    def run(self) -> None:
        from patronlink.sources.formats import open_reader

        config = self._config
        feed = os.fdopen(config["feed"], "rb", buffering=CHUNK)
        options = ReaderOptions(**config["options"])
        reader = open_reader(config["format"], feed, read_flag=config["read_flag"], options=options)
        sent: list[tuple[Any, ...]] = []
        try:
            for entry in reader.entries():
                sent.append(self._wire(entry))
                if len(sent) >= SEND:
                    _write_message(self._out, ("entries", sent))
                    sent = []
                    if not self._serve():
                        return
            _write_message(self._out, ("entries", sent))
            _write_message(self._out, ("end", reader.deactivate_missing, reader.notes))
        except SourceFormatError as exc:
            _write_message(self._out, ("entries", sent))
            _write_message(self._out, ("failed", "format", str(exc)))
        except Exception as exc:  # noqa: BLE001 - any error of the reader is reported to the parent
            _write_message(self._out, ("failed", "crash", f"{type(exc).__name__}: {exc}"))
        # The parent may still ask about entries it has: answer until it closes the pipe.
        while self._serve(wait=True):
            pass

    def _wire(self, entry: FeedItem) -> tuple[Any, ...]:
        if isinstance(entry, RecordError):
            return (_ERROR, entry.number, entry.reason, entry.external_id, entry.field)
        item = pending(entry) if isinstance(entry, ImportedRecord) else entry
        if self._eager:
            return (_FULL, item.number, item.external_id, item.fingerprint, self._read(item))
        self._kept[item.number] = item
        return (_LIGHT, item.number, item.external_id, item.fingerprint)

    def _read(self, item: PendingRecord) -> tuple[Any, ...]:
        record = item.read()
        if isinstance(record, RecordError):
            return (_UNREADABLE, record.reason, record.external_id, record.field)
        # The parent fills in the external id (and the patron's) from the entry's, and the
        # agency and the source: they are not sent.
        assert record.external_id == item.external_id
        # ``check`` without making the Patron that would only be taken apart again.
        f, found = validate(record, country_code=self._config["country_code"])
        # Faults as plain tuples (none, nearly always).
        faults = tuple((x.field, x.reason, x.severity.value) for x in found) if found else ()
        keep = tuple(record.absent)
        if f is None:
            return (_INVALID, faults, keep)
        expiry, birth = f[3], f[10]
        return (
            _VALID,
            (
                f[0], f[1], f[2].value, expiry.toordinal() if expiry else None, f[4], f[5],
                f[6], f[7], f[8], f[9], birth.toordinal() if birth else None, f[11], f[12],
                f[13],
            ),
            faults,
            keep,
        )  # fmt: skip

    def _serve(self, *, wait: bool = False) -> bool:
        """Answer the parent's requests: those waiting, and while too many entries are kept (or
        ``wait``) the next one. False when the parent has closed the control pipe."""
        while wait or len(self._kept) > KEEP or select.select([self._control], [], [], 0)[0]:
            message = _read_message(self._control)
            if message is None:
                return False
            self._answer(*message)
            wait = False
        return True

    def _answer(self, numbers: list[int], upto: int, eager: bool | None) -> None:
        if numbers:
            kept = self._kept
            _write_message(self._out, ("checked", [(n, self._read(kept[n])) for n in numbers]))
        if eager is not None:
            self._eager = eager
        kept = self._kept
        # Kept in feed order: drop from the front.
        while kept:
            first = next(iter(kept))
            if first > upto:
                break
            del kept[first]


def main() -> None:
    """Entry point of the child process: ``python -m patronlink.sources.reader_process CONFIG``."""
    # Ctrl-C reaches the whole process group: the parent decides, and closes our pipes.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Reading makes millions of objects without cycles, and keeps thousands of parsed entries
    # alive for the parent: fewer collections (a tenth less time reading). Not none: the
    # collector still frees what cycles there are.
    gc.set_threshold(50_000, 20, 100)
    try:
        _Child(json.loads(sys.argv[1])).run()
    except BrokenPipeError:
        # The parent stopped the run (it closed the results pipe): nothing left to tell it.
        os._exit(0)


# ---------------------------------------------------------------------------------------------
# The parent


_NOTHING: frozenset[str] = frozenset()


def _faults(wire: tuple[tuple[str | None, str, str], ...]) -> tuple[Fault, ...]:
    if not wire:  # nearly always: no generator to set up
        return ()
    return tuple(Fault(f, reason, Severity(severity)) for f, reason, severity in wire)


class ReaderProcess:
    """A format's reader running in a child process over ``stream`` (after ``prefix``).

    Use as a context manager. ``entries()`` yields the feed's entries like a reader's (light ones
    as ``PendingRecord`` without their parsed form); ``check`` fills in the entries of a batch
    that need reading. After ``entries()`` is exhausted, ``deactivate_missing`` and ``notes``
    are the reader's.
    """

    def __init__(
        self,
        fmt: str,
        stream: IO[bytes],
        prefix: bytes,
        *,
        read_flag: bool,
        agency_id: str,
        country_code: str,
        source_id: str,
        options: ReaderOptions | None = None,
    ) -> None:
        self.deactivate_missing: bool | None = None
        self.notes: list[str] = []
        # Whether the body sets FOLIO's updateOnlyPresentFields anywhere (seen as it is copied).
        self.present_only = False
        self._agency_id = agency_id
        self._source_id = source_id
        self._stream = stream
        self._prefix = prefix
        self._queued: deque[Any] = deque()
        self._pump_error: BaseException | None = None
        feed_r, feed_w = os.pipe()
        control_r, control_w = os.pipe()
        out_r, out_w = os.pipe()
        for fd in (feed_w, out_w):
            _grow(fd)
        config = {
            "format": fmt, "read_flag": read_flag, "agency_id": agency_id,
            "options": (options or ReaderOptions()).wire(),
            "country_code": country_code, "source_id": source_id,
            "feed": feed_r, "control": control_r, "out": out_w,
        }  # fmt: skip
        # The child imports patronlink from where this process did (a source checkout, a venv).
        root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        try:
            self._process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [sys.executable, "-m", "patronlink.sources.reader_process", json.dumps(config)],
                stdin=subprocess.DEVNULL,
                pass_fds=(feed_r, control_r, out_w),
                env=env,
            )
        except BaseException:
            for fd in (feed_r, feed_w, control_r, control_w, out_r, out_w):
                os.close(fd)
            raise
        for fd in (feed_r, control_r, out_w):
            os.close(fd)
        self._control = os.fdopen(control_w, "wb", buffering=CHUNK)
        self._ended = False
        self._results = os.fdopen(out_r, "rb", buffering=CHUNK)
        self._feed = os.fdopen(feed_w, "wb", buffering=0)
        self._pump = threading.Thread(target=self._copy_feed, name="import-feed", daemon=True)
        self._pump.start()

    def __enter__(self) -> ReaderProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _copy_feed(self) -> None:
        """The body into the feed pipe (a thread of its own: the source may be slow)."""
        try:
            out = self._feed
            view = memoryview(self._prefix)
            tail = self._prefix[-64:]
            self.present_only = present_only(self._prefix)
            while view:
                view = view[out.write(view) :]
            self._prefix = b""
            while chunk := self._stream.read(CHUNK):
                # The flag may come after the users (FOLIO's samples put it there): a search
                # at memory speed, across the chunks' seams.
                if not self.present_only and b"updateOnlyPresentFields" in tail + chunk[:64]:
                    self.present_only = present_only(tail + chunk)
                elif not self.present_only and b"updateOnlyPresentFields" in chunk:
                    self.present_only = present_only(chunk)
                tail = chunk[-64:]
                view = memoryview(chunk)
                while view:
                    view = view[out.write(view) :]
        except BrokenPipeError:
            pass  # the child was stopped: the run is ending anyway
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread, raised there
            self._pump_error = exc
        finally:
            # Only now (the error is recorded) does the child see the body end.
            with contextlib.suppress(OSError):
                self._feed.close()

    def _receive(self) -> Any:
        message = _read_message(self._results)
        if message is None:
            raise self._failure(f"the reader process ended (exit code {self._process.wait()})")
        return message

    def _failure(self, reason: str, *, kind: str = "crash") -> Exception:
        # A source that failed mid-body is why the child saw the body end early: its error
        # is the one to report. (It is recorded before the copy closes the feed pipe.)
        if isinstance(self._pump_error, Exception):
            return self._pump_error
        if kind == "format":
            return SourceFormatError(reason)
        return RuntimeError(f"the feed reader process failed: {reason}")

    def entries(self) -> Iterator[FeedItem]:
        while True:
            message = self._queued.popleft() if self._queued else self._receive()
            kind = message[0]
            if kind == "entries":
                for w in message[1]:
                    yield self._entry(w)
            elif kind == "end":
                self._pump.join()  # done: the child has read the body to its end
                if self._pump_error is not None:
                    raise self._failure("")
                self.deactivate_missing, self.notes = message[1], message[2]
                self._ended = True
                return
            else:
                raise self._failure(message[2], kind=message[1])

    def _entry(self, w: tuple[Any, ...]) -> FeedItem:
        kind, number = w[0], w[1]
        if kind == _ERROR:
            return RecordError(number, w[2], w[3], w[4])
        item = PendingRecord(number, w[2], w[3], None, self._read_one)
        if kind == _FULL:
            item.checked = self._checked(number, w[2], w[4])
        return item

    def _checked(self, number: int, external_id: str, w: tuple[Any, ...]) -> Checked | RecordError:
        kind = w[0]
        if kind == _VALID:
            p = w[1]
            expiry, birth = p[3], p[10]
            patron = Patron(
                self._agency_id, p[0], p[1], _STATUSES[p[2]],
                dt.date.fromordinal(expiry) if expiry is not None else None, p[4], p[5], p[6],
                p[7], p[8], p[9], dt.date.fromordinal(birth) if birth is not None else None,
                p[11], self._source_id, external_id, p[12], p[13],
            )  # fmt: skip
            return Checked(
                external_id, patron, _faults(w[2]), frozenset(w[3]) if w[3] else _NOTHING
            )
        if kind == _INVALID:
            return Checked(external_id, None, _faults(w[1]), frozenset(w[2]))
        return RecordError(number, w[1], w[2], w[3])

    def _read_one(self, number: int, raw: Any) -> ImportedRecord | RecordError:
        raise AssertionError("entries of the reader process are read with check()")

    def check(self, items: list[PendingRecord], upto: int, eager: bool | None) -> None:
        """Fill in ``checked`` of these entries; the child may drop its entries up to ``upto``
        and sends full entries from now on when ``eager`` (None: as it did)."""
        wanted = {i.number: i for i in items if i.checked is None}
        _write_message(self._control, (list(wanted), upto, eager))
        if not wanted:
            return
        while True:
            message = self._receive()
            if message[0] == "checked":
                for number, w in message[1]:
                    item = wanted[number]
                    item.checked = self._checked(number, item.external_id, w)
                return
            self._queued.append(message)

    def close(self) -> None:
        """Stop the child (it ends by itself once its control pipe closes) and the copying."""
        if not self._ended:
            # The run ends early (an error, here or in the source): the child may be busy
            # reading or blocked writing; nothing it would say is wanted.
            self._process.kill()
        with contextlib.suppress(OSError):
            self._control.close()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        finally:
            self._results.close()
            # With the child gone, a copy blocked on the pipe stops at once; one waiting for
            # the source stops within its read timeout.
            self._pump.join()


if __name__ == "__main__":
    main()
