"""Helpers for tests of fixed-window rate limits."""

from __future__ import annotations

import time


def fresh_window(period: float, need: float) -> None:
    """Wait, if needed, so that at least ``need`` seconds of the current ``period``-second window remain.

    The limiter's windows are aligned to multiples of the period since the epoch; a burst that
    straddled two windows would be counted in both halves and make a limit test flaky.
    """
    remaining = period - (time.time() % period)
    if remaining < need:
        time.sleep(remaining + 0.05)
