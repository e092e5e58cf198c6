"""The ``Idempotency-Key`` request header of ``POST .../messages``: its syntax and the request's
fingerprint.

The header is the IETF HTTPAPI draft's (draft-ietf-httpapi-idempotency-key-header): a
Structured Field String, ``Idempotency-Key: "8e03978e-40d5-43e8-bc93-6894a57f9324"``. Many
clients (Stripe's convention) send the key without the quotes; both are taken, as the same key.
A key is 1 to 255 visible ASCII characters. A key reused with another request is refused (the
draft's 422); the same request again gets the first request's message.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from patronlink.domain.errors import ValidationError

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255


def _refuse(reason: str) -> ValidationError:
    return ValidationError(f"the {HEADER} header {reason}", field=HEADER)


def parse_key(raw: str) -> str:
    """The key a header value carries: an sf-string (quoted, with \\\\ and \\" escapes) or the
    bare key. ``ValidationError`` for anything else."""
    value = raw.strip(" \t")
    if value.startswith('"'):
        value = _unquote(value)
    elif '"' in value or "\\" in value:
        raise _refuse("is neither a quoted string nor a bare key")
    if not value:
        raise _refuse("is empty")
    if len(value) > MAX_KEY_LENGTH:
        raise _refuse(f"is longer than {MAX_KEY_LENGTH} characters")
    if any(not (" " <= ch <= "~") for ch in value):
        raise _refuse("may hold only visible ASCII characters and spaces")
    return value


def _unquote(value: str) -> str:
    out: list[str] = []
    chars = iter(value[1:])
    for ch in chars:
        if ch == "\\":
            escaped = next(chars, "")
            if escaped not in ('"', "\\"):
                raise _refuse('has a backslash that escapes neither \\ nor "')
            out.append(escaped)
        elif ch == '"':
            if next(chars, None) is not None:
                raise _refuse("has characters after its closing quote")
            return "".join(out)
        else:
            out.append(ch)
    raise _refuse("has no closing quote")


def fingerprint(request: Mapping[str, Any]) -> str:
    """SHA-256 of the request as parsed (keys sorted): the same request sent again with other
    spacing or key order is the same request."""
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
