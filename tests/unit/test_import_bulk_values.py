"""Small pieces of the bulk import path that must agree exactly with what they replace."""

from __future__ import annotations

import gc
import hashlib
import json

import pytest

from patronlink.services.collector import spare_collector
from patronlink.services.import_sync import _Keys
from patronlink.storage.imports import Digests, _json_extra, _json_lines


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


def _digest(i: int) -> str:
    return hashlib.blake2b(str(i).encode(), digest_size=16).hexdigest()


def test_digests_find_exactly_the_digest_with_its_external_id() -> None:
    rows = sorted((_digest(i), f"ext-{i}", i) for i in range(1000))
    twin = rows[500][0]  # a second patron with the same digest, another external id
    rows.insert(501, (twin, "ext-twin", 5000))
    digests = Digests()
    digests.load(rows)
    assert len(digests) == 1001
    for digest, external_id, pk in rows:
        assert digests.find(digest, external_id) == pk
    assert digests.find(_digest(3), "ext-4") is None  # its external id changed by hand
    assert digests.find(_digest(3000), "ext-3000") is None
    assert digests.find("not hex", "ext-3") is None
    assert digests.find(_digest(3)[:31], "ext-3") is None
    assert Digests().find(_digest(3), "ext-3") is None


def test_digests_leave_out_what_this_version_did_not_write() -> None:
    digests = Digests()
    ordered = sorted(_digest(i) for i in range(4))
    digests.load(
        [
            (ordered[1], "ext-1", 1),
            (ordered[0], "ext-0", 0),  # out of order: left to the lookup by external id
            (ordered[2].upper(), "ext-2", 2),  # not as stored by this version
            ("0" * 31, "ext-short", 5),
            ("z" * 32, "ext-z", 6),
            (ordered[3], "ext-3", 3),
        ]
    )
    assert len(digests) == 2
    assert digests.find(ordered[1], "ext-1") == 1
    assert digests.find(ordered[3], "ext-3") == 3
    assert digests.find(ordered[0], "ext-0") is None
    assert digests.find(ordered[2], "ext-2") is None


def test_the_collector_is_spared_until_the_last_overlapping_run_ends() -> None:
    if gc.get_freeze_count():
        pytest.skip("an import runs in this process")
    with spare_collector():
        assert gc.get_freeze_count() > 0
        with spare_collector():
            pass
        assert gc.get_freeze_count() > 0  # another run still goes on
        with pytest.raises(RuntimeError), spare_collector():
            raise RuntimeError
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0


def test_a_process_that_froze_its_heap_keeps_it_frozen_after_a_run() -> None:
    if gc.get_freeze_count():
        pytest.skip("an import runs in this process")
    kept = [object() for _ in range(10)]  # stands for serve's start-up heap
    gc.freeze()  # as `serve` does at start
    try:
        with spare_collector():
            made_during_the_run = [[n] for n in range(1000)]
        # Frozen again (the start-up heap and what the run left alive), not left to the
        # collector: without it every full collection in `serve` walks the whole heap again.
        assert gc.get_freeze_count() > len(made_during_the_run) + len(kept)
    finally:
        gc.unfreeze()
    assert gc.get_freeze_count() == 0
