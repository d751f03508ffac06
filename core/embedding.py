"""Turning catalog images into feature vectors, in batches, resumably.

Only items without a vector for the chosen backbone are embedded, and each batch is committed on
its own, so a cancelled or killed run picks up where it stopped. Running out of GPU memory halves
the batch, then moves to the CPU, and says so in the report instead of ending the run. Images are
decoded to uint8 in threads, up to 16 batches ahead of the backbone (core/model_input.py; on CUDA,
JPEGs on the GPU: core/device_decode.py); normalisation happens on the device, where it is nearly free.
"""
from __future__ import annotations

import copy
import ctypes
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from itertools import chain, islice

import numpy as np
import torch
from PIL import Image

from protoshelf.core.backbones import (
    DEFAULT_BACKBONE, Backbone, packaged_preprocessing, resolve_device, shared_backbone,
)
from protoshelf.core.efficientnet_lite import EfficientNetLite, folded_for_inference
from protoshelf.core.model_input import CatalogImages, collate, stack_images, to_model_input
from protoshelf.core.progress import Progress, no_progress
from protoshelf.core.store import Store


@dataclass
class EmbedReport:
    backbone: str
    device: str
    embedded: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
_MALLOC_SETTINGS = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_MAX_", "MALLOC_MMAP_THRESHOLD_", "GLIBC_TUNABLES")


def _glibc() -> ctypes.CDLL | None:
    try:
        os.confstr("CS_GNU_LIBC_VERSION")
    except (AttributeError, ValueError, OSError):
        return None
    return ctypes.CDLL(None)


def keep_freed_memory() -> None:
    """Let glibc keep the memory of freed activations for the next batch.

    By default glibc maps each large block (an activation of a 16-image batch is 25-77 MB) fresh
    and unmaps it when freed, so every batch faulted in its activations again, page by page: 5,000
    page faults per image, as much kernel time as the backbone's own arithmetic (2 CPUs: forward
    pass 104 -> 33 ms per image of wall time with this). The memory is handed back by
    `release_freed_memory` when embedding ends. A user's own malloc settings win.
    """
    libc = _glibc()
    if libc is not None and not any(name in os.environ for name in _MALLOC_SETTINGS):
        libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30)
        libc.mallopt(_M_MMAP_MAX, 0)


def release_freed_memory() -> None:
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


class FeatureExtractor:
    """A backbone on a device, taking uint8 image batches and returning float32 features.

    The built-in EfficientNet-Lites run as a copy with their batch norms folded into the
    convolutions (core/efficientnet_lite.py): a third more images/s, the same features within 2e-5."""

    def __init__(self, backbone: Backbone, device: torch.device):
        keep_freed_memory()
        self.backbone = backbone.to(device).to(memory_format=torch.channels_last)
        self.device = device
        trunk = getattr(self.backbone, "trunk", None)
        self.features = folded_for_inference(trunk) if isinstance(trunk, EfficientNetLite) else self.backbone.features
        prep = backbone.preprocessing
        self.mean = torch.tensor(prep.mean, device=device).view(1, 3, 1, 1) * 255
        self.std = torch.tensor(prep.std, device=device).view(1, 3, 1, 1) * 255

    @torch.inference_mode()
    def __call__(self, images_uint8: torch.Tensor) -> np.ndarray:
        x = images_uint8.to(self.device, non_blocking=True).float()
        x = ((x - self.mean) / self.std).contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.device.type == "cuda"):
            features = self.features(x)
        return features.float().cpu().numpy()

    def embed_images(self, images: list[Image.Image]) -> np.ndarray:
        prep = self.backbone.preprocessing
        return self(stack_images([to_model_input(im, prep) for im in images]))

    def on_device(self, device: torch.device) -> "FeatureExtractor":
        """An extractor over a copy of the backbone on `device`; this one stays as it is (the app
        keeps it for the next job)."""
        return FeatureExtractor(_copied_to(self.backbone, device), device)


def _copied_to(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """A deep copy whose tensors are copied straight to `device`: nothing is allocated where the
    module is, which matters when that is a GPU out of memory."""
    memo = {}
    for tensor in chain(module.parameters(), module.buffers()):
        moved = tensor.detach().to(device)
        if isinstance(tensor, torch.nn.Parameter):
            moved = torch.nn.Parameter(moved, tensor.requires_grad)
        memo[id(tensor)] = moved
    return copy.deepcopy(module, memo)


def pretrained_extractor(backbone_name: str, device: torch.device) -> FeatureExtractor:
    """An extractor over the shared pretrained backbone; on another device than the CPU over a copy,
    since moving the shared one would take it away from the concept head."""
    backbone = shared_backbone(backbone_name)
    return FeatureExtractor(backbone if device.type == "cpu" else _copied_to(backbone, device), device)


class _MemoryFallback:
    """An extractor that answers out-of-memory by halving its batch and, below one image, moving
    to the CPU, noting each step in the report."""

    def __init__(self, extractor: FeatureExtractor, batch_size: int, report: EmbedReport):
        self.extractor = extractor
        self.batch_size = batch_size
        self.report = report

    def __call__(self, images: torch.Tensor) -> np.ndarray:
        while True:
            try:
                return np.concatenate([self.extractor(part) for part in images.split(self.batch_size)])
            except torch.OutOfMemoryError:
                if self.extractor.device.type == "cpu":
                    raise
            self._back_off()  # outside the except block, so the failed batch's tensors are freed

    def _back_off(self) -> None:
        if self.extractor.device.type == "cuda":
            torch.cuda.empty_cache()
        if self.batch_size > 1:
            self.batch_size //= 2
            self.report.notes.append(f"Out of GPU memory: batch size lowered to {self.batch_size}.")
        else:
            self.extractor = self.extractor.on_device(torch.device("cpu"))
            self.report.device = "cpu"
            self.report.notes.append("Out of GPU memory even one image at a time: continuing on the CPU.")


CPU_BATCH, GPU_BATCH = 16, 64
"""On a CPU, batches past about 16 images spill the backbone's activations out of cache:
EfficientNet-Lite0 on 2 cores ran 72 images/s at 16, 55 at 32 and 41 at 64."""


def default_batch_size(device: torch.device) -> int:
    return CPU_BATCH if device.type == "cpu" else GPU_BATCH


def default_workers() -> int:
    return max(0, min(8, (os.cpu_count() or 1) - 1))


DECODE_AHEAD, GPU_READ_AHEAD = 16, 8
"""Batches decoded ahead of the backbone while it runs, all threads together: 40 MB at 224 px
and 16 images a batch. For a GPU the threads only read files, 64 a batch, into page-locked
memory: 8 batches of 3 MB phone photos already hold 1.5 GB of it."""


def decoded_batches(dataset: Sequence, collate: Callable, batch_size: int, threads: int,
                    ahead: int = DECODE_AHEAD) -> Iterator:
    """`collate`d batches of `dataset` in order, decoded by `threads` threads while the backbone
    runs (0: in the caller's thread, when asked for). The first `ahead` batches start at once, so
    they are ready when the backbone is built; after that, once half of them have been taken, as
    many start again as make `ahead`. Closing the iterator drops the batches not begun.

    Threads, not DataLoader worker processes: Pillow, libspng and numpy let go of the GIL while
    they work, and worker processes cost more than their decoding: each run forked a process the
    size of the app, and each batch crossed over through shared memory. On 2 cores, end to end
    went from 74% to 94% of the backbone's own throughput for 1000 px JPEGs, and from 74% to 85%
    for 300 px PNGs (median of 5 alternating rounds of 128 images).

    Refilling in runs, not a batch for each batch taken: the backbone's OpenMP threads wait at
    every layer for one whose core a decoding thread took, and a decoding thread that wakes for
    each batch takes a core in many short turns (benchmarks/decode_interference.py). On 2 cores,
    512 images, 5 alternating rounds: 141 against 137 images/s for PNG cut-outs, 129 against 125
    for 1000 px JPEGs."""
    spans = (range(start, min(start + batch_size, len(dataset))) for start in range(0, len(dataset), batch_size))

    def decode(span: range):
        return collate([dataset[index] for index in span])

    if threads == 0:
        return (decode(span) for span in spans)
    batches = _decoded_ahead(decode, spans, threads, ahead)
    next(batches)  # starts the threads now; also, only a started generator runs its `finally` on close
    return batches


def _decoded_ahead(decode: Callable, spans: Iterator[range], threads: int, ahead: int) -> Iterator:
    pool = ThreadPoolExecutor(threads, thread_name_prefix="protoshelf-decode")
    pending: deque[Future] = deque()
    try:
        pending.extend(pool.submit(decode, span) for span in islice(spans, ahead))
        yield None
        while pending:
            batch = pending.popleft()
            if len(pending) <= ahead // 2:
                pending.extend(pool.submit(decode, span) for span in islice(spans, ahead - len(pending)))
            yield batch.result()
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _batches(rows: list[tuple[int, str]], prep, batch_size: int, threads: int, on_gpu: bool) -> Iterator:
    if on_gpu:  # the threads only read JPEG files; the GPU decodes them
        from protoshelf.core import device_decode

        return decoded_batches(device_decode.JpegFiles(rows, prep), device_decode.collate, batch_size, threads,
                               ahead=GPU_READ_AHEAD)
    return decoded_batches(CatalogImages(rows, prep), collate, batch_size, threads)


def embed_catalog(
    store: Store,
    backbone_name: str = DEFAULT_BACKBONE,
    device: str = "auto",
    batch_size: int | None = None,
    workers: int | None = None,
    progress: Progress = no_progress,
    extractor: FeatureExtractor | None = None,
) -> EmbedReport:
    """Embed every item that has no vector for `backbone_name` yet.

    The decoding threads start before the backbone is built (about 0.2 s: its weights are read),
    so the first batches are ready when it is.
    """
    rows = store.items_without_embedding(backbone_name)
    target = extractor.device if extractor else resolve_device(device)
    batch_size = batch_size or default_batch_size(target)
    report = EmbedReport(backbone_name, str(target))
    if not rows:
        progress(0, 0)
        return report
    progress(0, len(rows))
    prep = extractor.backbone.preprocessing if extractor else packaged_preprocessing(backbone_name)
    if prep is None:  # a hub model: its preprocessing is known once it is built
        extractor = pretrained_extractor(backbone_name, target)
        prep = extractor.backbone.preprocessing
    on_gpu = target.type == "cuda" and torch.cuda.is_available()
    threads = default_workers() if workers is None else workers
    with closing(_batches(rows, prep, batch_size, threads, on_gpu)) as batches:
        if extractor is None:
            extractor = pretrained_extractor(backbone_name, target)
        features = _MemoryFallback(extractor, batch_size, report)
        done = 0
        if on_gpu:
            from protoshelf.core import device_decode
        for ids, tensors, failed in batches:
            if on_gpu:
                ids, tensors, failed = device_decode.to_device_batch(ids, tensors, failed, prep, extractor.device)
            report.failed.extend(failed)
            if ids:
                store.save_embeddings(backbone_name, ids, features(tensors))
                report.embedded += len(ids)
            done += len(ids) + len(failed)
            progress(done, len(rows))
    release_freed_memory()
    return report
