"""The cyclic garbage collector and the process's long runs (imports, the dispatcher)."""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator


class _Spared:
    """How many runs spare the collector now (see ``spare_collector``)."""

    runs = 0
    refreeze = False  # the process had set its start-up heap aside before (``serve``)
    lock = threading.Lock()


@contextlib.contextmanager
def spare_collector() -> Iterator[None]:
    """Keep the cyclic garbage collector off the objects the process had before the run.

    A run (a patron import, the dispatcher) makes millions of short-lived objects, and every few
    of its collections is a full one, which would walk every object of the process (some 120,000,
    a tenth of a second each time: 0.6-0.9 s of 100,000 created patrons, 0.3-0.4 s of 20,000
    texts dispatched). ``gc.freeze`` sets those aside until the last of the runs that overlap
    ends; then they are collected as before, so nothing is kept for good. In a
    process that had frozen its start-up heap already (``serve`` does, for its request latency),
    what survives a full collection after the run is frozen again, as ``serve`` left it.
    """
    with _Spared.lock:
        if _Spared.runs == 0:
            _Spared.refreeze = gc.get_freeze_count() > 0
            gc.freeze()
        _Spared.runs += 1
    try:
        yield
    finally:
        with _Spared.lock:
            _Spared.runs -= 1
            if _Spared.runs == 0:
                gc.unfreeze()
                if _Spared.refreeze:
                    gc.collect()
                    gc.freeze()
