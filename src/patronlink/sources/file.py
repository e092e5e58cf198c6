"""Feeds from the local file system (``file://`` sources and ``patronlink import run --file``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO
from urllib.parse import unquote, urlsplit

from patronlink.domain.errors import SourceUnavailable


def path_of_url(url: str) -> Path:
    """``file:///srv/feeds/patrons.json`` -> ``/srv/feeds/patrons.json``."""
    parts = urlsplit(url)
    return Path(unquote(parts.netloc + parts.path) if parts.netloc else unquote(parts.path))


class FileSource:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.description = str(path)

    @contextmanager
    def open(self) -> Iterator[IO[bytes]]:
        try:
            stream = self.path.open("rb")
        except OSError as exc:
            raise SourceUnavailable(f"cannot read {self.path}: {exc.strerror or exc}") from exc
        with stream:
            yield stream
