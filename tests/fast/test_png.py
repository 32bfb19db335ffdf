"""PNG files read and written without Pillow's plugin machinery (model/png.py) must say what
Pillow says of them, and leave to Pillow whatever they do not read exactly as it does."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from model.images import png as plain_png
from model.images.png import header as png_header
from model.images.preprocess import NotAnImage, decode

rng = np.random.default_rng(0)
IMAGES = {
    "1": Image.fromarray(rng.integers(0, 2, (5, 9), dtype=np.uint8) * 255).convert("1"),
    "L": Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)),
    "I;16": Image.fromarray(rng.integers(0, 65536, (7, 3), dtype=np.uint16)),
    "RGB": Image.fromarray(rng.integers(0, 256, (4, 6, 3), dtype=np.uint8)),
    "RGBA": Image.fromarray(rng.integers(0, 256, (4, 6, 4), dtype=np.uint8)),
    "LA": Image.fromarray(rng.integers(0, 256, (3, 3, 2), dtype=np.uint8), mode="LA"),
    "P": Image.fromarray(rng.integers(0, 256, (8, 2, 3), dtype=np.uint8)).convert("P"),
}


def png(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **options)
    return buffer.getvalue()


@pytest.mark.parametrize(("mode", "options"), [(mode, {}) for mode in sorted(IMAGES)] + [("P", {"bits": 4})])
def test_a_png_header_says_what_pillow_says(mode, options):
    data = png(IMAGES[mode], **options)
    opened = Image.open(io.BytesIO(data))
    assert png_header(data) == (opened.width, opened.height, opened.mode)  # so the same decoded bytes


def test_anything_but_a_well_formed_png_header_is_left_to_pillow():
    good = png(IMAGES["L"])
    broken_crc = good[:29] + bytes([good[29] ^ 1]) + good[30:]
    header = good[12:16] + b"\0\0\0\0" + good[20:29]
    zero_width = good[:12] + header + struct.pack(">I", zlib.crc32(header)) + good[33:]
    for data in (b"", good[:20], b"GIF89a" + good[6:], broken_crc, zero_width):
        assert png_header(data) is None


def pillow_reads(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def inflated(parts: plain_png.Plain) -> Image.Image:
    return Image.frombytes(parts.mode, (parts.width, parts.height), parts.compressed, "zip", parts.mode)


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA"])
@pytest.mark.parametrize("options", [{}, {"optimize": True}, {"compress_level": 0}, {"dpi": (300, 300)}])
def test_a_plain_png_reads_as_pillow_reads_it(mode, options):
    # Big enough for Pillow's encoder to use every row filter (sub, up, average, paeth) and several IDATs.
    smooth = np.add.outer(np.arange(300), np.arange(200)) % 256
    noisy = (smooth + rng.integers(0, 12, smooth.shape)).astype(np.uint8)
    image = Image.fromarray(noisy).convert(mode) if mode != "LA" else Image.merge("LA", [Image.fromarray(noisy)] * 2)
    data = png(image, **options)
    parts = plain_png.plain(data)
    assert parts is not None
    assert inflated(parts).mode == pillow_reads(data).mode == mode
    assert np.array_equal(np.asarray(inflated(parts)), np.asarray(pillow_reads(data)))


def test_mnist_digits_read_plain_as_pillow_reads_them(mnist):
    for digit in mnist.x_test[:50]:
        data = png(Image.fromarray(digit))
        assert np.array_equal(np.asarray(inflated(plain_png.plain(data))), digit)
        assert np.array_equal(np.asarray(decode(data)), digit)


def with_chunk(data: bytes, kind: bytes, body: bytes) -> bytes:
    """``data`` with a chunk inserted right after its header chunk."""
    chunk = struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    return data[:33] + chunk + data[33:]


def with_header_byte(data: bytes, offset: int, value: int) -> bytes:
    """``data`` with one byte of its header chunk changed (and the chunk's CRC to match)."""
    header = data[12:offset] + bytes([value]) + data[offset + 1 : 29]
    return data[:12] + header + struct.pack(">I", zlib.crc32(header)) + data[33:]


def test_anything_but_a_plain_png_is_left_to_pillow():
    gray = png(IMAGES["L"])
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: turned
    idat = gray.index(b"IDAT") - 4
    others = {
        "palette": png(IMAGES["P"]),
        "1 bit": png(IMAGES["1"]),
        "16 bits": png(IMAGES["I;16"]),
        "interlaced": with_header_byte(gray, 28, 1),  # Pillow writes no interlaced PNGs
        "transparency": png(IMAGES["L"], transparency=0),
        "EXIF orientation": png(IMAGES["L"], exif=exif),
        "text (may hold XMP)": with_chunk(gray, b"iTXt", b"XML:com.adobe.xmp\0\0\0\0\0<x/>"),
        "damaged chunk": gray[: idat + 10] + bytes([gray[idat + 10] ^ 1]) + gray[idat + 11 :],
        "no end": gray[:-12],
        "JPEG": b"\xff\xd8\xff" + gray[3:],
    }
    for name, data in others.items():
        assert plain_png.plain(data) is None, name


def test_a_plain_png_with_broken_pixel_data_is_not_an_image():
    data = png(IMAGES["L"])
    idat = data.index(b"IDAT")
    length = struct.unpack(">I", data[idat - 4 : idat])[0]
    garbage = b"\x00" * length
    broken = data[: idat + 4] + garbage + struct.pack(">I", zlib.crc32(b"IDAT" + garbage)) + data[idat + 8 + length :]
    assert plain_png.plain(broken) is not None  # well-formed chunks: read plain, so the inflater must refuse it
    with pytest.raises(NotAnImage):
        decode(broken)


def test_a_plain_png_over_the_limits_is_refused_before_it_is_inflated():
    data = png(Image.new("L", (3000, 3000)))
    assert plain_png.plain(data) is not None
    with pytest.raises(NotAnImage, match="over the limit of 1000000 pixels"):
        decode(data, max_pixels=1_000_000)


def test_written_grayscale_files_read_back_exactly():
    stack = rng.integers(0, 256, (3, 28, 28), dtype=np.uint8)
    for pixels, data in zip(stack, plain_png.gray_files(stack), strict=True):
        assert np.array_equal(np.asarray(pillow_reads(data)), pixels)  # Pillow checks every chunk's CRC
