"""Plain 8-bit PNGs decoded by libspng with the inflating done by libdeflate (both in imagecodecs).

libspng inflates with zlib, and inflating was 1.0 of its 1.4 ms of CPU for a 300 px cut-out;
libdeflate inflates the same stream in half that time. libspng takes no other inflater, so the
rows are inflated here and handed to it in a PNG whose stream is stored (deflate's uncompressed
blocks): libspng then copies them instead of inflating, and unfilters them in C as before. The
pixels are the same to the bit. The stream's Adler-32 and each IDAT chunk's CRC are checked here;
the chunks after the pixels are not read (a file cut short after them decodes). A file this does
not take (interlaced, odd depth, a damaged stream or chunk, thousands of IDAT chunks) goes to
libspng as it is, which then gives the caller its own verdict.
"""
from __future__ import annotations

import struct

import imagecodecs
import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHANNELS = {2: 3, 6: 4}
"""PNG colour type -> bytes per 8-bit pixel: RGB and RGBA, the pictures libspng decodes for us."""
MAX_ROWS_BYTES = 32 << 20
"""Above this (a 2800 px RGBA picture) the inflated copy costs more memory than its time is worth."""
MAX_CHUNKS = 4096
"""Chunks walked here before the file is left to libspng, which walks them in C: a 200 MB file
of empty chunks took 44 s in this Python loop."""
STORED_BLOCK = 65535
IEND = b"\0\0\0\0IEND\xaeB`\x82"


def available() -> bool:
    """Whether this build of imagecodecs has both libraries (a build without a codec has stubs)."""
    try:
        return bool(imagecodecs.SPNG.available and imagecodecs.DEFLATE.available
                    and imagecodecs.deflate_adler32 and imagecodecs.deflate_crc32)
    except AttributeError:
        return False


def decode(data: bytes) -> np.ndarray:
    """HWC uint8 pixels of a PNG (imagecodecs.SpngError, a RuntimeError, when libspng refuses it)."""
    stored = _with_rows_stored(data)
    if stored is not None:
        try:
            return imagecodecs.spng_decode(stored)
        except (RuntimeError, ValueError):
            pass
    return imagecodecs.spng_decode(data)


def _with_rows_stored(data: bytes) -> bytes | None:
    """The same PNG with its rows inflated and stored, None for one this leaves to libspng."""
    header = _header(data)
    if header is None:
        return None
    width, height, channels, first_idat = header
    rows_size = height * (1 + width * channels)  # each row starts with its filter byte
    if rows_size > MAX_ROWS_BYTES:
        return None
    idat = _idat_payloads(data, first_idat)
    if not idat:
        return None
    try:
        stream = idat[0] if len(idat) == 1 else b"".join(idat)
        rows = imagecodecs.deflate_decode(stream, out=rows_size)  # zlib's Adler-32 checked
    except (RuntimeError, ValueError):
        return None
    if len(rows) != rows_size:
        return None
    parts = [b"\x78\x01"]  # a zlib header: deflate, 32 KB window, no dictionary
    view = memoryview(rows)
    for start in range(0, rows_size, STORED_BLOCK):
        block = view[start : start + STORED_BLOCK]
        parts += (struct.pack("<BHH", start + STORED_BLOCK >= rows_size, len(block), len(block) ^ 0xFFFF), block)
    parts.append(struct.pack(">I", imagecodecs.deflate_adler32(rows)))
    crc = imagecodecs.deflate_crc32(b"IDAT")
    for part in parts:
        crc = imagecodecs.deflate_crc32(part, crc)
    length = sum(len(part) for part in parts)
    return b"".join([data[:first_idat], struct.pack(">I", length), b"IDAT", *parts, struct.pack(">I", crc), IEND])


def _header(data: bytes) -> tuple[int, int, int, int] | None:
    """(width, height, channels, offset of the first IDAT chunk) of a non-interlaced 8-bit RGB or
    RGBA PNG; the chunks before the pixels are kept as they are (libspng reads them)."""
    if data[:8] != SIGNATURE or data[12:16] != b"IHDR" or len(data) < 33:
        return None
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", data[16:29])
    if depth != 8 or colour not in CHANNELS or interlace or not width or not height:
        return None
    at = 8
    for _ in range(MAX_CHUNKS):
        if at + 8 > len(data):
            break
        length, kind = struct.unpack(">I4s", data[at : at + 8])
        if kind == b"IDAT":
            return width, height, CHANNELS[colour], at
        at += 12 + length
    return None


def _idat_payloads(data: bytes, at: int) -> list[memoryview] | None:
    """The compressed stream, split over consecutive IDAT chunks from `at` on, each chunk's CRC
    checked; None when one is damaged or cut short, or there are too many to walk here."""
    view, payloads = memoryview(data), []
    while at + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[at : at + 8])
        if kind != b"IDAT":
            return payloads
        end = at + 8 + length
        if end + 4 > len(data) or len(payloads) == MAX_CHUNKS:
            return None
        if imagecodecs.deflate_crc32(view[at + 4 : end]) != int.from_bytes(data[end : end + 4], "big"):
            return None
        payloads.append(view[at + 8 : end])
        at = end + 4
    return payloads
