"""The ports of patron import: where a feed's bytes come from, and how a format reads them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import IO, Any, Literal, Protocol

from patronlink.domain.import_records import FeedItem, ImportedRecord, RecordError


@dataclass(frozen=True, slots=True)
class ReaderOptions:
    """What a source's settings tell its format's reader (plain values: they travel to the
    reader process as JSON).

    ``date_format``: how the feed writes dates (``auto``: decided from the values; Koha CSV).
    ``patron_id``, ``external_id``, ``sms_number``: the column (Koha) or dotted JSON path (FOLIO)
    that gives each, instead of the format's defaults (``[import_sources.mapping]``).
    ``update_only_present``: FOLIO's ``updateOnlyPresentFields`` as the feed set it.
    """

    date_format: Literal["auto", "iso", "us", "metric", "dmydot"] = "auto"
    patron_id: str | None = None
    external_id: str | None = None
    sms_number: str | None = None
    update_only_present: bool = False

    def wire(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


class PatronSource(Protocol):
    """Where a feed comes from (an HTTP(S) service, a file).

    ``open()`` connects and checks the answer before it yields a binary stream of the body, so that
    an unavailable source fails before any transaction starts. Reading the stream may still raise
    ``SourceUnavailable`` (the connection drops, a read times out); nothing else escapes.
    """

    description: str

    def open(self) -> AbstractContextManager[IO[bytes]]: ...


class FeedReader(Protocol):
    """One format's reader over one open stream.

    ``records()`` yields every entry in feed order, as a record or as the reason it could not be
    read, and raises ``SourceFormatError`` when the body itself is malformed or truncated. After
    it is exhausted, ``deactivate_missing`` is what the feed itself asks for (None: it does not
    say) and ``notes`` what the operator should know (unknown columns, ...).
    """

    deactivate_missing: bool | None
    notes: list[str]
    # FOLIO's ``updateOnlyPresentFields`` as the whole feed set it (known once it is read).
    present_only: bool

    def records(self) -> Iterator[ImportedRecord | RecordError]: ...

    def entries(self) -> Iterator[FeedItem]:
        """``records``, where the reader may leave entries pending (``PendingRecord``)."""
        ...
