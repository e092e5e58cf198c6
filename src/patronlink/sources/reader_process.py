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
  (also the validated patron's fields or the reason it is not one). While most entries need reading
  (a first import), the parent asks for full entries, which the child then reads ahead of need;
  while most are unchanged, light ones, and the child keeps their parsed form until asked.
* **control** (parent to child): after matching each batch, which light entries of it the parent
  needs read (the child answers on the results pipe), that the entries up to the batch's end may
  be dropped, and whether to send full entries from now on. The child keeps at most ``KEEP``
  entries and waits for the parent beyond that, so memory stays bounded whatever the feed's size.

The parent decides everything as before (unchanged, duplicate, create, update, errors in feed
order); the child only reads. A malformed body fails the run from the child's reader, a source
that fails mid-body fails it from the copying thread (that error is the one reported).
Messages are length-prefixed pickles between two processes of this same program, each a named
tuple of this module (``_Entries``, ``_Answers``, ``_Request``, ...), built and read by name.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import importlib
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
from typing import IO, Any, NamedTuple

from patronlink.domain.errors import SourceFormatError
from patronlink.domain.import_records import (
    Checked,
    Fault,
    FeedItem,
    ImportedRecord,
    PatronFields,
    PendingRecord,
    RecordError,
    pending,
    validate,
)
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

# Wire forms: named tuples, by column. An entry sent on its own as a named tuple would be pickled
# through Python (``__reduce_ex__``, ``__getnewargs__``): 1-2 µs in the child for every entry, a
# tenth of reading an unchanged one. Lists of numbers and strings pickle in C, so a message holds
# its entries as parallel lists, and the patron's fields of an entry read go as the plain tuple
# of their ``PatronFields`` (made one again on arrival, the same class at both ends: see
# ``_plain`` and ``_named``). A record error (rare) goes as itself.


class _Reads(NamedTuple):
    """Entries read and validated, by entry number."""

    # The patron's fields (``_plain``), None when a fault is an error.
    fields: dict[int, tuple[object, ...] | None]
    # The entries that could not be read into a record, and why.
    unreadable: dict[int, RecordError]
    # Only the entries that have them: the faults found, the patron fields the entry does not
    # carry (``Checked.keep``).
    faults: dict[int, tuple[Fault, ...]]
    keep: dict[int, frozenset[str]]


def _plain(fields: PatronFields) -> tuple[object, ...]:
    """The fields as a plain tuple, which pickles in C (a named tuple goes through Python)."""
    return tuple(fields)


def _named(plain: tuple[object, ...]) -> PatronFields:
    """``_plain``'s tuple as the ``PatronFields`` it was, in C (``_make`` is Python)."""
    return tuple.__new__(PatronFields, plain)


def _reads() -> _Reads:
    return _Reads(fields={}, unreadable={}, faults={}, keep={})


class _Entries(NamedTuple):
    """Entries in feed order. Entry ``i`` is ``numbers[i]``, ``external_ids[i]``,
    ``fingerprints[i]``; those sent *full* are in ``reads`` too. Entries that are not even that
    (no external id) are ``errors``, in feed order among them by their numbers."""

    numbers: list[int]
    external_ids: list[str]
    fingerprints: list[str]
    reads: _Reads
    errors: list[RecordError]


def _entries() -> _Entries:
    return _Entries(numbers=[], external_ids=[], fingerprints=[], reads=_reads(), errors=[])


class _Answers(NamedTuple):
    """The entries the parent asked to have read."""

    reads: _Reads


class _End(NamedTuple):
    deactivate_missing: bool | None
    notes: list[str]


class _Failed(NamedTuple):
    kind: str  # format | crash
    reason: str


class _Request(NamedTuple):
    """Parent to child, after matching a batch."""

    numbers: list[int]  # the light entries to read
    upto: int  # the entries up to this number may be dropped
    eager: bool | None  # send full entries from now on (None: as before)


_Result = _Entries | _Answers | _End | _Failed


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
        sent = _entries()
        count = 0
        try:
            for entry in reader.entries():
                self._wire(entry, sent)
                count += 1
                if count >= SEND:
                    _write_message(self._out, sent)
                    sent = _entries()
                    count = 0
                    if not self._serve():
                        return
            _write_message(self._out, sent)
            _write_message(self._out, _End(reader.deactivate_missing, reader.notes))
        except SourceFormatError as exc:
            _write_message(self._out, sent)
            _write_message(self._out, _Failed("format", str(exc)))
        except Exception as exc:  # noqa: BLE001 - any error of the reader is reported to the parent
            _write_message(self._out, _Failed("crash", f"{type(exc).__name__}: {exc}"))
        # The parent may still ask about entries it has: answer until it closes the pipe.
        while self._serve(wait=True):
            pass

    def _wire(self, entry: FeedItem, sent: _Entries) -> None:
        if isinstance(entry, RecordError):
            sent.errors.append(entry)
            return
        item = pending(entry) if isinstance(entry, ImportedRecord) else entry
        sent.numbers.append(item.number)
        sent.external_ids.append(item.external_id)
        sent.fingerprints.append(item.fingerprint)
        if self._eager:
            self._read(item, sent.reads)
        else:
            self._kept[item.number] = item

    def _read(self, item: PendingRecord, reads: _Reads) -> None:
        record = item.read()
        if isinstance(record, RecordError):
            reads.unreadable[item.number] = record
            return
        # The parent makes the patron with the entry's external id, the agency and the source:
        # they are not sent.
        assert record.external_id == item.external_id
        # ``check`` without making the Patron that would only be taken apart again.
        fields, faults = validate(record, country_code=self._config["country_code"])
        reads.fields[item.number] = _plain(fields) if fields is not None else None
        if faults:
            reads.faults[item.number] = faults
        if record.absent:
            reads.keep[item.number] = record.absent

    def _serve(self, *, wait: bool = False) -> bool:
        """Answer the parent's requests: those waiting, and while too many entries are kept (or
        ``wait``) the next one. False when the parent has closed the control pipe."""
        while wait or len(self._kept) > KEEP or select.select([self._control], [], [], 0)[0]:
            request: _Request | None = _read_message(self._control)
            if request is None:
                return False
            self._answer(request)
            wait = False
        return True

    def _answer(self, request: _Request) -> None:
        kept = self._kept
        if request.numbers:
            reads = _reads()
            for number in request.numbers:
                self._read(kept[number], reads)
            _write_message(self._out, _Answers(reads))
        if request.eager is not None:
            self._eager = request.eager
        upto = request.upto
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
        self._queued: deque[_Result] = deque()
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

    def _receive(self) -> _Result:
        message: _Result | None = _read_message(self._results)
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
            if type(message) is _Entries:
                yield from self._entries(message)
            elif type(message) is _End:
                self._pump.join()  # done: the child has read the body to its end
                if self._pump_error is not None:
                    raise self._failure("")
                self.deactivate_missing, self.notes = message.deactivate_missing, message.notes
                self._ended = True
                return
            elif type(message) is _Failed:
                raise self._failure(message.reason, kind=message.kind)
            else:
                raise self._failure(f"unexpected message {type(message).__name__}")

    def _entries(self, sent: _Entries) -> Iterator[FeedItem]:
        reads, errors, read_one = sent.reads, sent.errors, self._read_one
        full = bool(reads.fields or reads.unreadable)
        e = 0
        for number, external_id, fingerprint in zip(
            sent.numbers, sent.external_ids, sent.fingerprints, strict=True
        ):
            while e < len(errors) and errors[e].number < number:
                yield errors[e]
                e += 1
            item = PendingRecord(number, external_id, fingerprint, None, read_one)
            if full:
                item.checked = self._checked(number, external_id, reads)
            yield item
        yield from errors[e:]

    def _checked(
        self, number: int, external_id: str, reads: _Reads
    ) -> Checked | RecordError | None:
        """The entry as read in the child, None when it was not."""
        if number in reads.fields:
            plain = reads.fields[number]
            patron = (
                _named(plain).patron(
                    agency_id=self._agency_id, source_id=self._source_id, external_id=external_id
                )
                if plain is not None
                else None
            )
            faults = reads.faults.get(number, ()) if reads.faults else ()
            keep = reads.keep.get(number, _NOTHING) if reads.keep else _NOTHING
            return Checked(external_id, patron, faults, keep)
        return reads.unreadable.get(number)

    def _read_one(self, number: int, raw: Any) -> ImportedRecord | RecordError:
        raise AssertionError("entries of the reader process are read with check()")

    def check(self, items: list[PendingRecord], upto: int, eager: bool | None) -> None:
        """Fill in ``checked`` of these entries; the child may drop its entries up to ``upto``
        and sends full entries from now on when ``eager`` (None: as it did)."""
        wanted = {i.number: i for i in items if i.checked is None}
        _write_message(self._control, _Request(numbers=list(wanted), upto=upto, eager=eager))
        if not wanted:
            return
        while True:
            message = self._receive()
            if type(message) is _Answers:
                for number, item in wanted.items():
                    item.checked = self._checked(number, item.external_id, message.reads)
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
    # Run as the module itself rather than as ``__main__``: the wire's named tuples are pickled
    # by their module's name, which the parent knows as ``patronlink.sources.reader_process``.
    importlib.import_module("patronlink.sources.reader_process").main()
