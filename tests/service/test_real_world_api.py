"""Files as people send them, through the real HTTP API: canvas drawings and sideways phone photos."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from model.rendering.digit import render
from tests.service.helpers import submit, wait_for

pytestmark = pytest.mark.slow

DIGITS = 10  # the first MNIST test digits: 7 2 1 0 4 1 4 9 5 9


def sideways(jpeg: bytes) -> bytes:
    """The photo as a phone held on its side stores it: pixels turned, an EXIF tag to turn them back."""
    stored = Image.open(io.BytesIO(jpeg)).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    buffer = io.BytesIO()
    stored.save(buffer, format="JPEG", quality=90, exif=exif.tobytes())
    return buffer.getvalue()


def test_canvas_drawings_and_phone_photos_get_the_right_labels(stack, mnist):
    digits, labels = mnist.x_test[:DIGITS], mnist.y_test[:DIGITS].tolist()
    canvases = [render(digit, "rgba", i) for i, digit in enumerate(digits)]
    photos = [render(digit, "photo", i) for i, digit in enumerate(digits)]
    photos = [sideways(photo) if i % 2 else photo for i, photo in enumerate(photos)]
    assert Image.open(io.BytesIO(canvases[0])).mode == "RGBA"

    ids = submit(stack.web_url, canvases) + submit(stack.web_url, photos, as_json=True)
    jobs = [wait_for(stack.web_url, job_id) for job_id in ids]

    assert [job["status"] for job in jobs] == ["succeeded"] * len(ids), jobs
    assert [job["result"]["label"] for job in jobs[:DIGITS]] == labels, "canvas drawings"
    assert [job["result"]["label"] for job in jobs[DIGITS:]] == labels, "photos"
