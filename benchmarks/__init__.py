"""Benchmarks: each module prints its figures readably, or as one JSON line with --json."""
from __future__ import annotations

import json
from collections.abc import Callable


def report(figures: dict, as_json: bool, readable: Callable[[dict], None]) -> int:
    """How every benchmark's main ends: one JSON line (what `python -m benchmarks` collects) or text."""
    if as_json:
        print(json.dumps(figures))
    else:
        readable(figures)
    return 0
