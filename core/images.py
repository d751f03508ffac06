"""Decoding product images safely and cheaply.

Every image in ProtoShelf is opened here, so that the same rules hold for import, embedding and
thumbnails: only the formats we support (no other Pillow plugin ever parses a file), a pixel
budget against decompression bombs, a scan budget against progressive-JPEG CPU bombs, EXIF
orientation applied, transparency composited on white (product shots on a white page), the first
frame of animations, and JPEG draft decoding so a 4000 px photo is never fully decoded for a
224 px model input.
"""
from __future__ import annotations

import functools
import hashlib
import io
import os
import re
import stat
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError, features

_AVIF = features.check("avif")  # in Pillow's wheels since 11.3; a Pillow built without libavif lacks it
SUPPORTED_FORMATS = {"JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF", "MPO"} | ({"AVIF"} if _AVIF else set())
PLUGINS = sorted(SUPPORTED_FORMATS - {"MPO"})
"""The Pillow plugins allowed to parse a file; the JPEG plugin opens MPO files itself."""
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".jpe", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
if _AVIF:
    IMAGE_SUFFIXES.add(".avif")
UNREAD_PICTURE_SUFFIXES = {
    ".heic", ".heif", ".avif", ".jxl", ".jp2", ".svg", ".psd", ".ico", ".eps", ".dng", ".cr2", ".cr3", ".nef", ".arw",
} - IMAGE_SUFFIXES
"""Pictures a folder may hold that are not read (iPhone photos, camera raw, vector art): counted in
an import's summary, so a folder of them does not look empty."""
MAX_PIXELS = 80_000_000
MAX_FILE_BYTES = 200 * 1024 * 1024
MAX_JPEG_SCANS = 32
"""Progressive JPEGs have about 10 scans. Each scan is a pass over every block of the image, so a
small file repeating a scan thousands of times keeps libjpeg busy for minutes."""
THUMBNAIL_SIDE = 128


class ImageError(ValueError):
    """An image that cannot be used, with the reason in words a merchandiser understands."""


def open_regular_file(path: Path):
    """The file opened for reading, once its type and size are checked and before a byte is read:
    a FIFO, /dev/zero or an 8 GB sparse file must be refused, not read (O_NONBLOCK: opening a
    FIFO does not wait for a writer)."""
    handle = open(path, "rb", opener=lambda p, flags: os.open(p, flags | getattr(os, "O_NONBLOCK", 0)))
    try:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ImageError("not a regular file (a folder, device or pipe)")
        check_file_size(info.st_size)
        return handle
    except BaseException:
        handle.close()
        raise


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open_regular_file(path) as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_file_size(size: int) -> None:
    """Refuse an empty or oversized file from its size alone, before anything reads it."""
    if size == 0:
        raise ImageError("empty file (0 bytes)")
    if size > MAX_FILE_BYTES:
        raise ImageError(f"file too large ({size / 2**20:.0f} MB)")


def open_image(source: Path | bytes, min_side: int | None = None, keep_alpha: bool = False,
               box: int | None = None) -> Image.Image:
    """Decode to RGB; with `min_side`, JPEGs are decoded at a reduced scale whose shorter side is
    not below it (the model's square is filled), with `box` one whose longer side is not below it
    (a picture shown whole in a square of that side).

    `keep_alpha`: a picture with transparency comes back RGBA instead of composited on white, for a
    caller that shrinks a huge one by pixel blocks before compositing it (core/model_input.py)."""
    try:
        if isinstance(source, (bytes, bytearray)):
            handle = io.BytesIO(source)
        else:
            handle = open_regular_file(Path(source))
        with handle, warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(handle, formats=PLUGINS)
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise ImageError(f"image too large ({width}×{height} pixels)")
            if image.format in {"JPEG", "MPO"}:
                _check_jpeg_scans(handle)
            if (min_side or box) and image.format in {"JPEG", "MPO"}:
                scale = min_side / min(image.size) if min_side else box / max(image.size)
                image.draft("RGB", _draft_size(image.size, scale))
            if image.format == "PNG":
                image = _decoded_by_libspng(handle, image) or image
            image.seek(0)
            image.load()
            ImageOps.exif_transpose(image, in_place=True)  # in place: no copy of an upright image
            image = _eight_bit(image)
            return rgb_or_rgba(image) if keep_alpha else on_white(image)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"image too large (possible decompression bomb): {exc}") from exc
    except FileNotFoundError as exc:
        raise ImageError("file not found") from exc
    except PermissionError as exc:
        raise ImageError("permission denied") from exc
    except IsADirectoryError as exc:
        raise ImageError("a folder, not an image file") from exc
    except UnidentifiedImageError as exc:
        raise ImageError("not an image, or a format ProtoShelf cannot read") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(f"damaged or truncated image ({exc})") from exc
    except Exception as exc:  # noqa: BLE001 - fuzzing shows Pillow's decoders leak TypeError and kin
        raise ImageError(f"damaged image (the decoder failed with {exc.__class__.__name__})") from exc


_MARKER = re.compile(rb"\xff+([^\x00\xff])")
_SCAN_END = re.compile(rb"\xff+[^\x00\xd0-\xd7\xff]")
"""Entropy-coded data ends at the first marker that is not a restart marker (0xFF00 is data)."""


def scan_markers(data: bytes) -> int:
    """How often the bytes FF DA (start of scan) occur: numpy counts in a sixth of the CPU time of
    `bytes.count`, and lets go of the GIL while it does."""
    octets = np.frombuffer(data, np.uint8)
    return int(np.count_nonzero((octets[:-1] == 0xFF) & (octets[1:] == 0xDA)))


def _check_jpeg_scans(handle) -> None:
    """Count start-of-scan markers before libjpeg is given the file. Entropy-coded data never holds
    the bytes FF DA, so a plain count bounds the number; only a file over the limit is walked
    segment by segment, so that FF DA inside a payload (say, an EXIF thumbnail) does not count."""
    position = handle.tell()
    handle.seek(0)
    data = handle.read()
    handle.seek(position)
    if scan_markers(data) <= MAX_JPEG_SCANS:
        return
    scans, at = 0, 2
    while scans <= MAX_JPEG_SCANS and (found := _MARKER.search(data, at)):
        marker, at = found[1][0], found.end()
        if marker == 0xD9:
            break
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:
            continue
        at += int.from_bytes(data[at : at + 2], "big")
        if marker == 0xDA:
            scans += 1
            end = _SCAN_END.search(data, at)
            at = end.start() if end else len(data)
    if scans > MAX_JPEG_SCANS:
        raise ImageError(f"JPEG with more than {MAX_JPEG_SCANS} scans (a CPU bomb; real photos have about 10)")


ORIENTATION_MARKS = (b"eXIf", b"Raw profile type exif", b"XML:com.adobe.xmp")
"""Where a PNG can say it is rotated (an eXIf chunk, ImageMagick's EXIF text, XMP), anywhere in
the file: Pillow finds those after the pixels only once it has decoded them."""


def _decoded_by_libspng(handle, image: Image.Image) -> Image.Image | None:
    """A plain 8-bit RGB or RGBA PNG decoded by libspng (imagecodecs), None for any other.

    Pillow inflates and unfilters a PNG row by row: 2.1 ms of CPU for a 300 px cut-out, the
    largest cost of embedding a catalog of cut-outs besides the backbone, against 1.4 ms with
    libspng and 1.0 ms with libdeflate inflating for it (core/png_decode.py).
    Pillow has already read the header (size, mode and every chunk before the pixels, under its
    limits); it decodes what this does not: palette, grey, 16-bit, tRNS, animations, pictures
    that may carry an orientation, and any file libspng refuses."""
    decode = _libspng()
    plain = image.mode in ("RGB", "RGBA") and image.tile and image.tile[0][3] == image.mode  # 16-bit: "RGB;16B"
    whole = plain and image.tile[0][1] == (0, 0, *image.size)  # an APNG's first frame may be smaller
    if decode is None or not whole or "transparency" in image.info or getattr(image, "is_animated", False):
        return None
    handle.seek(0)
    data = handle.read()
    if any(mark in data for mark in ORIENTATION_MARKS):
        return None
    try:
        return Image.fromarray(decode(data))
    except (RuntimeError, ValueError):  # imagecodecs.SpngError is a RuntimeError
        return None


@functools.cache
def _libspng():
    """The libspng decoder, with libdeflate inflating where this build of imagecodecs has both;
    None where it has no libspng (its stub would raise ImportError on every call)."""
    try:
        import imagecodecs

        if not imagecodecs.SPNG.available:
            return None
        from protoshelf.core import png_decode

        return png_decode.decode if png_decode.available() else imagecodecs.spng_decode
    except (ImportError, AttributeError):
        return None


def _draft_size(size: tuple[int, int], scale: float) -> tuple[int, int]:
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def _has_alpha(image: Image.Image) -> bool:
    """An alpha channel, or a transparent colour (PNG's tRNS, in palette, grey and RGB pictures)."""
    return image.mode in ("RGBA", "LA", "PA") or image.info.get("transparency") is not None


def _eight_bit(image: Image.Image) -> Image.Image:
    """16-bit grey (PNG, TIFF) scaled to 8 bits: converting it to RGB keeps the low 8 bits' worth
    and turns all but the darkest tenth of a scan white."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
        scaled = image.point(lambda value: value * (1 / 257))
        scaled.info = image.info
        return scaled
    return image


def rgb_or_rgba(image: Image.Image) -> Image.Image:
    """RGBA when the picture has transparency (an alpha channel or a tRNS colour), else RGB."""
    return _to_rgba(image) if _has_alpha(image) else on_white(image)


def _to_rgba(image: Image.Image) -> Image.Image:
    return image if image.mode == "RGBA" else image.convert("RGBA")


def on_white(image: Image.Image) -> Image.Image:
    """RGB, with any transparency composited on a white page (pasting through the alpha channel is
    a third faster than `Image.alpha_composite` and gives the same pixels up to rounding)."""
    if _has_alpha(image):
        canvas = Image.new("RGB", image.size, (255, 255, 255))
        rgba = _to_rgba(image)
        canvas.paste(rgba, (0, 0), rgba)
        return canvas
    return image if image.mode == "RGB" else image.convert("RGB")


def thumbnail_bytes(image: Image.Image, side: int = THUMBNAIL_SIDE) -> bytes:
    """A small JPEG for the grid; the catalog stores it so scrolling never touches originals."""
    small = image.copy()
    small.thumbnail((side, side), Image.Resampling.BILINEAR)
    out = io.BytesIO()
    small.save(out, "JPEG", quality=85, optimize=True)
    return out.getvalue()
