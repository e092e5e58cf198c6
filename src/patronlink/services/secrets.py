"""Passwords (argon2id) and ``${VAR}`` references to secrets held in the environment."""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import re
import secrets
import threading
from collections.abc import Mapping
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from patronlink.domain.errors import ConfigError

_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters

# Each argon2 hash or check takes 64 MiB and a core for about 0.1 s. Requests run in a thread
# pool of up to 40 threads, so a burst of PIN registrations once took the server to 870 MB
# (the soak test): at most this many run at once, the rest wait their turn. More than the
# machine's cores would not make them faster.
ARGON2_AT_ONCE = max(2, os.cpu_count() or 2)
_argon2_slots = threading.BoundedSemaphore(ARGON2_AT_ONCE)


@functools.cache
def _dummy_hash() -> str:
    # A valid hash to verify against when the user does not exist, so that the time taken does
    # not tell an attacker which user names exist.
    return hash_password(secrets.token_hex(16))


def hash_password(password: str) -> str:
    with _argon2_slots:
        return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Constant-time check; a missing user costs the same as a wrong password."""
    reference = password_hash or _dummy_hash()
    try:
        with _argon2_slots:
            return _hasher.verify(reference, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def is_reference(value: str) -> bool:
    return bool(_REFERENCE.search(value))


def missing_variables(node: Any, environ: Mapping[str, str]) -> set[str]:
    """Every ``${VAR}`` in ``node`` (strings, nested dicts and lists) that ``environ`` lacks."""
    if isinstance(node, str):
        return {m.group(1) for m in _REFERENCE.finditer(node) if m.group(1) not in environ}
    if isinstance(node, dict):
        return set().union(*(missing_variables(v, environ) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(missing_variables(v, environ) for v in node))
    return set()


def resolve(value: str, environ: Mapping[str, str]) -> str:
    """Replace every ``${VAR}`` with the environment's value; a missing variable is an error."""

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in environ:
            raise ConfigError(f"environment variable {name} is not set")
        return environ[name]

    return _REFERENCE.sub(substitute, value)


def new_api_token() -> tuple[str, str]:
    """A staff API token and the hash we store (SHA-256 suffices for 256 random bits)."""
    token = "plk_" + secrets.token_urlsafe(32)
    return token, hash_api_token(token)


def hash_api_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def constant_time_equals(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


class VerifiedPasswords:
    """Remembers recent successful argon2 checks, so that a provider calling many times a second
    does not pay ~50 ms of argon2 on every request.

    Keys are an HMAC of the password under a random per-process key, together with the stored
    hash: changing the password in the database invalidates the entry. Nothing leaves memory.
    """

    def __init__(self, size: int = 1024) -> None:
        self._key = secrets.token_bytes(32)
        self._size = size
        self._seen: dict[tuple[str, str], None] = {}

    def _key_for(self, password_hash: str, password: str) -> tuple[str, str]:
        mac = hmac.new(self._key, password.encode("utf-8", "surrogatepass"), "sha256").hexdigest()
        return password_hash, mac

    def remembered(self, password_hash: str | None, password: str) -> bool:
        """Whether this password was verified against this very hash recently (no argon2)."""
        return password_hash is not None and self._key_for(password_hash, password) in self._seen

    def verify(self, password_hash: str | None, password: str) -> bool:
        if password_hash is None:
            verify_password(None, password)  # same cost as a wrong password
            return False
        key = self._key_for(password_hash, password)
        if key in self._seen:
            return True
        if not verify_password(password_hash, password):
            return False
        if len(self._seen) >= self._size:
            self._seen.pop(next(iter(self._seen)))
        self._seen[key] = None
        return True
