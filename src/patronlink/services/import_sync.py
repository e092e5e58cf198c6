"""The synchronisation of one feed into the patrons of one source, inside the caller's transaction.

Records arrive one at a time and are handled in batches. An entry whose fingerprint equals the
digest stored when the patron was last written is unchanged and costs no reading, no validation,
no query and no write: the source's digests are loaded once as the run starts (``Digests``). For
the other entries of a batch one query matches them by (source, external id) (none when the
source had no patrons), a second falls back to the patron id for those not found, and the writes
of a batch are a handful of bulk statements; each such record is validated, merged into the stored
patron and written only when a field differs.

The caller owns the transaction: committing it applies the run, rolling it back (a source that
fails midway, a dry run) leaves every patron as it was.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import NamedTuple

from patronlink.domain.import_records import (
    Checked,
    FeedItem,
    ImportedRecord,
    PendingRecord,
    RecordError,
    changed_fields,
    check,
    merge,
    pending,
)
from patronlink.domain.import_runs import DeactivationRules, RunCounts, plan_deactivation
from patronlink.domain.patron import Patron
from patronlink.storage.imports import ImportStore, Known, NewPatron, PatronState

BATCH = 2000
# Fields an entry leaves out that are kept whatever the feed says (a patron id made up for a
# Koha row without a number).
ALWAYS_KEPT = frozenset({"patron_id"})

# Reads the entries of a batch elsewhere (``ReaderProcess.check``): fills in ``checked`` of the
# entries given, may forget entries up to the number given, and reads ahead from now on when told.
RemoteCheck = Callable[[list[PendingRecord], int, bool | None], None]
# Read ahead (in the reader process) while more than this share of a batch needs reading.
EAGER_SHARE = 0.25


class _Keys:
    """A set of patron keys as a bitmap: a million keys in 125 KB rather than 60 MB."""

    def __init__(self) -> None:
        self._bits = bytearray()

    def add(self, key: int) -> None:
        index = key >> 3
        if index >= len(self._bits):
            self._bits.extend(bytes(max(index + 1 - len(self._bits), len(self._bits))))
        self._bits[index] |= 1 << (key & 7)

    def update(self, keys: Iterable[int]) -> None:
        for key in keys:
            self.add(key)

    def __contains__(self, key: int) -> bool:
        index = key >> 3
        return index < len(self._bits) and bool(self._bits[index] & (1 << (key & 7)))


class _Candidate(NamedTuple):
    """An entry of a batch read into a patron, to be created or to update its match."""

    number: int
    external_id: str
    digest: str
    match: Known | None  # the source's patron with the entry's external id
    patron: Patron
    checked: Checked


class _Update(NamedTuple):
    """A stored patron and the patron an entry says it is."""

    digest: str
    known: Known
    patron: Patron
    keep: frozenset[str]  # fields the entry does not carry


@dataclass(frozen=True, slots=True)
class Change:
    """What a run does (or, dry, would do) to one patron."""

    action: str  # create | update | deactivate
    patron_id: str
    name: str
    fields: tuple[str, ...] = ()


class Synchroniser:
    """Feed it every item of a feed with ``add``, then call ``finish`` once."""

    def __init__(
        self,
        store: ImportStore,
        *,
        agency_id: str,
        country_code: str,
        source_id: str,
        now: dt.datetime,
        collect_changes: bool = False,
        progress: Callable[[RunCounts], None] | None = None,
        batch_size: int = BATCH,
        remote: RemoteCheck | None = None,
        patron_id_prefix: str = "",
        present_only: bool | None = False,
    ) -> None:
        self._store = store
        self._agency_id = agency_id
        self._country_code = country_code
        self._source_id = source_id
        self._now = now
        self._collect = collect_changes
        self._progress = progress
        self._batch_size = batch_size
        self._remote = remote
        self._prefix = patron_id_prefix
        # FOLIO's updateOnlyPresentFields: None while the feed has not said (it may say so
        # after its users); see ``resolve_present_only``.
        self._present_only = present_only
        # Meanwhile, for each patron updated as if it were false, the stored values the flag
        # would have kept, and whether the patron would have changed at all.
        self._deferred: dict[int, tuple[dict[str, object], bool]] = {}
        self._batch: list[RecordError | PendingRecord] = []
        # Memory grows with the feed only through these two and the digests below (the external
        # ids of a million entries take about 100 MB, their keys 125 KB, the digests of a million
        # patrons 32 MB); everything else is per batch.
        self._seen_external: set[str] = set()
        self._seen_pks = _Keys()
        # What the source holds as the run starts, loaded once (see ``Digests``).
        self._digests = self._store.digests(agency_id, source_id)
        self._source_was_empty = not self._store.has_patrons(agency_id, source_id)
        self.counts = RunCounts()
        self.errors: list[RecordError] = []
        self.changes: list[Change] = []
        self.note: str | None = None
        # A safety rule kept the missing patrons from being deactivated (see ``finish``).
        self.stopped = False

    def close(self) -> None:
        """Wait for the store's background writes; call before the transaction ends."""
        self._store.close()

    def add(self, item: FeedItem) -> None:
        # Everything, errors included, goes through the batch so that each item is judged in
        # feed order (duplicates, errors) when its batch is applied.
        self.counts.records += 1
        self._batch.append(pending(item) if isinstance(item, ImportedRecord) else item)
        if len(self._batch) >= self._batch_size:
            self.flush()

    def _fail(self, error: RecordError) -> None:
        self.counts.failed += 1
        self.errors.append(error)

    def _warn(self, number: int, checked: Checked) -> None:
        """A record that is written, with what was set aside (a phone number that does not
        validate) reported as warnings."""
        if checked.faults:
            self.counts.warnings += 1
            self.errors.extend(checked.findings(number))

    def _fail_checked(self, number: int, checked: Checked) -> None:
        """A record with errors: every fault found is reported, the warnings too."""
        self.counts.failed += 1
        self.errors.extend(checked.findings(number))

    def flush(self) -> None:
        batch, self._batch = self._batch, []
        if batch:
            self._apply(batch)
        if self._progress is not None:
            self._progress(self.counts)

    def _check(self, item: PendingRecord) -> Checked | RecordError:
        """Read and validate an entry here."""
        record = item.read()
        if isinstance(record, RecordError):
            return record
        return check(
            record,
            agency_id=self._agency_id,
            country_code=self._country_code,
            source_id=self._source_id,
        )

    def _read_ahead(self, batch: list[RecordError | PendingRecord]) -> None:
        """Read and validate entries while the store still writes the previous batch.

        The writes of a first import run in the background (PostgreSQL); instead of waiting for
        them, the entries of this batch are read into records and patrons, which the matching
        would mostly need anyway. Only while the writes last, so an unchanged run, which writes
        nothing, reads nothing ahead.
        """
        for item in batch:
            if not self._store.writing():
                return
            if isinstance(item, PendingRecord) and item.checked is None:
                item.checked = self._check(item)

    def _apply(self, batch: list[RecordError | PendingRecord]) -> None:
        if self._remote is None:
            self._read_ahead(batch)
        # Entries unchanged by the digests stored when the run started (their patron not
        # written since by this run), by entry number; the others are matched by external id.
        clean: dict[int, int] = {}
        others: list[str] = []
        find, written = self._digests.find, self._seen_pks
        for item in batch:
            if isinstance(item, RecordError):
                continue
            pk = find(item.fingerprint, item.external_id)
            if pk is not None and pk not in written:
                clean[item.number] = pk
            else:
                others.append(item.external_id)
        # A source without patrons when the run started has, at any time of the run, only the
        # patrons this run created, each from an entry whose external id is seen already.
        known = (
            self._store.by_external_id(self._agency_id, self._source_id, others)
            if others and not self._source_was_empty
            else {}
        )
        if self._remote is not None:
            # Every entry that is not unchanged by its digest is read in the reader process,
            # in one request for the batch (a duplicate too: reading is harmless).
            needed = [
                i
                for i in batch
                if isinstance(i, PendingRecord)
                and i.number not in clean
                and not _unchanged(known.get(i.external_id), i)
            ]
            self._remote(needed, batch[-1].number, len(needed) > EAGER_SHARE * len(batch))
        self._judge(batch, clean, known)

    def _checked(self, item: PendingRecord) -> Checked | RecordError:
        if item.checked is None and self._remote is not None:
            self._remote([item], 0, None)  # not asked for with its batch (not expected)
        return item.checked if item.checked is not None else self._check(item)

    def _judge(
        self,
        batch: list[RecordError | PendingRecord],
        clean: dict[int, int],
        known: dict[str, Known],
    ) -> None:
        """Each entry of the batch, in feed order: an error, unchanged, or to be written."""
        candidates: list[_Candidate] = []
        seen = self._seen_external
        for item in batch:
            if isinstance(item, RecordError):
                self._fail(item)
                continue
            external_id = item.external_id
            if external_id in seen:
                self._fail(
                    RecordError(
                        item.number,
                        f"external id {external_id!r} appears more than once in the feed",
                        external_id,
                    )
                )
                continue
            pk = clean.get(item.number)
            if pk is not None:
                # The feed says what it said when the patron was last written. The entry is
                # never even read into a record: this is most of a scheduled run.
                seen.add(external_id)
                self.counts.unchanged += 1
                self._seen_pks.add(pk)
                continue
            match = known.get(external_id)
            if _unchanged(match, item):
                # As above, for an entry the digests loaded at the start did not decide.
                assert match is not None
                seen.add(external_id)
                self.counts.unchanged += 1
                self._seen_pks.add(match.pk)
                continue
            checked = self._checked(item)
            if isinstance(checked, RecordError):
                self._fail(checked)
                continue
            seen.add(external_id)
            if checked.patron is None:
                if match is not None:
                    self._seen_pks.add(match.pk)
                self._fail_checked(item.number, checked)
                continue
            candidates.append(
                _Candidate(
                    number=item.number,
                    external_id=checked.external_id,
                    digest=item.fingerprint,
                    match=match,
                    patron=checked.patron,
                    checked=checked,
                )
            )
        if candidates:
            self._write(candidates)

    def _write(self, candidates: list[_Candidate]) -> None:
        lookups = [
            c.patron.patron_id
            for c in candidates
            if c.patron.patron_id and (c.match is None or c.match.patron_id != c.patron.patron_id)
        ]
        by_patron_id = self._store.by_patron_id(self._agency_id, lookups) if lookups else {}
        claimed: set[str] = set()
        creates: list[NewPatron] = []
        updates: list[_Update] = []
        for c in candidates:
            number, match, patron, checked = c.number, c.match, c.patron, c.checked
            other = by_patron_id.get(patron.patron_id)
            reason = None
            if patron.patron_id and patron.patron_id in claimed:
                reason = f"patron id {patron.patron_id!r} appears more than once in the feed"
            elif match is None and other is None:
                creates.append(NewPatron(patron=patron, digest=c.digest))
            elif match is None and other is not None:
                if other.pk in self._seen_pks:
                    reason = f"patron id {patron.patron_id!r} appears more than once in the feed"
                elif other.external_id is not None and other.source != self._source_id:
                    reason = (
                        f"patron id {patron.patron_id!r} belongs to a patron of import source "
                        f"{other.source!r}"
                    )
                else:
                    # Fall back to the patron id: a patron registered by hand (or re-keyed by the
                    # institution) is taken over by this source rather than duplicated.
                    updates.append(
                        _Update(digest=c.digest, known=other, patron=patron, keep=checked.keep)
                    )
            elif match is not None and other is not None and other.pk != match.pk:
                reason = f"patron id {patron.patron_id!r} is taken by another patron"
            elif match is not None:
                updates.append(
                    _Update(digest=c.digest, known=match, patron=patron, keep=checked.keep)
                )
            if reason is not None:
                if match is not None:
                    self._seen_pks.add(match.pk)
                self._fail(RecordError(number, reason, c.external_id, "patron_id"))
                self.errors.extend(checked.findings(number))
            else:
                claimed.add(patron.patron_id)
                self._warn(number, checked)
        self._create(creates)
        self._update(updates)

    def _create(self, creates: list[NewPatron]) -> None:
        if not creates:
            return
        unnumbered = [i for i, new in enumerate(creates) if not new.patron.patron_id]
        if unnumbered:
            # Rows without a card number (Koha's own import numbers such patrons too).
            ids = self._store.new_patron_ids(self._agency_id, self._prefix, len(unnumbered))
            for i, patron_id in zip(unnumbered, ids, strict=True):
                new = creates[i]
                creates[i] = new._replace(
                    patron=dataclasses.replace(new.patron, patron_id=patron_id)
                )
        pks = self._store.create(creates, self._now)
        self._seen_pks.update(pks)
        self.counts.created += len(pks)
        if self._collect:
            self.changes.extend(
                Change("create", new.patron.patron_id, new.patron.name) for new in creates
            )

    def _update(self, updates: list[_Update]) -> None:
        if not updates:
            return
        stored = self._store.load([u.known.pk for u in updates])
        writes: list[tuple[int, Patron]] = []
        states: list[PatronState] = []
        for u in updates:
            digest, known, imported, keep = u.digest, u.known, u.patron, u.keep
            self._seen_pks.add(known.pk)
            original = stored[known.pk]
            own = keep & ALWAYS_KEPT
            wanted = merge(original, imported, keep if self._present_only else own)
            if self._present_only is None and keep - own:
                self._defer(known.pk, original, imported, keep, wanted)
            fields = changed_fields(original, wanted)
            if fields:
                writes.append((known.pk, wanted))
                self.counts.updated += 1
                if self._collect:
                    self.changes.append(Change("update", wanted.patron_id, wanted.name, fields))
            else:
                self.counts.unchanged += 1
            if fields or known.digest != digest or known.missing_runs or not known.has_state:
                states.append(PatronState(pk=known.pk, digest=digest, missing_runs=0))
        self._store.update(writes, self._now)
        self._store.set_state(states)

    def _defer(
        self, pk: int, original: Patron, imported: Patron, keep: frozenset[str], wanted: Patron
    ) -> None:
        """Remember what updateOnlyPresentFields would keep of this patron, should the feed set
        it after its users. Only the values that differ: a field the user lacks that was empty
        anyway costs nothing."""
        later = merge(original, imported, keep)
        saved = {f: getattr(later, f) for f in keep if getattr(later, f) != getattr(wanted, f)}
        if saved:
            self._deferred[pk] = (saved, bool(changed_fields(original, later)))

    def resolve_present_only(self, present_only: bool) -> None:
        """What the feed said of updateOnlyPresentFields, once all of it is read.

        When it was said only after the users, the patrons updated meanwhile get back the stored
        values of the fields their users did not carry (in the same transaction).
        """
        self.flush()
        deferred, self._deferred = self._deferred, {}
        self._present_only = present_only
        if not present_only or not deferred:
            return
        current = self._store.load(list(deferred))
        writes = []
        for pk, (saved, changed) in deferred.items():
            writes.append((pk, dataclasses.replace(current[pk], **saved)))  # type: ignore[arg-type]
            if not changed:  # only a field the flag keeps had changed: unchanged after all
                self.counts.updated -= 1
                self.counts.unchanged += 1
        self._store.update(writes, self._now)

    def finish(self, rules: DeactivationRules) -> None:
        """Apply the last batch, then count and deactivate the missing patrons when it is safe."""
        self.flush()
        self.errors.sort(key=lambda e: e.number)
        population = 0
        missing: dict[int, int] = {}
        for pk, runs in self._store.population(self._agency_id, self._source_id):
            population += 1
            if pk not in self._seen_pks:
                missing[pk] = runs
        plan = plan_deactivation(
            rules,
            records=self.counts.records,
            failed=self.counts.failed,
            population=population,
            missing=missing,
        )
        self.note = plan.skipped
        self.stopped = plan.stopped
        if not plan.counting:
            return
        self._store.count_missing(plan.counting)
        self._store.deactivate(plan.deactivate, self._now)
        self.counts.deactivated = len(plan.deactivate)
        if self._collect and plan.deactivate:
            gone = self._store.load(plan.deactivate)
            self.changes.extend(Change("deactivate", p.patron_id, p.name) for p in gone.values())


def _unchanged(match: Known | None, item: PendingRecord) -> bool:
    """Whether the stored patron was written from exactly this entry and has been seen since."""
    return match is not None and match.digest == item.fingerprint and match.missing_runs == 0
