"""Running a coroutine to completion from a synchronous test.

Playwright's sync API keeps an event loop running in the main thread for the rest of the session
once a browser test has run, and ``asyncio.run`` refuses to start inside a running loop; a fresh
thread always has none.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()
