"""Decoding JPEGs where the backbone runs (the CUDA path), exercised here with device="cpu"."""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from conftest import write_image
from protoshelf.core.device_decode import JpegFiles, collate, to_device_batch
from protoshelf.core.model_input import open_model_image, to_model_input

CPU = torch.device("cpu")


def pil_path(path, prep) -> torch.Tensor:
    return to_model_input(open_model_image(path, prep), prep)


def test_jpeg_bytes_png_crops_and_broken_files_take_their_paths(tmp_path, extractor):
    prep = extractor.backbone.preprocessing
    wide = write_image(tmp_path / "wide.jpg", colour=(200, 60, 40), size=(320, 200), quality=95)
    tall = write_image(tmp_path / "tall.jpg", colour=(40, 160, 90), size=(180, 300), quality=95)
    png = write_image(tmp_path / "flat.png", colour=(20, 20, 220), size=(150, 150))
    rotated = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: viewers rotate it 90° clockwise
    Image.open(wide).save(rotated, quality=95, exif=exif)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(wide.read_bytes()[: wide.stat().st_size // 2])
    (tmp_path / "text.jpg").write_text("not a picture")
    paths = [wide, tall, png, rotated, truncated, tmp_path / "text.jpg"]

    samples = [JpegFiles([(i, str(p)) for i, p in enumerate(paths)], prep)[i] for i in range(len(paths))]
    assert [None if s[2] is None else s[2].ndim for s in samples] == [1, 1, 3, 1, 1, None]
    ids, batch, failed = to_device_batch(*collate(samples), prep, CPU)

    assert ids == [0, 1, 2, 3]
    assert [p.rsplit("/", 1)[-1] for p, _ in failed] == ["text.jpg", "truncated.jpg"]
    assert batch.dtype == torch.uint8 and batch.shape == (4, 3, prep.size, prep.size)
    expected = torch.stack([pil_path(p, prep) for p in (wide, tall, png, rotated)])
    assert (batch.float() - expected.float()).abs().mean() < 3  # gray levels, out of 255
    cosine = np.sum(extractor(batch) * extractor(expected), axis=1) / (
        np.linalg.norm(extractor(batch), axis=1) * np.linalg.norm(extractor(expected), axis=1)
    )
    assert cosine.min() > 0.99
