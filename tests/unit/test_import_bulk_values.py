"""Small pieces of the bulk import path that must agree exactly with what they replace."""

from __future__ import annotations

import json

import pytest

from patronlink.services.import_sync import _Keys
from patronlink.storage.imports import _json_extra, _json_lines


@pytest.mark.parametrize(
    "lines", [(), ("Vejen 1",), ("Vejen 1", "", "Horsens"), ('Ærø "q" \\ \n\t\x01 😀',)]
)
def test_address_lines_are_the_json_of_json_dumps(lines: tuple[str, ...]) -> None:
    assert _json_lines(lines) == json.dumps(list(lines))


@pytest.mark.parametrize(
    "extra", [{}, {"username": "u1"}, {"username": 'ø"', "patron_group": "x"}, {"n": 1}]
)
def test_extra_is_the_json_of_json_dumps(extra: dict[str, object]) -> None:
    assert _json_extra(extra) == json.dumps(extra)


def test_keys_hold_exactly_the_keys_added() -> None:
    keys = _Keys()
    added = {1, 7, 8, 9, 1000, 65_536, 1_000_003}
    keys.update(added)
    keys.add(0)
    added.add(0)
    assert {k for k in range(1_000_100) if k in keys} == added
    assert 10**9 not in keys
