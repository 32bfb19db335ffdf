"""A predict worker's memory is bounded: an image is charged for what reading it holds at its
peak (the float32 and RGBA copies preprocessing makes), not only its decoded pixels; and a worker
past WORKER_MEMORY_MB after a batch records it, leaves with a failing status and is started again
by its supervisor."""

from __future__ import annotations

import io

import numpy as np
import pytest
import redis
from PIL import Image

from jobs import workers
from model.images.decode_cost import working_set_bytes
from model.images.preprocess import NotADigit, TooCostly, preprocess
from stack.processes import PREDICT_QUEUES
from tests.conftest import OUTPUT, png_bytes
from tests.service.helpers import running_stack, submit, wait_for


def sixteen_bit_png(side: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((side, side), 40000, dtype=np.uint16)).save(buffer, format="PNG")
    return buffer.getvalue()


def rgba_png(side: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGBA", (side, side), (0, 0, 0, 0)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(("make", "mode", "decoded_per_pixel"), [(sixteen_bit_png, "I;16", 2), (rgba_png, "RGBA", 4)])
def test_an_image_is_charged_for_its_working_set_not_only_its_pixels(make, mode, decoded_per_pixel):
    side = 1000
    decoded = side * side * decoded_per_pixel
    charged = working_set_bytes(side, side, mode)
    assert charged >= 3 * decoded, "the float32 or RGBA copies are not counted"
    # Under the old rule (decoded size alone) this limit let the image through.
    with pytest.raises(TooCostly):
        preprocess(make(side), max_pixels=10**8, max_decoded_bytes=2 * decoded)
    with pytest.raises(NotADigit):  # within its working set it is read (and found blank)
        preprocess(make(side), max_pixels=10**8, max_decoded_bytes=charged)


def test_a_plain_gray_image_costs_little_more_than_its_pixels():
    assert working_set_bytes(1000, 1000, "L") <= 2 * 1000 * 1000


@pytest.mark.slow
def test_a_predict_worker_past_its_memory_bound_records_its_batch_and_exits_failing(mnist):
    log_dir = OUTPUT / "test_memory_bound"
    wanted = {"p1": {"queues": PREDICT_QUEUES, "env": {"WORKER_MEMORY_MB": "1"}}}  # any worker with a model is over
    with running_stack(log_dir, workers=wanted) as stack:
        (job_id,) = submit(stack.web_url, [png_bytes(mnist.x_test[0])])
        stack.processes["p1"].wait(timeout=60)
        assert stack.processes["p1"].returncode == 70
        assert wait_for(stack.web_url, job_id, timeout=30)["result"]["label"] == 7, "its batch was not recorded"
        assert "memory" in (log_dir / "p1.log").read_text()
        live = workers.live(redis.Redis.from_url(stack.redis_url))
        assert not [w for w in live if w.ready], "still said to be ready"
