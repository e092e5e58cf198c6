"""The feed formats by name: each reader takes the open stream and ``read_flag``.

``read_flag`` says whether to read the feed's own deactivation flag (only needed when the
source's settings leave it to the feed). Kept apart from the registry of sources so that the
reader process imports the readers without the HTTP client.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import IO

from patronlink.sources.base import FeedReader, ReaderOptions
from patronlink.sources.folio_json import FolioJsonReader
from patronlink.sources.koha_csv import KohaCsvReader

FORMATS: dict[str, Callable[..., FeedReader]] = {
    "folio-json": FolioJsonReader,
    "koha-csv": KohaCsvReader,
}


def open_reader(
    fmt: str, stream: IO[bytes], *, read_flag: bool, options: ReaderOptions | None = None
) -> FeedReader:
    return FORMATS[fmt](stream, read_flag=read_flag, options=options or ReaderOptions())
