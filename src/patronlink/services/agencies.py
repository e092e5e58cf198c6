"""Looking agencies up by any of their names, within the caller's scope."""

from __future__ import annotations

from patronlink.domain.agency import Agency
from patronlink.domain.errors import NotFound
from patronlink.storage.database import Repositories


def require_agency(repos: Repositories, ref: str) -> Agency:
    """The agency by ISIL or bare number; ``NotFound`` names what was asked for."""
    agency = repos.agencies.get(ref)
    if agency is None:
        raise NotFound(f"agency {ref!r} does not exist")
    return agency
