"""JPEG decoding on the GPU (nvJPEG, through torchvision.io.decode_jpeg), for embedding on CUDA.

A GPU runs the backbone faster than a few CPU cores can decode full-size photos. On CUDA,
the decoding threads therefore only read JPEG files, and the GPU decodes each batch at once; the
"resize the whole picture to the model's square" of the CPU path is done there too, with
antialiased bilinear resampling, so vectors match the CPU path's up to interpolation differences. Anything else (PNG,
WebP, a JPEG that fails the checks of `open_image` or that nvJPEG refuses) is decoded by Pillow
as before. The same functions run on the CPU in the tests; on a GPU they are untested here.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.nn import functional
from torchvision.io import ImageReadMode, decode_jpeg

from protoshelf.core.backbones import Preprocessing
from protoshelf.core.model_input import CatalogImages
from protoshelf.core.images import MAX_FILE_BYTES, MAX_JPEG_SCANS, MAX_PIXELS, ImageError, open_image, scan_markers


def plain_jpeg(path: Path) -> torch.Tensor | None:
    """The bytes of a baseline-sized JPEG within open_image's budgets, or None: then Pillow's path
    decodes it, or says what is wrong with it."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            return None
        data = path.read_bytes()
        with Image.open(io.BytesIO(data), formats=["JPEG"]) as image:
            if image.format != "JPEG" or image.width * image.height > MAX_PIXELS:
                return None
    except Exception:  # noqa: BLE001 - any doubt goes to the Pillow path, which reports it properly
        return None
    if scan_markers(data) > MAX_JPEG_SCANS:
        return None
    return torch.frombuffer(bytearray(data), dtype=torch.uint8)


class JpegFiles(CatalogImages):
    """Like CatalogImages, but a plain JPEG comes back as its raw bytes (a 1-D tensor)."""

    def __getitem__(self, index: int):
        item_id, path = self.rows[index]
        raw = plain_jpeg(Path(path))
        if raw is not None:
            return item_id, path, raw, ""
        return super().__getitem__(index)


def collate(samples):
    """(ids, [(path, payload)], failed): the payloads differ in shape, so they stay a list, in
    page-locked memory where CUDA is, so that copying them to the GPU does not wait on the CPU."""
    good = [s for s in samples if s[2] is not None]
    pin = torch.cuda.is_available()
    payloads = [(s[1], pinned(s[2]) if pin else s[2]) for s in good]
    return [s[0] for s in good], payloads, [(s[1], s[3]) for s in samples if s[2] is None]


def pinned(payload: torch.Tensor) -> torch.Tensor:
    """A copy of JPEG bytes or of a CHW view of HWC pixels in page-locked memory, copied by numpy:
    this runs in decoding threads, where a torch copy would start an OpenMP team of its own."""
    source = payload if payload.ndim == 1 else payload.permute(1, 2, 0)
    out = torch.empty(source.shape, dtype=torch.uint8, pin_memory=True)
    out.numpy()[...] = source.numpy()
    return out if payload.ndim == 1 else out.permute(2, 0, 1)


def whole_picture(image: torch.Tensor, prep: Preprocessing) -> torch.Tensor:
    """CHW uint8 -> the model's square input, the whole picture resized as `to_model_input` does."""
    resized = functional.interpolate(image.unsqueeze(0).float(), size=(prep.size, prep.size), mode="bilinear",
                                     antialias=True, align_corners=False)
    return resized[0].round_().clamp_(0, 255).to(torch.uint8)


def to_device_batch(ids: list[int], payloads: list[tuple[str, torch.Tensor]], failed: list[tuple[str, str]],
                    prep: Preprocessing, device: torch.device) -> tuple[list[int], torch.Tensor | None, list[tuple[str, str]]]:
    """One uint8 NCHW batch on `device`: JPEG bytes decoded there, Pillow's crops moved there.
    A JPEG neither nvJPEG nor Pillow can decode joins `failed`."""
    raw = [p for _, p in payloads if p.ndim == 1]
    decoded = iter(_decode(raw, device) if raw else [])
    kept, images = [], []
    for item_id, (path, payload) in zip(ids, payloads):
        image = next(decoded) if payload.ndim == 1 else payload.to(device, non_blocking=True)
        if isinstance(image, ImageError):
            failed.append((path, str(image)))
            continue
        kept.append(item_id)
        images.append(whole_picture(image, prep) if payload.ndim == 1 else image)
    return kept, torch.stack(images) if images else None, failed


def _decode(raw: list[torch.Tensor], device: torch.device) -> list:
    try:
        return decode_jpeg(raw, mode=ImageReadMode.RGB, device=device, apply_exif_orientation=True)
    except RuntimeError:  # one file nvJPEG cannot read spoils the batch call: go one by one
        return [_decode_one(data, device) for data in raw]


def _decode_one(data: torch.Tensor, device: torch.device) -> torch.Tensor | ImageError:
    try:
        return decode_jpeg(data, mode=ImageReadMode.RGB, device=device, apply_exif_orientation=True)
    except RuntimeError:
        try:
            image = open_image(data.numpy().tobytes())
        except ImageError as exc:
            return exc
        return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).to(device)
