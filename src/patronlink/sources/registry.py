"""Which source and which reader a source's settings ask for."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from patronlink.sources.base import PatronSource
from patronlink.sources.file import FileSource, path_of_url
from patronlink.sources.formats import FORMATS, open_reader
from patronlink.sources.http import HttpSource

__all__ = ["FORMATS", "build_source", "open_reader"]


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
