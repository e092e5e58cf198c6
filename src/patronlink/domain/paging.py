"""One page of a longer list: what every list in the API, the CLI and the staff UI hands back.

``total`` is counted with the same filter as the page, so "1-100 of 117" and "next" are true of
the list the reader asked for, not of the whole table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

MAX_PAGE = 1000  # the most rows one request may ask for


@dataclass(frozen=True, slots=True)
class Paged(Generic[T]):
    items: list[T]
    total: int
    offset: int
    limit: int

    @property
    def first(self) -> int:
        """The 1-based position of the first row shown (0 when none is)."""
        return self.offset + 1 if self.items else 0

    @property
    def last(self) -> int:
        return self.offset + len(self.items)

    @property
    def has_more(self) -> bool:
        return self.last < self.total

    @property
    def next_offset(self) -> int | None:
        return self.last if self.has_more else None

    @property
    def previous_offset(self) -> int | None:
        return None if self.offset == 0 else max(self.offset - self.limit, 0)
