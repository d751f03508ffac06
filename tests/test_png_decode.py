"""PNG rows inflated by libdeflate, unfiltered by libspng: the same pixels, and libspng's own
verdict on any file the fast path does not take."""
import io
import zlib

import imagecodecs
import numpy as np
import pytest
from PIL import Image

from conftest import png_chunk
from protoshelf.core import png_decode

pytestmark = pytest.mark.skipif(not png_decode.available(), reason="this imagecodecs lacks libspng or libdeflate")


def png_bytes(pixels: np.ndarray, **options) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG", **options)
    return out.getvalue()


def noise(height: int, width: int, channels: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, channels), dtype=np.uint8)


def smooth(height: int, width: int, channels: int) -> np.ndarray:
    """A gradient: Pillow's encoder picks Sub, Up and Paeth filters for its rows."""
    y, x = np.mgrid[0:height, 0:width]
    planes = [(x * 3 + y) % 256, (x * y) % 256, (y * 5) % 256, (x + y * 7) % 256][:channels]
    return np.dstack(planes).astype(np.uint8)


def chunks(png: bytes):
    """(kind, payload, CRC) of each chunk."""
    at = 8
    while at < len(png):
        length = int.from_bytes(png[at : at + 4], "big")
        yield png[at + 4 : at + 8], png[at + 8 : at + 8 + length], int.from_bytes(png[at + 8 + length : at + 12 + length], "big")
        at += 12 + length


@pytest.mark.parametrize("pixels,options", [
    (noise(37, 53, 3), {}),
    (noise(37, 53, 4), {}),
    (smooth(300, 300, 4), {"optimize": True}),
    (smooth(200, 150, 3), {"compress_level": 0}),
    (noise(700, 500, 3), {}),  # rows over 1 MB: many stored blocks, several IDAT chunks in the file
    (noise(15, 1456, 3), {}),  # rows of exactly one stored block (65535 bytes)
    (noise(1, 1, 4), {}),
])
def test_libspng_unfilters_the_stored_rows_to_the_files_pixels(pixels, options):
    data = png_bytes(pixels, **options)

    stored = png_decode._with_rows_stored(data)

    assert np.array_equal(imagecodecs.spng_decode(stored), pixels)
    assert np.array_equal(png_decode.decode(data), pixels)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(stored))), pixels)
    assert all(zlib.crc32(kind + payload) == crc for kind, payload, crc in chunks(stored))  # neither decoder checks IDAT's
    stream = zlib.decompressobj()
    rows = stream.decompress(b"".join(payload for kind, payload, _ in chunks(stored) if kind == b"IDAT"))
    assert len(rows) == pixels.shape[0] * (1 + pixels[0].size)
    assert stream.eof and not stream.unused_data  # a final block, then the Adler-32: a whole zlib stream


def test_libspng_is_given_the_rows_stored_not_the_file(monkeypatch):
    data = png_bytes(smooth(120, 90, 4))
    given = []
    spng = imagecodecs.spng_decode
    monkeypatch.setattr(imagecodecs, "spng_decode", lambda png: given.append(png) or spng(png))

    png_decode.decode(data)

    assert len(given) == 1
    stream = b"".join(payload for kind, payload, _ in chunks(given[0]) if kind == b"IDAT")
    assert stream[2] & 0b110 == 0  # the first block is stored (BTYPE 00)
    assert len(zlib.decompress(stream)) == 120 * (1 + 90 * 4)


def with_chunks_around_the_pixels(data: bytes) -> bytes:
    """gAMA and tEXt before the first IDAT, tEXt after the last."""
    idat, iend = data.index(b"IDAT") - 4, data.index(b"IEND") - 4
    before = png_chunk(b"gAMA", (45455).to_bytes(4, "big")) + png_chunk(b"tEXt", b"Title\0a lamp")
    return data[:idat] + before + data[idat:iend] + png_chunk(b"tEXt", b"Comment\0after") + data[iend:]


@pytest.mark.parametrize("extra", [{}, {"transparency": (1, 2, 3)}])
def test_the_chunks_before_the_pixels_are_kept_for_libspng(extra):
    data = with_chunks_around_the_pixels(png_bytes(smooth(40, 30, 3), **extra))

    stored = png_decode._with_rows_stored(data)

    assert stored is not None and b"gAMA" in stored and b"after" not in stored
    assert np.array_equal(imagecodecs.spng_decode(stored), imagecodecs.spng_decode(data))  # with tRNS: RGBA both


def interlaced(data: bytes) -> bytes:
    """`data` saying it is Adam7-interlaced (Pillow writes no interlaced PNGs)."""
    header = data[12:28] + b"\x01"
    return data[:12] + header + zlib.crc32(header).to_bytes(4, "big") + data[33:]


@pytest.mark.parametrize("make", [
    lambda: interlaced(png_bytes(noise(30, 20, 4))),
    lambda: png_bytes(noise(30, 20, 1)[..., 0]),
    lambda: png_bytes(noise(30, 20, 3)).replace(b"IHDR", b"IHDX"),
    lambda: b"not a png at all",
])
def test_files_the_fast_path_does_not_take_go_to_libspng_as_they_are(make):
    assert png_decode._with_rows_stored(make()) is None


def test_rows_over_the_memory_limit_go_to_libspng_as_they_are(monkeypatch):
    data = png_bytes(noise(40, 40, 3))
    monkeypatch.setattr(png_decode, "MAX_ROWS_BYTES", 40 * (1 + 40 * 3) - 1)

    assert png_decode._with_rows_stored(data) is None
    assert np.array_equal(png_decode.decode(data), noise(40, 40, 3))


def test_a_flood_of_idat_chunks_is_left_to_libspng():
    pixels = noise(20, 20, 3)
    data = png_bytes(pixels)
    first = data.index(b"IDAT") - 4
    flood = data[:first] + png_chunk(b"IDAT", b"") * png_decode.MAX_CHUNKS + data[first:]

    assert png_decode._with_rows_stored(flood) is None
    assert np.array_equal(png_decode.decode(flood), pixels)


@pytest.mark.parametrize("damage", ["flipped byte", "cut short"])
def test_a_damaged_stream_gets_libspngs_own_verdict(damage):
    data = bytearray(png_bytes(noise(60, 60, 4)))
    idat = data.index(b"IDAT")
    if damage == "flipped byte":
        data[idat + 40] ^= 0xFF
    else:
        data = data[: idat + 200]

    assert png_decode._with_rows_stored(bytes(data)) is None
    with pytest.raises(RuntimeError):
        png_decode.decode(bytes(data))


def test_an_idat_chunk_with_a_wrong_crc_is_left_to_libspng():
    """libspng checks every IDAT chunk's CRC but the last one's; here, each one is checked."""
    data = bytearray(png_bytes(noise(60, 60, 4)))
    idat = data.index(b"IDAT")
    data[idat + 4 + int.from_bytes(data[idat - 4 : idat], "big")] ^= 0xFF

    assert png_decode._with_rows_stored(bytes(data)) is None
