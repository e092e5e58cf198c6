"""How a list answers in the staff API: the page as a JSON array, its place in the headers.

The body of every list stays a plain array (clients written against it keep working); the total
goes in ``X-Total-Count`` and the neighbouring pages in a ``Link`` header (RFC 8288, ``rel="next"``
and ``rel="prev"``), the convention of the GitHub and GitLab APIs. A client pages by following
``next`` until there is none, or by ``offset`` until ``offset + len(page) == X-Total-Count``.
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


def set_page_headers(request: Request, response: Response, paged: Paged[Any]) -> None:
    response.headers[TOTAL_HEADER] = str(paged.total)
    response.headers[HAS_MORE_HEADER] = "true" if paged.has_more else "false"
    links = []
    for rel, offset in (("next", paged.next_offset), ("prev", paged.previous_offset)):
        if offset is not None:
            url = request.url.include_query_params(offset=offset, limit=paged.limit)
            links.append(f'<{url}>; rel="{rel}"')
    if links:
        response.headers["Link"] = ", ".join(links)
