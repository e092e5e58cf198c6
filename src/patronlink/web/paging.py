"""How a list answers in the staff API: the page as a JSON array, its place in the headers.

The body of every list stays a plain array (clients written against it keep working); the total
goes in ``X-Total-Count`` and the neighbouring pages in a ``Link`` header (RFC 8288, ``rel="next"``
and ``rel="prev"``), the convention of the GitHub and GitLab APIs. A client pages by following
``next`` until there is none, or by ``offset`` until ``offset + len(page) == X-Total-Count``.
``X-Has-More`` says "true" while a next page exists (lists too costly to count give only that).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query, Request, Response

from patronlink.domain.paging import MAX_PAGE, Paged

Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description="rows per page")]

TOTAL_HEADER = "X-Total-Count"
HAS_MORE_HEADER = "X-Has-More"

PAGED_HEADERS: dict[str, Any] = {
    TOTAL_HEADER: {"description": "rows that match the filter", "schema": {"type": "integer"}},
    HAS_MORE_HEADER: {"description": "true when a next page exists", "schema": {"type": "string"}},
    "Link": {
        "description": 'RFC 8288 links, rel="next" and rel="prev"',
        "schema": {"type": "string"},
    },
}


def _links(
    request: Request, response: Response, prev: int | None, nxt: int | None, limit: int
) -> None:
    links = []
    for rel, offset in (("next", nxt), ("prev", prev)):
        if offset is not None:
            url = request.url.include_query_params(offset=offset, limit=limit)
            links.append(f'<{url}>; rel="{rel}"')
    if links:
        response.headers["Link"] = ", ".join(links)


def set_has_more(
    request: Request, response: Response, offset: int, limit: int, has_more: bool
) -> None:
    """For a list too costly to count: whether a next page exists, and the links."""
    response.headers[HAS_MORE_HEADER] = "true" if has_more else "false"
    _links(
        request,
        response,
        max(offset - limit, 0) if offset else None,
        offset + limit if has_more else None,
        limit,
    )


def set_page_headers(request: Request, response: Response, paged: Paged[Any]) -> None:
    response.headers[TOTAL_HEADER] = str(paged.total)
    response.headers[HAS_MORE_HEADER] = "true" if paged.has_more else "false"
    _links(request, response, paged.previous_offset, paged.next_offset, paged.limit)
