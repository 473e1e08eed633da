"""Work that must finish even when the RPC that started it is cancelled."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

logger = logging.getLogger(__name__)


class DetachedTasks:
    """Runs coroutines as tasks no RPC owns, keeps them referenced until they end, and lets
    a stopping server wait for them."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        # The task copies the current context: the caller's identity and deadline go along.
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def wait(self) -> None:
        """Until every task started so far has ended."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    async def close(self, timeout_seconds: float) -> None:
        """Give running tasks `timeout_seconds` to end, then cancel the rest."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout_seconds)
        remaining = set(self._tasks)
        if remaining:
            logger.warning("cancelling unfinished replies", extra={"count": len(remaining)})
            for task in remaining:
                task.cancel()
            await asyncio.gather(*remaining, return_exceptions=True)
