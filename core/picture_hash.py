"""Perceptual hashes that confirm two items show the same picture, not just the same kind of thing.

An embedding says what a picture shows, so two different products that look alike (a floppy disk
and a DVD, two apples) can sit closer than a product and its own resized, re-encoded copy. A DCT
perceptual hash (imagehash's phash) says how the picture is laid out; resizing and JPEG leave it
within a few bits, while a different photograph differs in about half of its 64. Duplicates are
pairs close in both, and of the same mean colour (benchmarks/duplicate_listings.py measures the rule). Hashes are computed from
the thumbnails the catalog already stores, only for items that some near vector makes candidates.
"""
from __future__ import annotations

import io

import imagehash
import numpy as np
from PIL import Image

from protoshelf.core.store import Store

MAX_DISTANCE = 16
MAX_COLOUR_SHIFT = 12
WHITE = 230
"""Largest difference of a channel's mean (0-255) between copies; the hash sees only brightness, so
this is what tells a red shirt from the same shirt in blue, another product."""
"""Differing bits (of 64) that still count as one picture: resized, re-encoded and 3%-cropped copies
of the demo pictures stay within it, axe and hammer (cosine 0.90) differ in 22 (duplicate_listings.py)."""


def picture_hash(image: Image.Image) -> int:
    return int(str(imagehash.phash(image)), 16)


def mean_colour(image: Image.Image) -> np.ndarray:
    """The mean colour of the product, not its page: near-white pixels are left out, so a crop that
    trims the white border keeps the colour a recoloured variant changes."""
    pixels = np.asarray(image.convert("RGB"), np.float32).reshape(-1, 3)
    product = pixels[pixels.min(axis=1) < WHITE]
    return (product if len(product) >= 0.02 * len(pixels) else pixels).mean(axis=0)


def hash_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.bitwise_count(np.asarray(a, np.uint64) ^ np.asarray(b, np.uint64))


class PictureHashes:
    """Hashes and mean colours of catalog items, computed once each from the stored thumbnails."""

    def __init__(self, store: Store, max_distance: int = MAX_DISTANCE, max_colour_shift: float = MAX_COLOUR_SHIFT):
        self.store = store
        self.max_distance = max_distance
        self.max_colour_shift = max_colour_shift
        self._known: dict[int, tuple[int, np.ndarray]] = {}

    def _load(self, item_ids: np.ndarray) -> None:
        missing = [int(i) for i in set(np.asarray(item_ids).tolist()) if i not in self._known]
        for item_id, thumbnail in self.store.thumbnails(missing).items():
            if thumbnail:
                image = Image.open(io.BytesIO(thumbnail))
                self._known[item_id] = picture_hash(image), mean_colour(image)
            else:  # never matches: no picture to compare
                self._known[item_id] = item_id, np.full(3, np.nan, np.float32)

    def hashes(self, item_ids: np.ndarray) -> np.ndarray:
        self._load(item_ids)
        return np.array([self._known[int(i)][0] for i in item_ids], np.uint64)

    def colours(self, item_ids: np.ndarray) -> np.ndarray:
        self._load(item_ids)
        return np.array([self._known[int(i)][1] for i in item_ids], np.float32).reshape(-1, 3)

    def same_picture(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """For each pair (a[i], b[i]) of item ids: do both show the same picture?"""
        if not len(a):
            return np.zeros(0, bool)
        close = hash_distance(self.hashes(a), self.hashes(b)) <= self.max_distance
        shift = np.abs(self.colours(a) - self.colours(b)).max(axis=1)
        return close & (shift <= self.max_colour_shift)
