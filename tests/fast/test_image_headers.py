"""The web judges uploads from their header bytes alone (model/images/headers.py): it must say of
every polite file what Pillow says (format, size, decoded bytes), and refuse hostile headers
(strip tables, segment and block chains the file sizes itself) at a cost bounded by constants,
through the app as a clear 4xx beside polite requests that are accepted."""

from __future__ import annotations

import io
import time

import pytest
from PIL import Image

from bench.hostile_files import gif_with_extension_blocks, jpeg_with_app_segments, tiff_with_strips
from model.images import headers
from model.images.decode_cost import decoded_bytes
from model.images.headers import NotReadable, TooComplex, Unsupported, read_header
from tests.fast.test_api_validation import _empty_redis, app, assert_rejected, post_files, web  # noqa: F401 (fixtures)


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def gradient(mode: str, size: tuple[int, int]) -> Image.Image:
    return Image.linear_gradient("L").resize(size).convert(mode)


POLITE = [
    ("PNG", "L", (28, 28), {}),
    ("PNG", "RGBA", (64, 40), {}),
    ("PNG", "P", (30, 20), {}),
    ("JPEG", "L", (280, 280), {"quality": 90}),
    ("JPEG", "RGB", (1600, 1200), {"quality": 80}),  # decoded at a half
    ("JPEG", "RGB", (4200, 600), {"quality": 80}),  # not reduced: its short side is small
    ("JPEG", "CMYK", (1100, 1100), {"quality": 90}),
    ("JPEG", "RGB", (300, 200), {"exif": b"Exif\0\0MM\0*\0\0\0\x08\0\0\0\0\0\0", "icc_profile": b"\0" * 70000}),
    ("GIF", "L", (28, 28), {}),
    ("GIF", "P", (300, 100), {}),
    ("BMP", "L", (28, 28), {}),
    ("BMP", "RGB", (41, 13), {}),
    ("BMP", "1", (17, 9), {}),
    ("WEBP", "RGB", (100, 60), {"quality": 80}),
    ("WEBP", "RGB", (100, 60), {"lossless": True}),
    ("WEBP", "RGBA", (100, 60), {"quality": 80}),
    ("TIFF", "L", (28, 28), {}),
    ("TIFF", "RGB", (500, 700), {"compression": "tiff_lzw"}),
    ("TIFF", "CMYK", (28, 28), {}),
    ("TIFF", "1", (33, 17), {}),
    ("TIFF", "I;16", (28, 28), {}),
    ("TIFF", "RGB", (300, 300), {"compression": "raw"}),
]


@pytest.mark.parametrize(("fmt", "mode", "size", "options"), POLITE, ids=lambda v: str(v)[:20])
def test_the_header_says_what_pillow_says(fmt, mode, size, options):
    data = encode(gradient(mode, size), fmt, **options)
    opened = Image.open(io.BytesIO(data))
    found = read_header(data)
    assert (found.format, found.width, found.height) == (opened.format, opened.width, opened.height)
    assert found.decoded_bytes == decoded_bytes(opened)  # so web and worker judge the cost alike


def test_a_multi_picture_jpeg_is_read_as_pillow_reads_it():
    first, second = gradient("RGB", (200, 100)), gradient("RGB", (50, 50))
    data = encode(first, "MPO", save_all=True, append_images=[second])
    opened = Image.open(io.BytesIO(data))
    found = read_header(data)
    assert (found.format, found.width, found.height) == (opened.format, 200, 100) == ("MPO", 200, 100)


HOSTILE = {
    "1x2 TIFF with 400,000 strip offsets": tiff_with_strips(400_000),
    "JPEG with 100,000 empty APP segments": jpeg_with_app_segments(100_000),
    "GIF with 100,000 comment sub-blocks": gif_with_extension_blocks(100_000),
    "TIFF of 20,000 strips, as its geometry says": tiff_with_strips(20_000, width=1, height=20_000),
    "JPEG with 100,000 fill bytes": b"\xff\xd8" + b"\xff" * 100_000 + b"\xd9",
}


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_headers_are_refused_with_bounded_work(name):
    data = HOSTILE[name]
    started = time.process_time()
    with pytest.raises(TooComplex):
        read_header(data)
    assert time.process_time() - started < 0.05  # constants bound it, whatever the file declares


def test_pillow_itself_pays_for_what_the_file_declares():
    """Why the web no longer opens uploads: the same TIFF costs Pillow a walk of every strip."""
    started = time.process_time()
    Image.open(io.BytesIO(HOSTILE["1x2 TIFF with 400,000 strip offsets"]))
    assert time.process_time() - started > 0.1


def test_a_tiff_within_the_bounds_is_read():
    data = tiff_with_strips(2)
    assert read_header(data) == headers.Header("TIFF", 1, 2, "L", 2)
    assert Image.open(io.BytesIO(data)).size == (1, 2)


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"P6\n1 1\n255\n\0\0\0", Unsupported),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 30, NotReadable),
        (b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", NotReadable),  # no frame
        (b"\xff\xd8\xff\xe0\x00", NotReadable),  # cut short
        (b"II*\x00\xff\xff\xff\xff", NotReadable),
        (b"RIFF\0\0\0\0WEBPVP8 ", NotReadable),
        (b"BM" + b"\0" * 20, NotReadable),
        (b"hello", NotReadable),
    ],
)
def test_broken_or_foreign_headers_are_refused(data, error):
    with pytest.raises(error):
        read_header(data)


@pytest.mark.parametrize("name", ["1x2 TIFF with 400,000 strip offsets", "JPEG with 100,000 empty APP segments"])
def test_the_app_answers_hostile_files_with_a_clear_4xx_and_polite_ones_beside_them(web, name):  # noqa: F811 (the fixture)
    client, db = web
    data = HOSTILE[name][:190_000]  # under the test app's MAX_IMAGE_BYTES; the header is what counts
    if name.startswith("1x2 TIFF"):
        data = tiff_with_strips(20_000)  # 160 KB: the same shape, within the test's byte limit
    started = time.process_time()
    response = post_files(client, [("image", ("hostile", data, "application/octet-stream"))])
    spent = time.process_time() - started
    assert_rejected(response, 415, "image_too_complex", db)
    assert "strip" in response.json["error"]["message"] or "segments" in response.json["error"]["message"]
    assert spent < 0.05, f"{spent:.3f} s of CPU to refuse it"
    polite = encode(gradient("L", (28, 28)), "TIFF" if "TIFF" in name else "JPEG")
    accepted = post_files(client, [("image", ("polite", polite, "application/octet-stream"))])
    assert accepted.status_code == 202, accepted.text
