"""Numbers through the service: ``read=number`` on a submission, over real HTTP.

A real stack (Redis, a Celery worker with the shipped model, gunicorn) for numbers read from
the JSON API, the ``digits`` command, ``DigitsClient`` and the Recognise page's canvas in Chromium.
What the web decides alone (which ``read`` values it takes, what it stores on the record) is
tested in process in tests/fast/test_number_requests.py; model/segment.py's own reading in
tests/fast/test_numbers.py.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
import requests
from PIL import Image

from model.rendering.number import render_number
from tests.conftest import OUTPUT, openapi_validator, png_bytes
from tests.service.helpers import draw, running_stack, wait_for


def png(width: int = 120, height: int = 60) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (width, height), 255).save(buffer, format="PNG")
    return buffer.getvalue()


MAX_DIGITS = 6  # the stack's MAX_DIGITS_PER_NUMBER, low enough for an 8-digit number to go over


@pytest.fixture(scope="module")
def stack():
    with running_stack(OUTPUT / "test_number_jobs", env={"MAX_DIGITS_PER_NUMBER": str(MAX_DIGITS)}) as running:
        yield running


def number_of_test_digits(mnist, count: int, index: int = 0):
    """A number of genuine MNIST test digits on paper, with gaps: model/render_numbers.py's. The
    indices used below are of numbers the shipped model reads right (these tests are of the
    service's plumbing; tests/fast/test_numbers.py holds the accuracy floors): (2, 0), "78", is read "75"."""
    return render_number(mnist.x_test, mnist.y_test, count, "gap", "paper", index)


@pytest.mark.slow
def test_a_number_through_the_json_api_comes_back_digit_by_digit(stack, mnist):
    number = number_of_test_digits(mnist, 4)
    body = {"images": [base64.b64encode(number.data).decode()], "read": "number"}
    response = requests.post(f"{stack.web_url}/api/v1/predictions", json=body, timeout=30)
    assert response.status_code == 202, response.text
    job = wait_for(stack.web_url, response.json()["jobs"][0]["job_id"])
    assert job["status"] == "succeeded" and job["read"] == "number", job
    result = job["result"]
    assert result["text"] == number.text
    assert [d["label"] for d in result["digits"]] == [int(c) for c in number.text]
    for digit, truth in zip(result["digits"], number.boxes, strict=True):
        assert iou(digit["box"], truth) > 0.5  # in the sent image's pixels
        assert Image.open(io.BytesIO(base64.b64decode(digit["input_png"]))).size == (28, 28)
        assert len(digit["probabilities"]) == 10 and digit["confidence"] == max(digit["probabilities"])
    assert 0 < result["confidence"] <= min(d["confidence"] for d in result["digits"])
    document = requests.get(f"{stack.web_url}/api/v1/openapi.json", timeout=10).json()
    openapi_validator(document, "JobRecord").validate(job)
    assert "timings" in result and result["model_version"] == 1
    # Corrections are of single digits: a number job is told so, and nothing is stored.
    refused = requests.post(f"{stack.web_url}/api/v1/jobs/{job['id']}/feedback", json={"label": 4}, timeout=10)
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "not_a_digit", refused.text
    assert requests.get(f"{stack.web_url}/api/v1/feedback", timeout=10).json()["total"] == 0


@pytest.mark.slow
def test_too_many_digits_fail_that_job_alone_with_the_reason(stack, mnist):
    too_long, short = number_of_test_digits(mnist, 8), number_of_test_digits(mnist, 2, index=2)
    blank = png(400, 200)
    job_ids = submit_read(stack.web_url, [too_long.data, short.data, blank], "number")
    failed, read, empty = (wait_for(stack.web_url, job_id) for job_id in job_ids)
    assert failed["status"] == "failed" and failed["error"]["code"] == "too_many_digits", failed
    assert f"limit of {MAX_DIGITS}" in failed["error"]["message"]
    assert read["status"] == "succeeded" and read["result"]["text"] == short.text
    assert empty["status"] == "succeeded", empty
    assert empty["result"]["text"] == "" and empty["result"]["digits"] == [] and "blank" in empty["result"]["reason"]


@pytest.mark.slow
def test_numbers_and_single_digits_in_one_batch_each_get_their_own_answer(stack, mnist):
    number = number_of_test_digits(mnist, 3, index=1)
    digits = [png_bytes(mnist.x_test[i], invert=True) for i in range(3)]
    number_ids = submit_read(stack.web_url, [number.data] * 2, "number")
    digit_ids = submit_read(stack.web_url, digits, "digit")
    for job_id in number_ids:
        assert wait_for(stack.web_url, job_id)["result"]["text"] == number.text
    for job_id, label in zip(digit_ids, mnist.y_test[:3], strict=True):
        assert wait_for(stack.web_url, job_id)["result"]["label"] == label


@pytest.mark.slow
def test_digits_predict_number_prints_the_text_and_writes_it(stack, mnist, tmp_path):
    from tests.service.test_cli import digits

    number = number_of_test_digits(mnist, 5, index=2)
    path = tmp_path / "number.png"
    path.write_bytes(number.data)
    run = digits("predict", "--number", str(path), server=stack.web_url)
    assert run.returncode == 0, run.stderr
    shown_path, text, confidence = run.stdout.strip().split("\t")
    assert shown_path == str(path) and text == number.text and 0 < float(confidence) <= 1
    output = tmp_path / "output.txt"
    run = digits("predict", "--number", str(path), "--output", str(output), server=stack.web_url)
    assert run.returncode == 0, run.stderr
    assert output.read_text() == number.text


@pytest.mark.slow
def test_digits_client_reads_numbers_and_refuses_an_unknown_read(stack, mnist):
    from client import DigitsClient
    from client.errors import RequestRefused

    number = number_of_test_digits(mnist, 4, index=3)
    client = DigitsClient(stack.web_url)
    (prediction,) = client.predict([number.data], read="number")
    assert prediction.ok and prediction.text == number.text and prediction.label is None
    assert [d["label"] for d in prediction.digits] == [int(c) for c in number.text]
    with pytest.raises(RequestRefused, match="digit, number"):
        client.predict([number.data], read="numbers")


def submit_read(base: str, images: list[bytes], read: str) -> list[str]:
    files = [("image", (f"{n}.png", data, "image/png")) for n, data in enumerate(images)]
    response = requests.post(f"{base}/api/v1/predictions", files=files, data={"read": read}, timeout=30)
    assert response.status_code == 202, response.text
    return [job["job_id"] for job in response.json()["jobs"]]


def iou(a, b) -> float:
    width = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - width * height
    return width * height / union


# --- The Recognise page in a real browser ----------------------------------------------------------

# "42" on the number canvas (840x280 of its own pixels): a 4 of two strokes, a 2 of one.
FORTY_TWO = [
    [(300, 50), (250, 170), (360, 170)],
    [(335, 90), (335, 240)],
    [(440, 90), (470, 60), (520, 60), (545, 100), (530, 150), (440, 235), (560, 235)],
]


@pytest.mark.slow
def test_a_number_drawn_with_the_mouse_is_read_with_each_digit_boxed(stack, tmp_path):
    from tests.service.test_browser import CHROMIUM, SHOTS, launch, open_tab

    playwright_api = pytest.importorskip("playwright.sync_api")
    expect = playwright_api.expect
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with playwright_api.sync_playwright() as playwright:
        context = launch(playwright, tmp_path / "profile", stack.web_url)
        page, problems = open_tab(context)
        page.goto("/")
        page.get_by_role("radio", name="a number").check()
        pad = page.locator("#pad")
        assert pad.evaluate("canvas => [canvas.width, canvas.height]") == [840, 280]
        draw(page, FORTY_TWO, steps=12)
        page.get_by_role("button", name="Recognise drawing").click()
        card = page.locator("#results li.result").first
        expect(card).to_have_attribute("data-status", "succeeded", timeout=60_000)
        expect(card.locator(".answer")).to_have_text("Number 42")
        expect(card.locator("svg.boxes rect")).to_have_count(2)
        crops = card.locator(".digit-crops img")
        expect(crops).to_have_count(2)
        assert crops.first.evaluate("img => [img.naturalWidth, img.naturalHeight]") == [28, 28]
        page.screenshot(path=SHOTS / "home-number-drawn.png", full_page=True)
        context.close()
    assert not problems, problems
