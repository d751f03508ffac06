"""Turning catalog images into feature vectors, in batches, resumably.

Only items without a vector for the chosen backbone are embedded, and each batch is committed on
its own, so a cancelled or killed run picks up where it stopped. Running out of GPU memory halves
the batch, then moves to the CPU, and says so in the report instead of ending the run. Images are
decoded to uint8 in DataLoader workers (on CUDA, JPEGs on the GPU: core/device_decode.py);
normalisation happens on the device, where it is nearly free.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from core.backbones import DEFAULT_BACKBONE, Backbone, Preprocessing, load_backbone, resolve_device
from core.images import ImageError, open_image
from core.progress import Progress, no_progress
from core.store import Store


@dataclass
class EmbedReport:
    backbone: str
    device: str
    embedded: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def to_model_input(image: Image.Image, prep: Preprocessing) -> torch.Tensor:
    """The centre crop of "resize the short side, then crop", as a uint8 CHW tensor.

    The crop's box is resampled straight to the model's size: one pass over only the pixels kept.
    """
    side = min(image.size) * prep.size / prep.resize
    left, top = (image.width - side) / 2, (image.height - side) / 2
    cropped = image.resize(
        (prep.size, prep.size), Image.Resampling.BILINEAR, box=(left, top, left + side, top + side)
    )
    return torch.from_numpy(np.asarray(cropped, dtype=np.uint8).copy()).permute(2, 0, 1)


class CatalogImages(Dataset):
    """Catalog rows decoded by Pillow to model input; a file that fails comes back with its reason."""

    def __init__(self, rows: list[tuple[int, str]], prep: Preprocessing):
        self.rows = rows
        self.prep = prep

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int):
        item_id, path = self.rows[index]
        try:
            image = open_image(Path(path), min_side=self.prep.resize)
        except (ImageError, OSError) as exc:
            return item_id, path, None, str(exc)
        return item_id, path, to_model_input(image, self.prep), ""


def stack_images(images: list[torch.Tensor]) -> torch.Tensor:
    """A uint8 NCHW batch laid out channels_last, as the backbone runs: the CHW tensors of
    `to_model_input` are views of HWC pixels, so this is one plain copy and the float batch needs
    no second one (converting a contiguous float batch cost 24 ms per 32 images)."""
    return torch.stack([image.permute(1, 2, 0) for image in images]).permute(0, 3, 1, 2)


def _collate(samples):
    good = [s for s in samples if s[2] is not None]
    ids = [s[0] for s in good]
    tensors = stack_images([s[2] for s in good]) if good else None
    failed = [(s[1], s[3]) for s in samples if s[2] is None]
    return ids, tensors, failed


class FeatureExtractor:
    """A backbone on a device, taking uint8 image batches and returning float32 features."""

    def __init__(self, backbone: Backbone, device: torch.device):
        self.backbone = backbone.to(device).to(memory_format=torch.channels_last)
        self.device = device
        prep = backbone.preprocessing
        self.mean = torch.tensor(prep.mean, device=device).view(1, 3, 1, 1) * 255
        self.std = torch.tensor(prep.std, device=device).view(1, 3, 1, 1) * 255

    @torch.inference_mode()
    def __call__(self, images_uint8: torch.Tensor) -> np.ndarray:
        x = images_uint8.to(self.device, non_blocking=True).float()
        x = ((x - self.mean) / self.std).contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.device.type == "cuda"):
            features = self.backbone.features(x)
        return features.float().cpu().numpy()

    def embed_images(self, images: list[Image.Image]) -> np.ndarray:
        prep = self.backbone.preprocessing
        return self(stack_images([to_model_input(im, prep) for im in images]))

    def on_device(self, device: torch.device) -> "FeatureExtractor":
        return FeatureExtractor(self.backbone, device)


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


def embed_catalog(
    store: Store,
    backbone_name: str = DEFAULT_BACKBONE,
    device: str = "auto",
    batch_size: int | None = None,
    workers: int | None = None,
    progress: Progress = no_progress,
    extractor: FeatureExtractor | None = None,
) -> EmbedReport:
    """Embed every item that has no vector for `backbone_name` yet."""
    rows = store.items_without_embedding(backbone_name)
    if extractor is None:
        extractor = FeatureExtractor(load_backbone(backbone_name), resolve_device(device))
    batch_size = batch_size or default_batch_size(extractor.device)
    report = EmbedReport(backbone_name, str(extractor.device))
    if not rows:
        progress(0, 0)
        return report
    workers = default_workers() if workers is None else workers
    prep = extractor.backbone.preprocessing
    on_gpu = extractor.device.type == "cuda" and torch.cuda.is_available()
    if on_gpu:  # workers only read JPEG files; the GPU decodes them
        from core import device_decode
    loader = DataLoader(
        device_decode.JpegFiles(rows, prep) if on_gpu else CatalogImages(rows, prep),
        batch_size=batch_size,
        num_workers=min(workers, max(0, len(rows) // batch_size)),
        collate_fn=device_decode.collate if on_gpu else _collate,
        pin_memory=on_gpu,
    )
    features = _MemoryFallback(extractor, batch_size, report)
    done = 0
    progress(0, len(rows))
    for ids, tensors, failed in loader:
        if on_gpu:
            ids, tensors, failed = device_decode.to_device_batch(ids, tensors, failed, prep, extractor.device)
        report.failed.extend(failed)
        if ids:
            store.save_embeddings(backbone_name, ids, features(tensors))
            report.embedded += len(ids)
        done += len(ids) + len(failed)
        progress(done, len(rows))
    return report
