"""The Python client against a real stack: chunking by the server's limit, order, per-image errors.
Retries and giving up are tested against a scripted server in tests/fast/test_client.py."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from PIL import Image

from client import DigitsClient
from tests.conftest import OUTPUT, png_bytes
from tests.service.helpers import running_stack

SERVER_LIMIT = 8  # images per request on this module's stack, so 50 images need several requests

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def small_stack():
    """A stack whose web takes at most SERVER_LIMIT images per request."""
    with running_stack(OUTPUT / __name__, web_env={"MAX_IMAGES_PER_REQUEST": str(SERVER_LIMIT)}) as running:
        yield running


def accepted_posts(stack) -> int:
    """Prediction requests the web has accepted so far, from its access log lines."""
    log = (stack.log_dir / "web.log").read_text(errors="replace")
    return len(re.findall(r'"message": "POST /api/v1/predictions\S* 20[02]"', log))


def test_order_is_kept_across_chunked_requests_and_bad_images_fail_alone(small_stack, mnist):
    digits = [png_bytes(x) for x in mnist.x_test[:50]]
    ppm = io.BytesIO()
    Image.fromarray(mnist.x_test[50]).save(ppm, format="PPM")  # Pillow reads it; the server refuses the format
    blank = png_bytes(np.zeros((28, 28), np.uint8))
    images = digits[:7] + [b"just some text\n"] + digits[7:30] + [ppm.getvalue()] + digits[30:] + [blank]
    client = DigitsClient(small_stack.web_url)  # starts at the server's default limit and learns the real one
    posts_before = accepted_posts(small_stack)

    predictions = client.predict(images)
    chunked_posts = accepted_posts(small_stack) - posts_before

    assert [p.source for p in predictions] == [f"images[{i}]" for i in range(len(images))]
    text, refused, blank_answer = predictions[7], predictions[31], predictions[-1]
    assert text.label is None and text.error["code"] == "not_an_image" and text.job_id is None
    assert refused.label is None and refused.error["code"] == "unsupported_format"
    assert blank_answer.label is None and blank_answer.error is None and "blank" in blank_answer.reason
    answered = [p for i, p in enumerate(predictions) if i not in (7, 31, len(images) - 1)]
    assert all(p.error is None for p in answered)
    labels = np.array([p.label for p in answered])
    assert (labels == mnist.y_test[:50]).sum() >= 48
    # Order: each image's answer is the one it gets when sent alone.
    alone = [client.predict([image])[0] for image in digits]
    assert [p.label for p in answered] == [p.label for p in alone]
    assert [p.probabilities for p in answered] == [p.probabilities for p in alone]
    # The 51 images Pillow could read went in chunks of the server's limit, learnt from its 413.
    assert client.max_images_per_request == SERVER_LIMIT
    assert chunked_posts >= -(-51 // SERVER_LIMIT), chunked_posts


def test_paths_and_pil_images_are_accepted_alongside_bytes(small_stack, mnist, tmp_path):
    path = tmp_path / "first.png"
    path.write_bytes(png_bytes(mnist.x_test[0]))
    missing = tmp_path / "missing.png"
    pil_image = Image.fromarray(mnist.x_test[1])

    first, second, third = DigitsClient(small_stack.web_url).predict([path, pil_image, missing])

    assert (first.source, first.label) == (str(path), int(mnist.y_test[0]))
    assert first.model_version == 1 and len(first.probabilities) == 10 and first.confidence > 0.5
    assert second.label == int(mnist.y_test[1])
    assert third.label is None and third.error["code"] == "unreadable"
