"""The date formats of library systems' exports, and telling them apart from the values alone.

Koha writes dates in its ``dateformat`` system preference: ``iso`` (2015-07-01), ``us``
(07/01/2015), ``metric`` (01/07/2015) or ``dmydot`` (01.07.2015). A source says which, or leaves
it to ``auto``: the first value that only one format reads decides for the whole file
(``decide``). A file whose slashed dates all have a day of 12 or less could be ``us`` or
``metric`` alike, and is refused rather than guessed: 01/07/2015 is January or July.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

DateFormat = Literal["iso", "us", "metric", "dmydot"]
FORMATS: tuple[DateFormat, ...] = ("iso", "us", "metric", "dmydot")
# How each format is written, for the messages.
PATTERNS: dict[str, str] = {
    "iso": "YYYY-MM-DD",
    "us": "MM/DD/YYYY",
    "metric": "DD/MM/YYYY",
    "dmydot": "DD.MM.YYYY",
}


def _parts(text: str, sep: str) -> tuple[int, int, int] | None:
    pieces = text.split(sep)
    if len(pieces) != 3 or not all(p.isascii() and p.isdigit() for p in pieces):
        return None
    first, second, year = pieces
    if len(year) != 4 or not (1 <= len(first) <= 2) or not (1 <= len(second) <= 2):
        return None
    return int(first), int(second), int(year)


def _date(year: int, month: int, day: int) -> dt.date | None:
    try:
        return dt.date(year, month, day)
    except ValueError:
        return None


def read(text: str, fmt: DateFormat) -> dt.date | None:
    """The date ``text`` is in ``fmt`` (a timestamp's date part for ``iso``), or None."""
    text = text.strip()
    if fmt == "iso":
        head, tail = text[:10], text[10:]
        if tail and tail[0] not in "T ":
            return None
        try:
            return dt.date.fromisoformat(head) if len(head) == 10 else None
        except ValueError:
            return None
    # Koha writes a time after the date in some exports ("07/01/2015 00:00"): the date counts.
    text = text.split(" ", 1)[0]
    parts = _parts(text, "." if fmt == "dmydot" else "/")
    if parts is None:
        return None
    first, second, year = parts
    if fmt == "us":
        return _date(year, first, second)
    return _date(year, second, first)


def candidates(text: str) -> frozenset[DateFormat]:
    """The formats that read ``text`` as a date (empty: none does)."""
    return frozenset(f for f in FORMATS if read(text, f) is not None)


class Undecided(ValueError):
    """The values seen do not tell the file's date format; the message says what to set."""


class Judge:
    """Decides a file's date format from its values, one at a time (see ``decide``)."""

    def __init__(self) -> None:
        self.possible: set[DateFormat] = set(FORMATS)
        self.example: str | None = None  # the first date seen

    def add(self, value: str) -> None:
        """Take one value into account; raises ``Undecided`` when no format reads all dates."""
        if not value.strip():
            return
        fits = candidates(value)
        if not fits:
            return  # not a date in any format: that record's own error
        if self.example is None:
            self.example = value
        self.possible &= fits
        if not self.possible:
            raise Undecided(
                f"the dates of the file are in more than one format (such as {self.example!r} "
                f"and {value!r}): set date_format on the source to iso, us, metric or dmydot"
            )

    @property
    def decided(self) -> bool:
        """Whether the values so far leave exactly one format."""
        return self.example is not None and len(self.possible) == 1

    def result(self) -> DateFormat | None:
        """The format; None when no value was a date. Raises ``Undecided`` when more than one
        format reads every date seen."""
        if self.example is None:
            return None
        if len(self.possible) == 1:
            return next(iter(self.possible))
        raise Undecided(
            f"the dates of the file (such as {self.example!r}) could be "
            + " or ".join(f"{f} ({PATTERNS[f]})" for f in FORMATS if f in self.possible)
            + ": set date_format on the source"
        )


def decide(values: list[str]) -> DateFormat | None:
    """The one format the dates among ``values`` are in (None: none is a date).

    Raises ``Undecided`` when the values fit more than one format (every slashed date has a day
    of 12 or less) or no single format reads them all.
    """
    judge = Judge()
    for value in values:
        judge.add(value)
    return judge.result()
