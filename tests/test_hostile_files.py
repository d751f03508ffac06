"""Whatever a merchandiser's drive holds, decoding and importing either work or say why.

Property tests feed `open_image` random bytes and mutated real PNG/JPEG/GIF/WebP/TIFF/BMP files:
it must return an RGB image or raise ImageError within CPU_BOUND seconds of CPU time (CPU time,
so a busy CI box cannot make it flaky, while a runaway decoder loop still fails it). The importer
gets the same treatment on folders of such files, plus the hand-made cases hypothesis would not find:
decompression bombs, scan-bomb JPEGs, truncation, wrong extensions, symlink loops, FIFOs, sparse
giant files, unreadable files and folders, non-UTF-8 names, folders named like images.

CI runs a bounded number of examples; `PROTOSHELF_FUZZ=long pytest tests/test_hostile_files.py`
runs a hundred times more (see README, Testing).
"""
from __future__ import annotations

import ctypes
import io
import json
import os
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from conftest import png_chunk, write_image
from protoshelf.core.images import ImageError, open_image, scan_markers
from protoshelf.core.importer import import_images
from protoshelf.core.store import Store

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:PIL.TiffImagePlugin")  # "corrupt EXIF", as meant

LONG = os.environ.get("PROTOSHELF_FUZZ") == "long"
SCALE = 100 if LONG else 1
CPU_BOUND = 2.0
"""CPU seconds one file may take to be decoded or refused."""

FUZZ = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    database=None,
)


def encoded(fmt: str, size=(48, 32), mode="RGB", **save) -> bytes:
    rng = np.random.default_rng(len(fmt) + size[0])
    pixels = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    image = Image.fromarray(pixels).convert(mode)
    out = io.BytesIO()
    image.save(out, fmt, **save)
    return out.getvalue()


def seed_files() -> dict[str, bytes]:
    exif = Image.Exif()
    exif[0x0112] = 6
    return {
        "png": encoded("PNG"),
        "png-rgba": encoded("PNG", mode="RGBA"),
        "png-palette": encoded("PNG", mode="P"),
        "jpeg": encoded("JPEG", exif=exif),
        "jpeg-progressive": encoded("JPEG", progressive=True),
        "gif": encoded("GIF", mode="P"),
        "webp": encoded("WEBP", quality=50),
        "webp-lossless": encoded("WEBP", lossless=True),
        "tiff": encoded("TIFF"),
        "tiff-lzw": encoded("TIFF", compression="tiff_lzw"),
        "tiff-jpeg": encoded("TIFF", compression="jpeg"),
        "bmp": encoded("BMP"),
    }


SEEDS = seed_files()
MAGIC = [b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a", b"RIFF\x00\x01\x00\x00WEBPVP8 ", b"II*\x00", b"MM\x00*", b"BM"]
OTHER_MAGIC = [b"DDS |\x00\x00\x00", b"8BPS\x00\x01", b"icns", b"%!PS-Adobe-3.0 EPSF-3.0\n", b"\x0a\x05\x01\x08",
               b"\x00\x00\x00\x0cjP  \r\n\x87\n", b"SIMPLE  =                    T", b"P6\n", b"qoif", b"gimp xcf"]
"""Formats Pillow knows but ProtoShelf does not: their parsers must never even run."""


@st.composite
def mutated(draw) -> bytes:
    """A real image file with a few bytes flipped, inserted, deleted, or its tail cut off."""
    data = bytearray(SEEDS[draw(st.sampled_from(sorted(SEEDS)))])
    for _ in range(draw(st.integers(1, 8))):
        at = draw(st.integers(0, len(data) - 1))
        match draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "big"])):
            case "flip":
                data[at] ^= 1 << draw(st.integers(0, 7))
            case "set":
                data[at] = draw(st.integers(0, 255))
            case "insert":
                data[at:at] = draw(st.binary(min_size=1, max_size=16))
            case "delete":
                del data[at : at + draw(st.integers(1, 16))]
            case "truncate":
                del data[max(1, at):]
            case "big":  # a header field (a width, a length, a count) turned huge
                data[at : at + 4] = struct.pack(">I", draw(st.sampled_from([0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, 65500])))
        if not data:
            data = bytearray(b"\x00")
    return bytes(data)


hostile_bytes = st.one_of(
    st.binary(max_size=2048),
    st.builds(lambda m, tail: m + tail, st.sampled_from(MAGIC + OTHER_MAGIC), st.binary(max_size=2048)),
    mutated(),
)


def assert_decodes_or_refuses(data: bytes) -> None:
    started = time.process_time()
    try:
        image = open_image(data, min_side=256)
    except ImageError as exc:
        assert str(exc)
    else:
        assert image.mode == "RGB" and image.width > 0 and image.height > 0
    assert time.process_time() - started < CPU_BOUND


@pytest.mark.slow
@settings(FUZZ, max_examples=300 * SCALE)
@given(hostile_bytes)
def test_open_image_on_hostile_bytes_returns_rgb_or_image_error(data):
    assert_decodes_or_refuses(data)


@pytest.mark.slow
@settings(FUZZ, max_examples=300 * SCALE)
@given(mutated())
def test_open_image_on_mutated_real_files_returns_rgb_or_image_error(data):
    assert_decodes_or_refuses(data)


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_every_seed_file_decodes_and_every_truncation_is_refused_or_decoded(name):
    data = SEEDS[name]
    assert open_image(data).mode == "RGB"
    for cut in range(1, len(data), max(1, len(data) // 40)):
        assert_decodes_or_refuses(data[:cut])


@pytest.mark.slow
@settings(FUZZ, max_examples=15 * SCALE)
@given(files=st.lists(st.tuples(st.sampled_from([".jpg", ".png", ".gif", ".webp", ".tif", ".bmp"]), hostile_bytes),
                      min_size=1, max_size=6))
def test_importer_reports_every_hostile_file_and_imports_the_rest(tmp_path_factory, files):
    folder = tmp_path_factory.mktemp("hostile")
    for i, (suffix, data) in enumerate(files):
        (folder / f"{i}{suffix}").write_bytes(data)
    good = write_image(folder / "good.png")
    with Store(folder / "catalog.sqlite") as store:
        started = time.process_time()
        report = import_images(store, [folder])
        assert time.process_time() - started < CPU_BOUND * (len(files) + 1)
        assert len(report.added) + len(report.existing) + len(report.skipped) == len(files) + 1
        assert all(reason for _, reason in report.skipped)
        assert str(good) not in [p for p, _ in report.skipped]
        assert store.item_count() == len(report.added) >= 1
        assert store.integrity_check() == "ok"


# --- hand-made hostile files ---------------------------------------------------------------

def png_claiming(width: int, height: int) -> bytes:
    """A valid-looking PNG header over almost no data: a decompression bomb's calling card."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header)
            + png_chunk(b"IDAT", zlib.compress(b"\x00" * 1024)) + png_chunk(b"IEND", b""))


def scan_bomb_jpeg(side: int = 2048, scans: int = 2000) -> bytes:
    """A progressive JPEG whose last, cheap scan is repeated: each repeat costs a pass over every
    block, so a few hundred KB take minutes in libjpeg-turbo (its TJPARAM_SCANLIMIT exists for this)."""
    out = io.BytesIO()
    Image.new("L", (side, side), 128).save(out, "JPEG", progressive=True)
    data = out.getvalue()
    last_scan = data.rindex(b"\xff\xda")
    return data[:-2] + data[last_scan:-2] * scans + b"\xff\xd9"


@pytest.mark.parametrize("width,height", [(100_000, 100_000), (9_000, 9_000), (1, 2**31 - 1), (2**31 - 1, 1)])
def test_decompression_bombs_are_refused_quickly(width, height):
    started = time.process_time()
    with pytest.raises(ImageError, match="too large"):
        open_image(png_claiming(width, height))
    assert time.process_time() - started < 0.5


def test_progressive_jpeg_scan_bomb_is_refused_quickly():
    bomb = scan_bomb_jpeg()
    assert len(bomb) < 500_000
    started = time.process_time()
    with pytest.raises(ImageError, match="scans"):
        open_image(bomb, min_side=256)
    assert time.process_time() - started < 0.5


@pytest.mark.parametrize("data,count", [(b"", 0), (b"\xff", 0), (b"\xff\xda", 1), (b"\xda\xff\xff\xda\xff\xda\xff", 2)])
def test_start_of_scan_markers_are_counted_byte_pair_by_byte_pair(data, count):
    assert scan_markers(data) == count


def test_a_scan_bomb_has_as_many_markers_as_scans():
    assert scan_markers(scan_bomb_jpeg(side=64, scans=100)) == scan_bomb_jpeg(side=64, scans=0).count(b"\xff\xda") + 100


@pytest.mark.parametrize("mode", ["RGB", "L", "CMYK"])
@pytest.mark.parametrize("options", [{}, {"progressive": True, "optimize": True}, {"progressive": True, "restart_marker_blocks": 1}])
def test_ordinary_jpegs_still_decode(mode, options):
    out = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 1
    Image.new(mode, (300, 200)).save(out, "JPEG", exif=exif, **options)
    assert open_image(out.getvalue()).size == (300, 200)


def test_a_tiff_whose_strip_offsets_are_fractions_is_refused():
    """Found by the long fuzz run: Pillow's TIFF loader raised TypeError seeking to an IFDRational."""
    data = bytearray(SEEDS["tiff"])
    ifd = struct.unpack_from("<I", data, 4)[0]
    for entry in range(struct.unpack_from("<H", data, ifd)[0]):
        at = ifd + 2 + 12 * entry
        if struct.unpack_from("<H", data, at)[0] == 0x0111:  # StripOffsets
            struct.pack_into("<H", data, at + 2, 5)  # its type: LONG -> RATIONAL
    with pytest.raises(ImageError, match="damaged"):
        open_image(bytes(data))


def test_scan_markers_inside_a_payload_do_not_count():
    out = io.BytesIO()
    Image.new("RGB", (64, 48), "teal").save(out, "JPEG", comment=b"\xff\xda" * 100)
    assert out.getvalue().count(b"\xff\xda") > 100
    assert open_image(out.getvalue()).size == (64, 48)


def test_formats_we_do_not_support_are_never_parsed():
    """Pillow's DDS parser raised NotImplementedError on this header, escaping every caller."""
    header = struct.pack("<6I", 0x1007, 64, 64, 0, 0, 0) + bytes(44) + struct.pack("<4I", 32, 0x2, 0, 0)  # pixel format flags: none it knows
    dds = b"DDS " + struct.pack("<I", 124) + header.ljust(120, b"\x00")
    with pytest.raises(NotImplementedError):
        Image.open(io.BytesIO(dds))
    with pytest.raises(ImageError, match="cannot read"):
        open_image(dds)


@pytest.mark.parametrize("fmt,suffix", [("PNG", ".jpg"), ("JPEG", ".png"), ("WEBP", ".gif"), ("GIF", ".tiff")])
def test_wrong_extensions_import_by_content(store, tmp_path, fmt, suffix):
    path = write_image(tmp_path / f"mislabelled{suffix}", fmt=fmt, size=(30, 20))
    report = import_images(store, [tmp_path])
    assert len(report.added) == 1 and not report.skipped
    assert store.items(report.added)[report.added[0]].width == 30


def unblock_fifo(path: Path, unblocked: list[Path]) -> None:
    """Give a reader stuck on the FIFO its end of file, and note that one was stuck."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:  # no reader waiting: nothing hung, however long the import took
        return
    unblocked.append(path)


def test_links_fifos_giant_files_and_image_named_folders(store, tmp_path):
    folder = tmp_path / "drive"
    write_image(folder / "good.png")
    write_image(folder / "looks-like.jpg" / "inside.png", colour=(0, 90, 0))
    (folder / "loop-a.jpg").symlink_to(folder / "loop-b.jpg")
    (folder / "loop-b.jpg").symlink_to(folder / "loop-a.jpg")
    (folder / "self.png").symlink_to(folder / "self.png")
    (folder / "cycle").symlink_to(folder)  # a folder link back up: must not be walked forever
    (folder / "dangling.webp").symlink_to(tmp_path / "gone.webp")
    (folder / "zeros.jpg").symlink_to("/dev/zero")
    os.mkfifo(folder / "pipe.png")  # opening a FIFO for reading would block forever
    with open(folder / "sparse.tif", "wb") as handle:
        handle.truncate(8 * 2**30)  # 8 GB of nothing: hashing it alone would take a minute
    unblocked: list[Path] = []
    watchdog = threading.Timer(30, unblock_fifo, [folder / "pipe.png", unblocked])  # so a regression fails, not hangs
    watchdog.start()
    try:
        report = import_images(store, [folder, folder / "looks-like.jpg"])
    finally:
        watchdog.cancel()
    assert not unblocked, "the importer opened the FIFO and waited on it"
    reasons = {Path(p).name: r for p, r in report.skipped}
    assert set(reasons) == {"loop-a.jpg", "loop-b.jpg", "self.png", "dangling.webp", "zeros.jpg", "pipe.png", "sparse.tif"}
    assert "not found" in reasons["dangling.webp"]
    assert "too large" in reasons["sparse.tif"]
    assert "not a file" in reasons["pipe.png"] and "not a file" in reasons["zeros.jpg"]
    assert all(reasons.values())
    assert store.item_count() == 2 and len(report.existing) == 1  # inside.png seen twice, stored once


def test_non_utf8_file_names_are_reported_not_fatal(store, tmp_path):
    folder = tmp_path / "names"
    write_image(folder / "good.png")
    latin1 = write_image(folder / "tmp.png", colour=(0, 0, 200))
    os.rename(latin1, os.fsencode(folder) + b"/caf\xe9-\xff.png")
    os.makedirs(os.fsencode(folder) + b"/d\xe9p\xf4t")
    write_image(Path(os.fsdecode(os.fsencode(folder) + b"/d\xe9p\xf4t/x.png")), colour=(9, 9, 9))
    report = import_images(store, [folder])
    assert len(report.added) == 1
    assert len(report.skipped) == 2
    for path, reason in report.skipped:
        path.encode("utf-8")  # shown to the user and stored: must be real text
        assert "UTF-8" in reason and "\\xe9" in path


def _drop_root_file_powers() -> None:
    """Runs in the child before exec: without CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH in its
    bounding set, root obeys file modes like everyone else (the setpriv trick)."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):
        if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) refused")


def _import_without_root_powers(catalog: Path, folder: Path) -> tuple[int, list[tuple[str, str]]]:
    code = (
        "import json, sys; from protoshelf.core.store import Store; from protoshelf.core.importer import import_images;"
        "r = import_images(Store(sys.argv[1]), [sys.argv[2]]);"
        "print(json.dumps([len(r.added), r.skipped]))"
    )
    done = subprocess.run([sys.executable, "-c", code, str(catalog), str(folder)], capture_output=True, text=True,
                          preexec_fn=_drop_root_file_powers, cwd=Path(__file__).parent.parent, timeout=120)
    assert done.returncode == 0, done.stderr
    added, skipped = json.loads(done.stdout)
    return added, [tuple(s) for s in skipped]


@pytest.mark.slow
def test_unreadable_files_and_folders_are_reported(tmp_path):
    root = tmp_path / "shared"
    write_image(root / "good.png")
    write_image(root / "secret.png", colour=(1, 2, 3)).chmod(0)
    write_image(root / "locked" / "hidden.png", colour=(4, 5, 6))
    (root / "locked").chmod(0)
    try:
        if os.geteuid() == 0:
            try:
                added, skipped = _import_without_root_powers(tmp_path / "catalog.sqlite", root)
            except subprocess.SubprocessError as exc:
                pytest.skip(f"running as root, and this container will not drop CAP_DAC_OVERRIDE: {exc}")
        else:
            with Store(tmp_path / "catalog.sqlite") as store:
                report = import_images(store, [root])
            added, skipped = len(report.added), report.skipped
    finally:
        (root / "locked").chmod(0o755)
    reasons = {Path(p).name: r for p, r in skipped}
    assert added == 1, skipped
    assert reasons == {"secret.png": "permission denied", "locked": "cannot open folder (permission denied)"}
