"""Decoding JPEGs where the backbone runs (the CUDA path), exercised here with device="cpu"."""
from __future__ import annotations

import time

import numpy as np
import torch
from PIL import Image

from conftest import wait_for, write_image
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


def test_files_for_the_gpu_are_read_fewer_batches_ahead_than_pictures_are_decoded(tmp_path, monkeypatch):
    """Read-ahead for the GPU holds raw files in page-locked memory, 64 a batch: it stays at 8
    batches while decoding for the CPU keeps 16 ahead."""
    from protoshelf.core import embedding
    from protoshelf.core.backbones import DEFAULT_BACKBONE, packaged_preprocessing
    from protoshelf.core.model_input import CatalogImages

    path = write_image(tmp_path / "one.jpg")
    rows = [(i, str(path)) for i in range(100)]
    prep = packaged_preprocessing(DEFAULT_BACKBONE)
    read = {JpegFiles: [], CatalogImages: []}

    def counted(kind):
        original = kind.__getitem__
        return lambda self, index: read[kind].append(index) or original(self, index)

    for kind in read:
        monkeypatch.setattr(kind, "__getitem__", counted(kind))
    for on_gpu, kind, ahead in ((True, JpegFiles, embedding.GPU_READ_AHEAD), (False, CatalogImages, embedding.DECODE_AHEAD)):
        batches = embedding._batches(rows, prep, batch_size=2, threads=1, on_gpu=on_gpu)
        next(batches)
        wait_for(lambda: len(read[kind]) >= 2 * ahead)
        time.sleep(0.3)
        assert len(read[kind]) == 2 * ahead
        batches.close()
    assert embedding.GPU_READ_AHEAD < embedding.DECODE_AHEAD
