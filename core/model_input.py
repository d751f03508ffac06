"""Catalog images as the backbone's uint8 input, decoded on the CPU (core/images.py: Pillow, and
libspng for plain PNGs): one image, a dataset of catalog rows, a batch.

The whole picture is resized to the model's square. Product pictures are centred cut-outs, and the
ImageNet habit of "resize the short side, centre-crop 87.5%" cut off the product's edges: resizing
the whole picture scored 0.4-0.7 points better on emoji and 7-8 on photos of animals with plain
prototypes, and padding long pictures to a square on white did no better (benchmarks/preprocessing.py).
Changing these pixels changes every vector: a migration must then drop the stored image vectors
(as 0008 does), so that old and new never mix. Changes within rounding need none: moving the
resampling from Pillow to torch moved pixels by at most 3 levels and kept vectors at cosine
0.9987 or more to the old ones (Twemoji, animal photos, synthetic JPEGs and cut-outs).

Decoding is the part of embedding that competes with the backbone for the same cores, so it does
only what the pixels need: a JPEG is decoded at the smallest scale not below the model's size
(`open_image`'s draft), a huge picture is shrunk by pixel blocks before it is composited on white,
and no float conversion happens here; normalisation is done batch-wise where the model runs.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from protoshelf.core.backbones import Preprocessing
from protoshelf.core.images import ImageError, on_white, open_image, rgb_or_rgba

REDUCING_GAP = 3.0
"""A picture over 6 times the model's size is first shrunk by whole pixel blocks (cheap), then
resampled: as good as one resampling at that gap (Pillow's documentation), and a 3000 px PNG costs
a fraction."""


def open_model_image(source: Path | bytes, prep: Preprocessing) -> Image.Image:
    """A picture decoded for `to_model_input`: a JPEG at a reduced scale still above the model's
    size, transparency kept (RGBA) for `to_model_input` to composite once a huge one is shrunk."""
    return open_image(source, min_side=prep.size, keep_alpha=True)


VECTORISED_RESIZE = torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512")
"""torch's uint8 antialiased resize has a vectorised kernel on x86 with AVX2 or AVX-512 only;
elsewhere (ARM, Apple silicon) its generic kernel was 2-3 times slower than Pillow's and ran on
an OpenMP team of its own, so Pillow resamples there."""


def to_model_input(image: Image.Image, prep: Preprocessing) -> torch.Tensor:
    """The whole picture resized to the model's square, as a uint8 CHW tensor (a view of HWC pixels).

    Resampled by torch's vectorised uint8 antialiased bilinear kernel where there is one, which
    gives Pillow's BILINEAR pixels to within a level or two at a fraction of its CPU time: 0.60 ->
    0.18 ms for a JPEG drafted to 250 px, 1.33 -> 0.43 ms for a 300 px cut-out composited on white
    first (Pillow resamples RGBA premultiplied, twice converting every pixel)."""
    image = rgb_or_rgba(image)  # palette, grey, 16-bit, CMYK…: the modes `reduce` and the kernel take
    size = (prep.size, prep.size)
    if not VECTORISED_RESIZE:
        pixels = np.array(on_white(image).resize(size, Image.Resampling.BILINEAR, reducing_gap=REDUCING_GAP))
        return torch.from_numpy(pixels).permute(2, 0, 1)
    reduced, exact_size = _reduced(image, prep.size)
    return torch.from_numpy(_resized(np.array(on_white(reduced)), prep.size, exact_size)).permute(2, 0, 1)


def _reduced(image: Image.Image, side: int) -> tuple[Image.Image, tuple[float, float] | None]:
    """Shrunk by whole pixel blocks to within REDUCING_GAP of `side`, as Pillow's `reducing_gap`
    does (RGBA premultiplied), so that a 3000 px picture is composited and resampled small; with
    the shrunk picture's exact size, since its last block may be partial (3001 px by 4: 751 px
    holding 750.25 px of picture), None when nothing was shrunk."""
    factors = tuple(max(1, int(length / side / REDUCING_GAP)) for length in image.size)
    if factors == (1, 1):
        return image, None
    return image.reduce(factors), (image.width / factors[0], image.height / factors[1])


def _resized(pixels: np.ndarray, side: int, exact_size: tuple[float, float] | None = None) -> np.ndarray:
    """HWC uint8 pixels resampled to side x side, HWC: the layout `stack_images` and the backbone
    use. `exact_size` (width, height): how much picture the pixels hold when the last row or
    column is a partial block, so that it is not stretched over the square.

    The kernel is `F.interpolate`'s, called with an output of our own, because for one image
    `interpolate` returns planes (CHW), and laying them out again cost more than the resampling.
    It runs in the calling thread (a decoding thread) without starting an OpenMP team of its own."""
    source = torch.from_numpy(pixels).permute(2, 0, 1).unsqueeze(0)
    out = torch.empty((1, side, side, pixels.shape[2]), dtype=torch.uint8)
    scales = (side / exact_size[1], side / exact_size[0]) if exact_size else (None, None)
    torch.ops.aten._upsample_bilinear2d_aa.out(source, [side, side], False, *scales, out=out.permute(0, 3, 1, 2))
    return out[0].numpy()


class CatalogImages:
    """Catalog rows decoded to model input; a file that fails comes back with its reason."""

    def __init__(self, rows: list[tuple[int, str]], prep: Preprocessing):
        self.rows = rows
        self.prep = prep

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int):
        item_id, path = self.rows[index]
        try:
            image = open_model_image(Path(path), self.prep)
        except (ImageError, OSError) as exc:
            return item_id, path, None, str(exc)
        return item_id, path, to_model_input(image, self.prep), ""


def stack_images(images: list[torch.Tensor]) -> torch.Tensor:
    """A uint8 NCHW batch laid out channels_last, as the backbone runs: the CHW tensors of
    `to_model_input` are views of HWC pixels, so this is one plain copy and the float batch needs
    no second one (converting a contiguous float batch cost 24 ms per 32 images).

    numpy copies, not torch: this runs in decoding threads, and a torch operation in a thread of
    its own starts a second OpenMP team that competes with the backbone's for the same cores."""
    pixels = np.stack([image.permute(1, 2, 0).numpy() for image in images])
    return torch.from_numpy(pixels).permute(0, 3, 1, 2)


def collate(samples):
    """(ids, uint8 batch or None, [(path, reason)]) of dataset samples."""
    good = [s for s in samples if s[2] is not None]
    ids = [s[0] for s in good]
    tensors = stack_images([s[2] for s in good]) if good else None
    failed = [(s[1], s[3]) for s in samples if s[2] is None]
    return ids, tensors, failed
