"""Turning catalog images into feature vectors, in batches, resumably.

Only items without a vector for the chosen backbone are embedded, and each batch is committed on
its own, so a cancelled or killed run picks up where it stopped. Images are decoded to uint8 in
DataLoader workers; normalisation happens on the device, where it is nearly free.
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


def to_model_input(image: Image.Image, prep: Preprocessing) -> torch.Tensor:
    """Resize the short side, centre-crop, and return a uint8 CHW tensor."""
    scale = prep.resize / min(image.size)
    resized = image.resize(
        (max(prep.size, round(image.width * scale)), max(prep.size, round(image.height * scale))),
        Image.Resampling.BILINEAR,
    )
    left = (resized.width - prep.size) // 2
    top = (resized.height - prep.size) // 2
    cropped = resized.crop((left, top, left + prep.size, top + prep.size))
    return torch.from_numpy(np.asarray(cropped, dtype=np.uint8).copy()).permute(2, 0, 1)


class _CatalogImages(Dataset):
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


def _collate(samples):
    good = [s for s in samples if s[2] is not None]
    ids = [s[0] for s in good]
    tensors = torch.stack([s[2] for s in good]) if good else None
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
        return self(torch.stack([to_model_input(im, prep) for im in images]))


def default_workers() -> int:
    return max(0, min(8, (os.cpu_count() or 1) - 1))


def embed_catalog(
    store: Store,
    backbone_name: str = DEFAULT_BACKBONE,
    device: str = "auto",
    batch_size: int = 64,
    workers: int | None = None,
    progress: Progress = no_progress,
    extractor: FeatureExtractor | None = None,
) -> EmbedReport:
    """Embed every item that has no vector for `backbone_name` yet."""
    rows = store.items_without_embedding(backbone_name)
    if extractor is None:
        extractor = FeatureExtractor(load_backbone(backbone_name), resolve_device(device))
    report = EmbedReport(backbone_name, str(extractor.device))
    if not rows:
        progress(0, 0)
        return report
    workers = default_workers() if workers is None else workers
    loader = DataLoader(
        _CatalogImages(rows, extractor.backbone.preprocessing),
        batch_size=batch_size,
        num_workers=min(workers, max(0, len(rows) // batch_size)),
        collate_fn=_collate,
        pin_memory=extractor.device.type == "cuda",
    )
    done = 0
    progress(0, len(rows))
    for ids, tensors, failed in loader:
        report.failed.extend(failed)
        if ids:
            store.save_embeddings(backbone_name, ids, extractor(tensors))
            report.embedded += len(ids)
        done += len(ids) + len(failed)
        progress(done, len(rows))
    return report
