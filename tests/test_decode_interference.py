"""The benchmark that prices decoding beside the backbone runs, and its arithmetic holds."""
from __future__ import annotations

import json
import sys

import pytest

from benchmarks import decode_interference
from benchmarks.decode_interference import share_allowed


def test_decoding_that_costs_nothing_or_its_own_time_twice_over():
    assert share_allowed(forward_ms=90, decode_cpu_ms=30, cost=0) == 1
    assert share_allowed(forward_ms=90, decode_cpu_ms=30, cost=0.5) == 90 / 105
    assert share_allowed(forward_ms=90, decode_cpu_ms=30, cost=1) == 0.75


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads another thread's CPU clock (Linux)")
def test_each_setting_is_timed_beside_the_backbone(capsys):
    assert decode_interference.main(["--kinds", "png", "--batches", "1", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)["png"]
    assert set(figures["beside"]) == {
        "decoding flat out", "decoding a third of the time, a batch a turn", "decoding a third of the time, a picture a turn",
        "hashing flat out, no GIL", "one after the other"}
    assert figures["forward_alone_ms"] > 0 and figures["decode_cpu_ms_per_batch"] > 0
    flat_out = figures["beside"]["decoding flat out"]
    assert flat_out["other_cpu_ms_per_batch"] > 0
    assert 0 < figures["share_with_perfect_sharing"] < 1
