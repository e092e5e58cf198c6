"""The worker's scheduler for a moment: its first round (imports due, retention, reservations)."""

from __future__ import annotations

import asyncio

from patronlink.services.clock import Clock
from patronlink.storage.database import Database
from patronlink.worker.runner import run_scheduler


def one_scheduler_round(db: Database, clock: Clock, seconds: float = 0.5) -> None:
    """Run the scheduler for ``seconds`` (its first round applies the hourly work), then stop it."""

    async def run() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(run_scheduler(db, clock, stop, 0.05))
        await asyncio.sleep(seconds)
        stop.set()
        await task

    asyncio.run(run())
