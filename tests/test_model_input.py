"""The backbone's input: the whole picture on the model's square, resampled as Pillow's BILINEAR
does, alpha composited on white, JPEGs decoded small, and stored vectors of the old input dropped."""
from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from alembic import command
from PIL import Image

from protoshelf.core.backbones import packaged_preprocessing
from protoshelf.core.images import open_image
from protoshelf.core.migrations import alembic_config, upgrade
from protoshelf.core import images, model_input
from protoshelf.core.model_input import open_model_image, to_model_input
from protoshelf.core.schema import Item
from protoshelf.core.store import Store
from conftest import png_chunk

PREP = packaged_preprocessing("efficientnet_lite0")
RED, WHITE = (220, 20, 20), (255, 255, 255)


def hwc(image: Image.Image) -> np.ndarray:
    return to_model_input(image, PREP).permute(1, 2, 0).numpy().astype(int)


def test_a_long_products_ends_survive(tmp_path):
    """A 3:1 product with red caps on its far ends: both caps reach the model, across its height."""
    product = Image.new("RGB", (600, 200), WHITE)
    product.paste(RED, (0, 60, 24, 140))
    product.paste(RED, (576, 60, 600, 140))
    path = tmp_path / "pen.png"
    product.save(path)

    pixels = hwc(open_model_image(path, PREP))

    assert pixels.shape == (PREP.size, PREP.size, 3)
    for column in (pixels[:, 2], pixels[:, -3]):
        red_rows = np.flatnonzero((column[:, 0] > 180) & (column[:, 1] < 80))
        assert 60 < len(red_rows) < 110 and 60 < red_rows.mean() < 160
    assert (pixels[:, PREP.size // 2] == 255).all()  # the white middle stays white


def test_a_cut_out_kept_with_alpha_comes_out_as_the_one_composited_at_decoding(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (300, 420, 3), dtype=np.uint8)
    alpha = np.zeros((300, 420), np.uint8)
    alpha[40:260, 60:360] = 255
    alpha[100:200, :] = rng.integers(0, 256, (100, 420), dtype=np.uint8)  # soft, uneven edges
    path = tmp_path / "cutout.png"
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(path)

    kept = open_model_image(path, PREP)
    composited_first = open_image(path)

    assert kept.mode == "RGBA" and composited_first.mode == "RGB"
    difference = np.abs(hwc(kept) - hwc(composited_first))
    assert difference.max() <= 3 and difference.mean() < 0.3  # rounding where alpha is nearly 0
    assert (hwc(kept)[:5, :5] == 255).all()  # fully transparent corners are white, not the hidden colour


def smooth_picture(width: int, height: int, mode: str = "RGB") -> Image.Image:
    """Gradients and a few hard edges: what resampling kernels disagree on, without noise."""
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.dstack([x * 255 // width, y * 255 // height, (x // 17 + y // 13) % 2 * 200]).astype(np.uint8)
    image = Image.fromarray(rgb, "RGB")
    if mode == "RGBA":
        alpha = np.where((x > width // 5) & (x < width * 4 // 5) & (y > height // 5) & (y < height * 4 // 5), 255, 0)
        image.putalpha(Image.fromarray(alpha.astype(np.uint8), "L"))
    return image


def test_the_model_sees_pillows_bilinear_resampling_when_shrinking_and_enlarging():
    for size in [(250, 230), (64, 64), (400, 90)]:
        image = smooth_picture(*size)
        pillow = np.asarray(image.resize((PREP.size, PREP.size), Image.Resampling.BILINEAR)).astype(int)

        ours = to_model_input(image, PREP)

        assert ours.shape == (3, PREP.size, PREP.size) and ours.permute(1, 2, 0).is_contiguous()  # HWC underneath
        difference = np.abs(ours.permute(1, 2, 0).numpy().astype(int) - pillow)
        assert difference.max() <= 2 and difference.mean() < 0.05, size


def test_a_huge_cut_out_is_shrunk_by_blocks_then_composited_on_white():
    huge = smooth_picture(3001, 2011, "RGBA")  # the blocks' last row and column are partial
    composited_first = Image.new("RGB", huge.size, WHITE)
    composited_first.paste(huge, (0, 0), huge)
    pillow = np.asarray(composited_first.resize((PREP.size, PREP.size), Image.Resampling.BILINEAR, reducing_gap=3.0))

    pixels = hwc(huge)

    assert (pixels[:20, :20] == 255).all() and (pixels[-20:, -20:] == 255).all()
    difference = np.abs(pixels - pillow.astype(int))
    assert difference.max() <= 3 and difference.mean() < 0.1


def test_where_torch_has_no_vectorised_resize_pillow_gives_the_same_pixels(monkeypatch):
    pictures = [smooth_picture(250, 230), smooth_picture(64, 64, "RGBA"), smooth_picture(3001, 2011, "RGBA")]
    vectorised = [hwc(picture) for picture in pictures]
    monkeypatch.setattr(model_input, "VECTORISED_RESIZE", False)

    for picture, expected in zip(pictures, vectorised):
        difference = np.abs(hwc(picture) - expected)
        assert difference.max() <= 3 and difference.mean() < 0.1


def test_jpegs_are_decoded_at_the_smallest_scale_not_below_the_model(tmp_path):
    path = tmp_path / "photo.jpg"
    Image.new("RGB", (1000, 920), RED).save(path, quality=90)
    wide = tmp_path / "wide.jpg"
    Image.new("RGB", (1800, 450), RED).save(wide, quality=90)

    assert open_model_image(path, PREP).size == (250, 230)  # 1/4: 1/8 would be below 224 px
    assert min(open_model_image(wide, PREP).size) >= PREP.size


def test_an_old_catalogs_image_vectors_are_dropped_and_title_vectors_kept(tmp_path):
    with Store(tmp_path / "old.sqlite") as store:
        with store._write() as s:
            s.add_all(Item(path=f"/x/{i}.png", sha256=f"{i:064x}", width=1, height=1, file_size=1) for i in range(3))
        ids = store.item_ids()
        command.downgrade(alembic_config(store._engine), "0006")
        vectors = np.ones((3, 4), np.float32)
        for model in ("efficientnet_lite0", "concept:efficientnet_lite0", "efficientnet_lite0~tuned", "text:minilm"):
            store.save_embeddings(model, ids, vectors)
        upgrade(store._engine)

        assert store.items_without_embedding("efficientnet_lite0") == store.items_without_embedding("text:minilm") + [
            (int(i), f"/x/{n}.png") for n, i in enumerate(ids)]
        assert len(store.load_embeddings("concept:efficientnet_lite0")) == 0
        assert len(store.load_embeddings("efficientnet_lite0~tuned")) == 0
        assert len(store.load_embeddings("text:minilm")) == 3


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "PA", "I", "I;16", "F", "CMYK", "YCbCr"])
def test_a_picture_in_any_decoded_mode_reaches_the_model_as_rgb(mode):
    for size in [(1, 1), (1, 5000), (2000, 1500)]:  # the last two are shrunk by blocks first
        pixels = to_model_input(Image.new(mode, size), PREP)
        assert pixels.shape == (3, PREP.size, PREP.size) and pixels.dtype == torch.uint8


def test_a_16_bit_grey_scan_keeps_its_tones(tmp_path):
    ramp = np.tile(np.linspace(0, 65535, 256).astype(np.uint16), (64, 1))
    path = tmp_path / "scan.png"
    Image.fromarray(ramp).save(path)

    pixels = np.asarray(open_image(path)).astype(int)[..., 0]

    assert pixels[0, 0] == 0 and pixels[0, -1] == 255
    assert np.abs(pixels[0] - np.arange(256)).max() <= 1  # not clipped to white past 255/65535


def test_a_transparent_colour_marked_by_trns_is_composited_on_white(tmp_path):
    for mode, backdrop, product in (("RGB", (10, 20, 30), RED), ("L", 7, 90)):
        picture = Image.new(mode, (40, 40), backdrop)
        picture.paste(product, (10, 10, 30, 30))
        path = tmp_path / f"trns-{mode}.png"
        picture.save(path, transparency=backdrop)

        pixels = hwc(open_model_image(path, PREP))

        assert (pixels[:20, :20] == 255).all()  # the backdrop colour was transparent
        assert (pixels[PREP.size // 2, PREP.size // 2] < 255).any()


def spied_libspng(monkeypatch) -> list[int]:
    calls, decode = [], images._libspng()
    monkeypatch.setattr(images, "_libspng", lambda: lambda data: calls.append(len(data)) or decode(data))
    return calls


@pytest.mark.parametrize("mode,options", [("RGB", {}), ("RGBA", {}), ("RGBA", {"interlace": 1})])
def test_a_plain_png_is_decoded_by_libspng_to_pillows_pixels(tmp_path, monkeypatch, mode, options):
    noise = np.random.default_rng(1).integers(0, 256, (37, 53, len(mode)), dtype=np.uint8)
    path = tmp_path / "plain.png"
    Image.fromarray(noise, mode).save(path, **options)
    calls = spied_libspng(monkeypatch)

    pixels = np.asarray(open_image(path, keep_alpha=True))

    assert calls == [path.stat().st_size]
    assert np.array_equal(pixels, noise)


@pytest.mark.parametrize("mode,options", [
    ("P", {}), ("L", {}), ("LA", {}), ("I;16", {}), ("RGB", {"transparency": (1, 2, 3)}),
])
def test_pngs_libspng_would_decode_differently_are_left_to_pillow(tmp_path, monkeypatch, mode, options):
    """imagecodecs expands a palette without its transparency, and does not decode grey with alpha."""
    path = tmp_path / "other.png"
    Image.new(mode, (20, 10)).save(path, **options)
    calls = spied_libspng(monkeypatch)

    assert open_image(path).size == (20, 10) and calls == []


def test_a_png_libspng_refuses_gets_pillows_verdict(tmp_path, monkeypatch):
    good, torn = tmp_path / "good.png", tmp_path / "torn.png"
    Image.new("RGBA", (30, 30), RED).save(good)
    torn.write_bytes(good.read_bytes()[:-30])  # cut inside the pixel data

    def refuse(data):
        raise RuntimeError("spng_decode_image returned IDAT stream error")  # as imagecodecs.SpngError
    monkeypatch.setattr(images, "_libspng", lambda: refuse)

    assert np.asarray(open_image(good))[0, 0].tolist() == list(RED)
    with pytest.raises(images.ImageError, match="truncated"):
        open_image(torn)


def exif_orientation_6() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to view
    return exif.tobytes()


@pytest.mark.parametrize("where", ["eXIf after the pixels", "ImageMagick's EXIF text", "XMP"])
def test_a_png_that_says_it_is_rotated_is_turned_upright_as_pillow_does(tmp_path, monkeypatch, where):
    import binascii

    path = tmp_path / "rotated.png"
    Image.new("RGB", (40, 30), RED).save(path)
    data = path.read_bytes()
    exif = exif_orientation_6()
    extra = {
        "eXIf after the pixels": png_chunk(b"eXIf", exif),
        "ImageMagick's EXIF text": png_chunk(b"tEXt", b"Raw profile type exif\0\nexif\n%8d\n" % (len(exif) + 6)
                                             + binascii.hexlify(b"Exif\0\0" + exif) + b"\n"),
        "XMP": png_chunk(b"iTXt", b"XML:com.adobe.xmp\0\0\0\0\0" + b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
                         b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
                         b'xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="6"/></rdf:RDF></x:xmpmeta>'),
    }[where]
    path.write_bytes(data[:-12] + extra + data[-12:])  # before IEND
    calls = spied_libspng(monkeypatch)

    assert open_image(path).size == (30, 40) and calls == []


def test_without_libspng_in_this_imagecodecs_pngs_go_to_pillow(tmp_path, monkeypatch):
    """A build of imagecodecs without a codec has a stub that raises ImportError on every call."""
    from types import SimpleNamespace

    def stub(data):
        raise ImportError("imagecodecs._spng")

    path = tmp_path / "plain.png"
    Image.new("RGBA", (20, 10), RED).save(path)
    monkeypatch.setitem(sys.modules, "imagecodecs", SimpleNamespace(SPNG=SimpleNamespace(available=False), spng_decode=stub))
    images._libspng.cache_clear()
    try:
        assert np.asarray(open_image(path))[0, 0].tolist() == list(RED)
    finally:
        images._libspng.cache_clear()
