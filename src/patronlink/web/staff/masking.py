"""Configuration shown to staff with every secret hidden.

A value is secret when its key names one (password, secret, token, key, ...). A ``${VAR}``
reference is shown as the variable's name, which is not secret and tells an operator where the
value comes from; a value stored as it is shows only that it is set. Credentials in a URL's
user-info part are hidden as well.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

_SECRET_KEY = re.compile(
    r"pass|secret|token|api_?key|private|credential|(^|_)pin($|_)", re.IGNORECASE
)
_REFERENCE = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
HIDDEN = "••••••••"


@dataclass(frozen=True)
class Shown:
    """One setting as the page shows it: a plain value, or a secret with where it comes from."""

    key: str
    value: str
    secret: bool = False
    from_env: str | None = None  # the ${VAR} name of a secret read from the environment


def _hide_url_credentials(value: str) -> str:
    try:
        parts = urlsplit(value)
    except ValueError:
        return value
    if parts.password is None and parts.username is None:
        return value
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{HIDDEN}@{host}"))


def _shown(key: str, value: Any) -> list[Shown]:
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in _shown(f"{key}.{k}", v)]
    if _SECRET_KEY.search(key.rsplit(".", 1)[-1]) and value not in (None, ""):
        ref = _REFERENCE.match(str(value))
        return [Shown(key, HIDDEN, secret=True, from_env=ref.group(1) if ref else None)]
    if isinstance(value, list):
        text = ", ".join(str(v) for v in value)
    else:
        text = "" if value is None else str(value)
    if isinstance(value, str) and "://" in value:
        text = _hide_url_credentials(value)
    return [Shown(key, text)]


def masked_settings(settings: dict[str, Any]) -> dict[str, list[Shown]]:
    """Each top-level section (sms, renewal, ...) as a list of shown settings."""
    sections: dict[str, list[Shown]] = {}
    for section, value in settings.items():
        if isinstance(value, dict):
            sections[section] = [s for k, v in value.items() for s in _shown(k, v)]
        else:
            sections.setdefault("general", []).extend(_shown(section, value))
    return sections
