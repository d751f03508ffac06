"""Catalog images as the backbone's uint8 input, decoded by Pillow (CPU): one image, a dataset of
catalog rows, a batch.

Decoding is the part of embedding that competes with the backbone for the same cores, so it does
only what the pixels need: a JPEG is decoded at the smallest scale not below the resize size
(`open_image`'s draft), and the centre crop is resampled straight to the model's size in one pass.
No float conversion happens here; normalisation is done batch-wise where the model runs.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from protoshelf.core.backbones import Preprocessing
from protoshelf.core.images import ImageError, open_image


def to_model_input(image: Image.Image, prep: Preprocessing) -> torch.Tensor:
    """The centre crop of "resize the short side, then crop", as a uint8 CHW tensor (a view of
    HWC pixels).

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
    no second one (converting a contiguous float batch cost 24 ms per 32 images).

    In a DataLoader worker the batch is written straight into shared memory, as torch's own
    collate does, so sending it to the main process copies nothing more."""
    pixels = [image.permute(1, 2, 0) for image in images]
    out = None
    if torch.utils.data.get_worker_info() is not None:
        storage = pixels[0]._typed_storage()._new_shared(len(pixels) * pixels[0].numel())
        out = pixels[0].new(storage).resize_(len(pixels), *pixels[0].shape)
    return torch.stack(pixels, out=out).permute(0, 3, 1, 2)


def collate(samples):
    """(ids, uint8 batch or None, [(path, reason)]) of dataset samples."""
    good = [s for s in samples if s[2] is not None]
    ids = [s[0] for s in good]
    tensors = stack_images([s[2] for s in good]) if good else None
    failed = [(s[1], s[3]) for s in samples if s[2] is None]
    return ids, tensors, failed
