"""Perceptual hashes and product colour: a copy is the same picture, a recoloured variant is not."""
from __future__ import annotations

import numpy as np
from PIL import Image

from conftest import DEMO
from protoshelf.core.images import open_image
from protoshelf.core.importer import import_images
from protoshelf.core.picture_hash import PictureHashes


def test_copies_match_and_colour_variants_and_other_products_do_not(store, tmp_path):
    apple = open_image(DEMO / "images" / "red_apple.png")
    apple.save(tmp_path / "apple.png")
    apple.resize((apple.width - 3, apple.height - 3)).save(tmp_path / "copy.jpg", quality=80)
    w, h = apple.size
    apple.crop((w // 30, h // 30, w - w // 30, h - h // 30)).save(tmp_path / "crop.png")
    hue, saturation, value = apple.convert("HSV").split()
    Image.merge("HSV", (hue.point(lambda x: (x + 128) % 256), saturation, value)).convert("RGB").save(tmp_path / "blue.png")
    open_image(DEMO / "images" / "axe.png").save(tmp_path / "axe.png")
    report = import_images(store, sorted(tmp_path.glob("*.*")))
    ids = {name: report.ids_by_path[str(tmp_path / name)] for name in ("apple.png", "copy.jpg", "crop.png", "blue.png", "axe.png")}
    hashes = PictureHashes(store)
    pairs = [("apple.png", "copy.jpg"), ("apple.png", "crop.png"), ("apple.png", "blue.png"), ("apple.png", "axe.png")]
    same = hashes.same_picture(np.array([ids[a] for a, _ in pairs]), np.array([ids[b] for _, b in pairs]))
    assert same.tolist() == [True, True, False, False]
