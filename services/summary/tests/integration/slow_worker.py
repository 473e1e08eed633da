"""A summary worker process whose model takes SLOW_SUMMARY_SECONDS to write: started by the
tests that kill a worker in the middle of a job. Configured like the real worker, from
MEDSTATION_* variables; `python slow_worker.py`."""

from __future__ import annotations

import asyncio
import os
import signal

from medstation_llm.registry import ModelRegistry
from medstation_llm.types import Completion, PatientChart
from medstation_platform.settings import load_settings
from summary import bootstrap
from summary.settings import SummarySettings


class SlowSummarizer:
    def __init__(self, settings: SummarySettings, delay_seconds: float) -> None:
        self._registry = ModelRegistry(settings.llm)
        self._summarizer = self._registry.summarizer(
            settings.summary_provider, settings.summary_model
        )
        self._delay = delay_seconds

    @property
    def provider(self) -> str:
        return self._summarizer.provider

    @property
    def model(self) -> str:
        return self._summarizer.model

    async def summarize(self, chart: PatientChart, *, timeout_seconds: float) -> Completion:
        await asyncio.sleep(self._delay)
        return await self._summarizer.summarize(chart, timeout_seconds=timeout_seconds)

    async def aclose(self) -> None:
        await self._registry.aclose()


async def main() -> None:
    settings = load_settings(SummarySettings)
    summarizer = SlowSummarizer(settings, float(os.environ["SLOW_SUMMARY_SECONDS"]))
    process = await bootstrap.build_worker(settings, summarizer=summarizer)
    stopping = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    try:
        await process.worker.run(stopping)
    finally:
        await process.close()
        await summarizer.aclose()


if __name__ == "__main__":
    asyncio.run(main())
