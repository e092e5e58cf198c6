"""argon2 takes 64 MiB per hash: the server runs only a few at once, whatever the thread pool."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from argon2 import PasswordHasher

from patronlink.services import secrets


class CountingHasher:
    """The real hasher, counting how many of its calls run at the same time."""

    def __init__(self) -> None:
        self._real = PasswordHasher()
        self._lock = threading.Lock()
        self.running = 0
        self.most = 0

    def _count(self, method: str, *args: Any) -> Any:
        with self._lock:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            return getattr(self._real, method)(*args)
        finally:
            with self._lock:
                self.running -= 1

    def hash(self, password: str) -> str:
        return str(self._count("hash", password))

    def verify(self, reference: str, password: str) -> bool:
        return bool(self._count("verify", reference, password))


@pytest.mark.real_argon2
def test_no_more_than_the_bound_hash_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    counting = CountingHasher()
    monkeypatch.setattr(secrets, "_hasher", counting)
    stored = secrets.hash_password("1234")
    with ThreadPoolExecutor(max_workers=16) as pool:
        hashes = list(pool.map(secrets.hash_password, [f"pin{i}" for i in range(16)]))
        checks = list(pool.map(lambda p: secrets.verify_password(stored, p), ["1234", "0000"] * 8))
    assert len(set(hashes)) == 16
    assert checks == [True, False] * 8  # still the right answers
    assert 1 < counting.most <= secrets.ARGON2_AT_ONCE
