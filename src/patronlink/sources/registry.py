"""Which source and which reader a source's settings ask for."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO

from patronlink.sources.base import FeedReader, PatronSource
from patronlink.sources.file import FileSource, path_of_url
from patronlink.sources.folio_json import FolioJsonReader
from patronlink.sources.http import HttpSource
from patronlink.sources.koha_csv import KohaCsvReader

# Each reader takes the open stream and ``read_flag``: whether to read the feed's own
# deactivation flag (only needed when the source's settings leave it to the feed).
FORMATS: dict[str, Callable[..., FeedReader]] = {
    "folio-json": FolioJsonReader,
    "koha-csv": KohaCsvReader,
}


def open_reader(fmt: str, stream: IO[bytes], *, read_flag: bool) -> FeedReader:
    return FORMATS[fmt](stream, read_flag=read_flag)


def build_source(
    url: str,
    auth: Mapping[str, str],
    *,
    connect_timeout: float,
    read_timeout: float,
    file: Path | None = None,
) -> PatronSource:
    """The source for a URL (``file://`` or ``http(s)://``), or ``file`` when given instead."""
    if file is not None:
        return FileSource(file)
    if url.startswith("file:"):
        return FileSource(path_of_url(url))
    return HttpSource(url, auth, connect_timeout=connect_timeout, read_timeout=read_timeout)
