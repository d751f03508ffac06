"""How long-running core work reports progress and is cancelled.

A task calls `progress(done, total)` between batches. The caller's callback updates a bar or a
signal and raises `Cancelled` when the user asked to stop, so cancellation always lands on a batch
boundary, after the last batch was committed.
"""
from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[int, int], None]


class Cancelled(Exception):
    """Raised by a progress callback to stop the task that called it."""


def no_progress(done: int, total: int) -> None:
    pass
