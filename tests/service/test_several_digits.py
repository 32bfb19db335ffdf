"""Several digits in an image read as one are never a silent single digit (issue 34, item 1).

The number reader's segmentation looks at every image read as one digit: when it finds several
digits, the digit's result carries ``hint: read_as_number`` and a ``hint_reason``; ``read=auto``
answers the number then, and the digit, exactly as ``read=digit`` does, otherwise. In-process
through model/recognise.py first, then over real HTTP against a real stack, the ``digits``
command and ``DigitsClient``. The browser's side is in tests/test_browser.py.
"""

from __future__ import annotations

import base64

import pytest
import requests

from model.evaluation.digits import as_file
from model.recognise import Bounds, recognise
from model.rendering.number import render_number
from model.results import READ_AS_NUMBER
from tests.conftest import OUTPUT, openapi_validator
from tests.service.helpers import running_stack, wait_for

BOUNDS = Bounds(max_pixels=40_000_000, max_decoded_bytes=400_000_000, max_digits=8, seconds=5.0)
# Single MNIST test digits on paper that the number reader reads as one digit, and numbers of
# test digits (with gaps) that it reads right: the plumbing is tested here, model/evaluation's
# "several" table measures how often either goes wrong.
SINGLES = range(0, 6)


def number_image(mnist, count: int = 2, index: int = 1):
    """A number of test digits with gaps, on paper, that the shipped model reads right (index 0,
    78, it reads as 75: one of the numbers with gaps it misreads, which model/evaluation counts)."""
    return render_number(mnist.x_test, mnist.y_test, count, "gap", "paper", index)


@pytest.fixture(scope="module")
def predictor():
    from model.runtimes.keras_predictor import KerasPredictor
    from model.shipped import SHIPPED_MODEL

    return KerasPredictor.from_file(SHIPPED_MODEL)


def test_a_number_read_as_a_digit_gets_the_hint_and_why(predictor, mnist):
    number = number_image(mnist)
    (reading,) = recognise([number.data], predictor, BOUNDS, reads=["digit"])
    result = reading.result
    assert isinstance(result["label"], int), result  # still the digit mode's answer ...
    assert result["hint"] == READ_AS_NUMBER  # ... with the hint
    assert "2 digits" in result["hint_reason"] and number.text in result["hint_reason"]


def test_single_digits_get_no_hint_and_auto_reads_them_exactly_as_digit_mode(predictor, mnist):
    files = [as_file(mnist.x_test[i], "paper", i) for i in SINGLES] + [as_file(mnist.x_test[9], "mnist-png", 9)]
    as_digits = recognise(files, predictor, BOUNDS, reads=["digit"] * len(files))
    as_auto = recognise(files, predictor, BOUNDS, reads=["auto"] * len(files))
    for digit, auto in zip(as_digits, as_auto, strict=True):
        assert "hint" not in digit.result
        assert {k: v for k, v in auto.result.items() if k != "timings"} == {
            k: v for k, v in digit.result.items() if k != "timings"
        }


def test_auto_reads_a_number_as_the_number_mode_does(predictor, mnist):
    number = number_image(mnist, 3, 1)
    (auto,) = recognise([number.data], predictor, BOUNDS, reads=["auto"])
    (as_number,) = recognise([number.data], predictor, BOUNDS, reads=["number"])
    assert auto.result["text"] == as_number.result["text"] == number.text


# --- Through the service ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stack():
    with running_stack(OUTPUT / "test_several_digits") as running:
        yield running


def post(base: str, images: list[bytes], read: str | None = None) -> list[dict]:
    body = {"images": [base64.b64encode(data).decode() for data in images]} | ({"read": read} if read else {})
    response = requests.post(f"{base}/api/v1/predictions", json=body, timeout=30)
    assert response.status_code == 202, response.text
    return [wait_for(base, job["job_id"]) for job in response.json()["jobs"]]


@pytest.mark.slow
def test_the_record_of_a_number_read_as_a_digit_carries_the_hint(stack, mnist):
    number = number_image(mnist)
    hinted, single = post(stack.web_url, [number.data, as_file(mnist.x_test[0], "paper", 0)])
    assert hinted["status"] == "succeeded" and hinted["read"] == "digit", hinted
    assert hinted["result"]["hint"] == "read_as_number" and number.text in hinted["result"]["hint_reason"]
    assert "hint" not in single["result"] and single["result"]["label"] == mnist.y_test[0]
    document = requests.get(f"{stack.web_url}/api/v1/openapi.json", timeout=10).json()
    for record in (hinted, single):
        openapi_validator(document, "JobRecord").validate(record)


@pytest.mark.slow
def test_read_auto_answers_the_number_or_the_digit(stack, mnist):
    number = number_image(mnist, 3, 1)
    several, one = post(stack.web_url, [number.data, as_file(mnist.x_test[1], "paper", 1)], read="auto")
    assert several["read"] == "auto" and several["result"]["text"] == number.text, several
    assert one["read"] == "auto" and one["result"]["label"] == mnist.y_test[1] and "text" not in one["result"]
    document = requests.get(f"{stack.web_url}/api/v1/openapi.json", timeout=10).json()
    openapi_validator(document, "JobRecord").validate(several)


@pytest.mark.slow
def test_digits_predict_prints_the_hint_and_exits_3_unless_single_ok(stack, mnist, tmp_path):
    from tests.service.test_cli import digits

    number = number_image(mnist)
    path = tmp_path / "number.png"
    path.write_bytes(number.data)
    run = digits("predict", str(path), server=stack.web_url)
    assert run.returncode == 3, (run.stdout, run.stderr)
    assert "hint:" in run.stdout and number.text in run.stdout and "--number" in run.stdout
    allowed = digits("predict", "--single-ok", str(path), server=stack.web_url)
    assert allowed.returncode == 0, allowed.stderr
    auto = digits("predict", "--auto", str(path), server=stack.web_url)
    assert auto.returncode == 0 and auto.stdout.split("\t")[1] == number.text, auto.stdout


@pytest.mark.slow
def test_the_python_client_hands_the_hint_over(stack, mnist):
    from client import DigitsClient

    number = number_image(mnist)
    (prediction,) = DigitsClient(stack.web_url).predict([number.data])
    assert prediction.hint == "read_as_number" and number.text in prediction.hint_reason
