"""Importing files: every supported format, every kind of bad file, dedup by content."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, features

from conftest import write_image
from protoshelf.core.images import ImageError, open_image
from protoshelf.core.importer import import_images, import_with_titles


@pytest.mark.parametrize("suffix,fmt", [
    (".jpg", "JPEG"), (".png", "PNG"), (".webp", "WEBP"), (".bmp", "BMP"), (".gif", "GIF"), (".tiff", "TIFF"),
    pytest.param(".avif", "AVIF", marks=pytest.mark.skipif(not features.check("avif"), reason="Pillow without libavif")),
])
def test_every_supported_format_imports(store, tmp_path, suffix, fmt):
    path = write_image(tmp_path / f"img{suffix}", size=(80, 60), fmt=fmt)
    report = import_images(store, [path])
    assert len(report.added) == 1 and not report.skipped
    item = store.items(report.added)[report.added[0]]
    assert (item.width, item.height) == (80, 60)
    thumb = Image.open(io.BytesIO(item.thumbnail))
    assert thumb.format == "JPEG" and max(thumb.size) <= 128


def test_png_alpha_is_composited_on_white(tmp_path):
    path = tmp_path / "clear.png"
    Image.new("RGBA", (10, 10), (255, 0, 0, 0)).save(path)
    assert open_image(path).getpixel((5, 5)) == (255, 255, 255)


def test_exif_orientation_is_applied(tmp_path):
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    Image.new("RGB", (40, 20), "red").save(path, exif=exif)
    assert open_image(path).size == (20, 40)


def test_gif_uses_first_frame(tmp_path):
    path = tmp_path / "anim.gif"
    frames = [Image.new("RGB", (10, 10), c) for c in ("red", "blue")]
    frames[0].save(path, save_all=True, append_images=frames[1:])
    r, g, b = open_image(path).getpixel((5, 5))
    assert r > 200 and b < 50


def test_jpeg_draft_decodes_big_photos_small(tmp_path):
    path = write_image(tmp_path / "big.jpg", size=(2000, 1500))
    assert min(open_image(path, min_side=256).size) >= 256
    assert open_image(path, min_side=256).size[0] < 2000


def bad_files(tmp_path):
    png = io.BytesIO()
    Image.new("RGB", (50, 50), "green").save(png, "PNG")
    (tmp_path / "zero.png").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("this is not a picture")
    (tmp_path / "truncated.png").write_bytes(png.getvalue()[: len(png.getvalue()) // 2])
    bomb = io.BytesIO()
    Image.new("1", (12000, 12000)).save(bomb, "PNG")  # 144 Mpx of zeros compresses to a few KB
    (tmp_path / "bomb.png").write_bytes(bomb.getvalue())
    return {"zero.png": "empty", "text.jpg": "not an image", "truncated.png": "damaged", "bomb.png": "too large"}


def test_bad_files_are_skipped_with_reasons_and_the_rest_imports(store, tmp_path):
    expected = bad_files(tmp_path)
    write_image(tmp_path / "good.png")
    (tmp_path / "missing.png").symlink_to(tmp_path / "nowhere.png")
    report = import_images(store, [tmp_path])
    assert len(report.added) == 1
    reasons = {p.rsplit("/", 1)[-1]: r for p, r in report.skipped}
    for name, words in expected.items():
        assert words in reasons[name], reasons
    assert "not found" in reasons["missing.png"]


def test_open_image_raises_only_image_error(tmp_path):
    expected = bad_files(tmp_path)
    for name in expected:
        with pytest.raises(ImageError):
            open_image(tmp_path / name)


def test_reimporting_the_same_content_does_not_duplicate(store, tmp_path):
    a = write_image(tmp_path / "a.png")
    (tmp_path / "copy").mkdir()
    copy = tmp_path / "copy" / "same.png"
    copy.write_bytes(a.read_bytes())
    first = import_images(store, [a])
    second = import_images(store, [tmp_path])
    assert store.item_count() == 1
    assert second.added == [] and set(second.existing) == set(first.added)


def test_folders_are_walked_recursively_and_non_images_ignored(store, tmp_path):
    for i in range(3):
        write_image(tmp_path / "deep" / f"level{i}" / f"{i}.png", colour=(i * 60, 10, 10))
    (tmp_path / "notes.txt").write_text("hello")
    assert len(import_images(store, [tmp_path]).added) == 3


def test_pictures_in_formats_not_read_are_counted_in_the_summary(store, tmp_path):
    """A folder of iPhone .heic photos must not look like an empty folder; notes and the catalog's
    own files are not pictures, and say nothing."""
    folder = tmp_path / "photos"
    write_image(folder / "shoe.png")
    for name in ("a.heic", "b.HEIC", "c.jxl", "shoe.txt", "README", ".DS_Store", "catalog.sqlite-wal"):
        (folder / "sub").mkdir(exist_ok=True)
        (folder / "sub" / name).write_bytes(b"x")
    report = import_images(store, [folder])
    assert len(report.added) == 1 and not report.skipped
    assert report.summary() == ("1 added, 0 already in the catalog, 0 skipped, 3 left out as formats ProtoShelf "
                                "does not read (.heic 2, .jxl 1: convert them to JPEG or PNG)")


def test_titles_csv_sets_titles_and_labels_existing_categories(store, tmp_path):
    write_image(tmp_path / "img" / "shoe.png", colour=(10, 10, 200))
    write_image(tmp_path / "img" / "pan.png", colour=(10, 200, 10))
    store.create_category("Shoes")
    csv_path = tmp_path / "titles.csv"
    csv_path.write_text("path,title,category\nimg/shoe.png,Running shoe,Shoes\nimg/pan.png,Frying pan,Pans\n")
    report, problems = import_with_titles(store, [tmp_path / "img"], csv_path)
    titles = {it.title for it in store.items(report.added).values()}
    assert titles == {"Running shoe", "Frying pan"}
    assert list(store.labels().values()) == [store.category_id("Shoes")]
    assert any("'Pans' does not exist" in p for p in problems)


def test_thumbnails_are_small_even_for_big_images(store, tmp_path):
    path = write_image(tmp_path / "big.png", size=(1600, 400))
    (item_id,) = import_images(store, [path]).added
    thumb = Image.open(io.BytesIO(store.thumbnail(item_id)))
    assert thumb.size == (128, 32)
    assert np.asarray(thumb).std() > 0
