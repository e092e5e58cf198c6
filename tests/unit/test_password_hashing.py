"""The production hasher: argon2id at the library's recommended parameters.

The suite hashes at the cheapest cost (tests/conftest.py, ``cheap_argon2``); this test, marked
``real_argon2``, holds what the server itself uses.
"""

from __future__ import annotations

import pytest
from argon2 import Type, extract_parameters, profiles

from patronlink.services import secrets

pytestmark = pytest.mark.real_argon2


def test_stored_hashes_carry_the_recommended_parameters() -> None:
    stored = secrets.hash_password("1234")
    used = extract_parameters(stored)
    recommended = profiles.RFC_9106_LOW_MEMORY
    assert used.type is Type.ID
    assert (used.time_cost, used.memory_cost, used.parallelism) == (
        recommended.time_cost,
        recommended.memory_cost,
        recommended.parallelism,
    )
    assert secrets.verify_password(stored, "1234")
    assert not secrets.verify_password(stored, "1235")


def test_a_missing_user_costs_a_real_check() -> None:
    # The dummy hash that a missing user is checked against is made at the same cost.
    assert not secrets.verify_password(None, "1234")
    dummy = extract_parameters(secrets._dummy_hash())
    assert dummy.memory_cost == profiles.RFC_9106_LOW_MEMORY.memory_cost
