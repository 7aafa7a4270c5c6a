"""Background work: periodic tasks supervised for the life of the portal.

A failing run is logged and retried at the next tick; nothing a job does may assume it is the
only process (claims are made with conditional UPDATEs), so N portals can all run the same jobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

log = logging.getLogger("portal.jobs")

JobFn = Callable[[], Awaitable[object]]


@dataclass
class PeriodicJob:
    name: str
    interval: float
    run: JobFn


class JobRunner:
    def __init__(self) -> None:
        self._jobs: list[PeriodicJob] = []
        self._tasks: list[asyncio.Task[None]] = []

    def every(self, seconds: float, name: str, run: JobFn) -> None:
        self._jobs.append(PeriodicJob(name, seconds, run))

    @property
    def jobs(self) -> list[PeriodicJob]:
        return list(self._jobs)

    async def start(self) -> None:
        for job in self._jobs:
            self._tasks.append(asyncio.create_task(self._loop(job), name=f"job:{job.name}"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    async def _loop(self, job: PeriodicJob) -> None:
        while True:
            await asyncio.sleep(job.interval)
            try:
                await job.run()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("job %s failed", job.name)
