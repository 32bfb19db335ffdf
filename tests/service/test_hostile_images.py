"""Images the web accepts on their header but that are odd or broken inside, through a real worker.

Truncated files must fail in the worker with a reason (alone, not their batch); animated GIFs,
16-bit and CMYK images must be read and answered. Every answer must match the OpenAPI document.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import requests
from PIL import Image

from tests.conftest import openapi_validator
from tests.service.helpers import wait_for

pytestmark = pytest.mark.slow


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def document(stack) -> dict:
    return requests.get(f"{stack.web_url}/api/v1/openapi.json", timeout=10).json()


def submit_and_wait(stack, document: dict, named: list[tuple[str, bytes]]) -> list[dict]:
    response = requests.post(
        f"{stack.web_url}/api/v1/predictions",
        files=[("image", (name, data, "application/octet-stream")) for name, data in named],
        timeout=30,
    )
    assert response.status_code == 202, response.text
    openapi_validator(document, "PredictionsAccepted").validate(response.json())
    jobs = [wait_for(stack.web_url, job["job_id"]) for job in response.json()["jobs"]]
    for job in jobs:
        openapi_validator(document, "JobRecord").validate(job)
    batch = requests.get(stack.web_url + response.json()["batch_url"], timeout=10).json()
    openapi_validator(document, "Batch").validate(batch)
    return jobs


def test_truncated_png_and_jpeg_fail_in_the_worker_with_a_reason_and_alone(stack, document, mnist):
    seven, two = mnist.x_test[0], mnist.x_test[1]
    png = encode(Image.fromarray(seven), "PNG")
    jpeg = encode(Image.fromarray(255 - two).resize((280, 280)), "JPEG", quality=90)
    jobs = submit_and_wait(
        stack,
        document,
        [
            ("half.png", png[: len(png) // 2]),
            ("whole.png", png),
            ("half.jpg", jpeg[: len(jpeg) // 2]),
            ("whole.jpg", jpeg),
        ],
    )
    broken, good = jobs[0::2], jobs[1::2]
    for job in broken:
        assert job["status"] == "failed" and job["result"] is None
        assert job["error"]["code"] == "invalid_image" and "truncated" in job["error"]["message"]
    assert [job["status"] for job in good] == ["succeeded", "succeeded"]
    assert [job["result"]["label"] for job in good] == [7, 2]


def test_an_animated_gif_is_read_from_its_first_frame(stack, document, mnist):
    first, second = Image.fromarray(mnist.x_test[0]), Image.fromarray(mnist.x_test[1])  # a 7, then a 2
    gif = encode(first, "GIF", save_all=True, append_images=[second], duration=100, loop=0)
    assert Image.open(io.BytesIO(gif)).n_frames == 2
    (job,) = submit_and_wait(stack, document, [("anim.gif", gif)])
    assert job["status"] == "succeeded" and job["result"]["label"] == 7


def test_sixteen_bit_and_cmyk_images_are_answered(stack, document, mnist):
    digits = [(mnist.x_test[i], int(mnist.y_test[i])) for i in (2, 3, 4)]
    sixteen = [encode(Image.fromarray(pixels.astype(np.uint16) * 257), "PNG") for pixels, _ in digits]
    cmyk = [encode(Image.fromarray(255 - pixels).convert("CMYK"), "JPEG", quality=95) for pixels, _ in digits]
    assert Image.open(io.BytesIO(sixteen[0])).mode == "I;16" and Image.open(io.BytesIO(cmyk[0])).mode == "CMYK"
    cmyk_tiff = encode(Image.fromarray(255 - digits[0][0]).convert("CMYK"), "TIFF")
    jobs = submit_and_wait(
        stack,
        document,
        [(f"{i}.png", data) for i, data in enumerate(sixteen)]
        + [(f"{i}.jpg", data) for i, data in enumerate(cmyk)]
        + [("0.tiff", cmyk_tiff)],
    )
    assert all(job["status"] == "succeeded" for job in jobs), jobs
    expected = [label for _, label in digits] * 2 + [digits[0][1]]
    assert [job["result"]["label"] for job in jobs] == expected
