"""What decoding beside the backbone costs it, on a CPU whose cores the backbone already uses.

End to end can reach forward-only only if the decoding's CPU time is paid for by cores the
backbone leaves idle. This times the backbone's forward pass on one in-memory batch alone, then
while one other thread is busy, and prints the cost: wall milliseconds the forward pass lost per
CPU millisecond the other thread got. With perfect sharing of n cores it is 1/n; it is more when
the backbone's OpenMP team waits at each layer for a thread whose core the decoder took.

- decoding flat out, and a third of the time in turns of a batch or of a picture: catalog
  pictures, as embedding decodes them;
- hashing flat out: SHA-256 in C without the GIL, the same CPU time, no Python: if it costs the
  same as decoding, the GIL is not what slows the backbone;
- one after the other: a batch decoded on all cores, then the forward pass (no overlap).

Each cost gives the share of forward-only that end to end can reach with it, forward ÷ (forward +
decoding CPU × cost), decoding CPU being this kind's, timed alone in one thread.

    python -m benchmarks.decode_interference [--kinds png jpeg] [--batches 20]
"""
from __future__ import annotations

import protoshelf.core  # noqa: F401  - first: it sets how OpenMP waits, which torch reads when it loads
import argparse
import hashlib
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from itertools import cycle
from pathlib import Path

import numpy as np
import torch

from benchmarks import report
from benchmarks.embedding_throughput import KINDS, write_photos
from protoshelf.core.backbones import load_backbone
from protoshelf.core.embedding import CPU_BATCH, FeatureExtractor
from protoshelf.core.model_input import CatalogImages, collate


def share_allowed(forward_ms: float, decode_cpu_ms: float, cost: float) -> float:
    """End to end ÷ forward-only when each CPU ms of decoding costs the forward pass `cost` ms."""
    return forward_ms / (forward_ms + decode_cpu_ms * cost)


class Busy:
    """A thread doing `work` over and over, busy `duty` of the time (it sleeps in between)."""

    def __init__(self, work: Callable[[], object], duty: float = 1.0):
        self.work, self.duty = work, duty
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            began = time.perf_counter()
            self.work()
            if self.duty < 1:
                time.sleep((time.perf_counter() - began) * (1 - self.duty) / self.duty)

    def cpu_s(self) -> float:
        """The CPU seconds the thread has had so far."""
        return time.clock_gettime(time.pthread_getcpuclockid(self.thread.ident))

    def __enter__(self) -> "Busy":
        self.thread.start()
        time.sleep(0.05)  # under way before the forward passes are timed
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop.set()
        self.thread.join()


def forward_ms(extractor: FeatureExtractor, batch: torch.Tensor, batches: int) -> float:
    """Median wall ms per forward pass."""
    times = []
    for _ in range(batches):
        began = time.perf_counter()
        extractor(batch)
        times.append((time.perf_counter() - began) * 1000)
    return float(np.median(times))


def run(kind: str = "png", batches: int = 20) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="protoshelf-interference-"))
    try:
        extractor = FeatureExtractor(load_backbone(), torch.device("cpu"))
        photos = write_photos(folder, CPU_BATCH, KINDS[kind][1], kind)
        dataset = CatalogImages([(i, str(p)) for i, p in enumerate(photos)], extractor.backbone.preprocessing)
        pictures = cycle(range(len(dataset)))
        decode_one = lambda: dataset[next(pictures)]  # noqa: E731
        decode_batch = lambda: [dataset[i] for i in range(len(dataset))]  # noqa: E731
        batch = collate(decode_batch())[1]  # also brings the files into the page cache
        started = time.thread_time()
        decode_batch()
        decode_cpu = (time.thread_time() - started) * 1000  # one batch, one thread
        for _ in range(3):
            extractor(batch)
        alone = forward_ms(extractor, batch, batches)
        block = bytes(1 << 20)
        busy = {
            "decoding flat out": Busy(decode_one),
            "decoding a third of the time, a batch a turn": Busy(decode_batch, duty=1 / 3),
            "decoding a third of the time, a picture a turn": Busy(decode_one, duty=1 / 3),
            "hashing flat out, no GIL": Busy(lambda: hashlib.sha256(block).digest()),
        }
        figures = {}
        for name, other in busy.items():
            with other:
                before = other.cpu_s()
                beside = forward_ms(extractor, batch, batches)
                other_ms_per_batch = (other.cpu_s() - before) * 1000 / batches
            cost = (beside - alone) / other_ms_per_batch
            figures[name] = {"forward_ms": round(beside, 1), "other_cpu_ms_per_batch": round(other_ms_per_batch, 1),
                             "cost": round(cost, 2), "share_allowed": round(share_allowed(alone, decode_cpu, cost), 3)}
        figures["one after the other"] = _one_after_the_other(extractor, dataset, alone, decode_cpu, batches)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    cores = torch.get_num_threads()
    return {"kind": kind, "batch": CPU_BATCH, "cpus": os.cpu_count(), "torch_threads": cores,
            "forward_alone_ms": round(alone, 1), "decode_cpu_ms_per_batch": round(decode_cpu, 1),
            "share_with_perfect_sharing": round(share_allowed(alone, decode_cpu, 1 / cores), 3),
            "beside": figures, "load_average": round(os.getloadavg()[0], 1)}


def _one_after_the_other(extractor, dataset, alone: float, decode_cpu: float, batches: int) -> dict:
    threads = torch.get_num_threads()
    shares = [range(start, len(dataset), threads) for start in range(threads)]
    with ThreadPoolExecutor(threads) as pool:
        times = []
        for _ in range(batches):
            began = time.perf_counter()
            parts = list(pool.map(lambda span: [dataset[i] for i in span], shares))
            extractor(collate([sample for part in parts for sample in part])[1])
            times.append((time.perf_counter() - began) * 1000)
    per_batch = float(np.median(times))
    cost = (per_batch - alone) / decode_cpu
    return {"batch_ms": round(per_batch, 1), "cost": round(cost, 2),
            "share_allowed": round(share_allowed(alone, decode_cpu, cost), 3)}


def print_all(figures: dict) -> None:
    for f in figures.values():
        print(f"{f['kind']}: batch of {f['batch']} on {f['cpus']} CPUs, {f['torch_threads']} torch threads, "
              f"load average {f['load_average']}")
        print(f"  forward alone {f['forward_alone_ms']} ms; decoding the batch {f['decode_cpu_ms_per_batch']} CPU ms "
              f"in one thread; with perfect sharing end to end could reach {f['share_with_perfect_sharing']:.0%}")
        for name, b in f["beside"].items():
            took = f"forward {b['forward_ms']} ms beside {b['other_cpu_ms_per_batch']} CPU ms of the other thread" \
                if "forward_ms" in b else f"decode on all cores then forward {b['batch_ms']} ms"
            print(f"  {name:47s} {took}: cost {b['cost']} ms per CPU ms -> {b['share_allowed']:.0%} of forward-only")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kinds", nargs="+", choices=sorted(KINDS), default=list(KINDS))
    parser.add_argument("--batches", type=int, default=20, help="forward passes timed per setting")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    return report({kind: run(kind, args.batches) for kind in args.kinds}, args.json, print_all)


if __name__ == "__main__":
    raise SystemExit(main())
