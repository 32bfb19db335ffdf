"""Numbers through the service: ``read=number`` on a submission, over real HTTP.

The web alone for what it decides (which ``read`` values it takes, what it stores on the record);
model/segment.py's own reading is tested in tests/test_numbers.py.
"""

from __future__ import annotations

import base64
import io

import pytest
import requests
from PIL import Image

from jobs import keys
from tests.helpers import web_only


def png(width: int = 120, height: int = 60) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (width, height), 255).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def web():
    with web_only("test_number_jobs_web") as running:
        yield running


@pytest.fixture(autouse=True)
def _empty_redis(web):
    web[1].flushdb()


def post(base: str, read=None, how: str = "multipart", query=None) -> requests.Response:
    url = f"{base}/api/v1/predictions"
    params = {"read": query} if query is not None else None
    if how == "json":
        body = {"images": [base64.b64encode(png()).decode()]}
        if read is not None:
            body["read"] = read
        return requests.post(url, json=body, params=params, timeout=10)
    data = {"read": read} if read is not None else None
    return requests.post(url, files=[("image", ("a.png", png(), "image/png"))], data=data, params=params, timeout=10)


BAD_READS = [
    ("multipart", {"read": "numbers"}),
    ("multipart", {"read": ""}),
    ("multipart", {"query": "Digit"}),
    ("json", {"read": "words"}),
    ("json", {"read": 7}),
    ("json", {"read": None, "query": "line"}),
    ("multipart", {"read": "digit", "query": "number"}),  # two places that disagree
]


@pytest.mark.parametrize(("how", "given"), BAD_READS, ids=[f"{h}-{g}" for h, g in BAD_READS])
def test_a_read_other_than_digit_or_number_is_a_400_naming_both(web, how, given):
    stack, client = web
    response = post(stack.web_url, how=how, **given)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_read"
    assert "digit, number" in error["message"]
    assert client.zcard(keys.RECENT_JOBS) == 0, "a job was created"


@pytest.mark.parametrize(
    ("how", "given", "read"),
    [
        ("multipart", {}, "digit"),
        ("multipart", {"read": "number"}, "number"),
        ("multipart", {"query": "number"}, "number"),
        ("json", {"read": "number"}, "number"),
        ("json", {"read": "digit", "query": "digit"}, "digit"),
    ],
)
def test_the_record_says_what_the_job_reads(web, how, given, read):
    stack, _ = web
    response = post(stack.web_url, how=how, **given)
    assert response.status_code == 202, response.text
    (job,) = response.json()["jobs"]
    record = requests.get(f"{stack.web_url}{job['status_url']}", timeout=10).json()
    assert record["read"] == read and record["status"] == "queued"


def test_the_upload_form_takes_read_too(web):
    from tests.helpers import form_session

    stack, _ = web
    session, token = form_session(stack.web_url)
    answer = session.post(
        f"{stack.web_url}/predict",
        files=[("image", ("a.png", png(), "image/png"))],
        data={"csrf_token": token, "read": "number"},
        allow_redirects=False,
        timeout=10,
    )
    assert answer.status_code == 303, answer.text
    job_id = answer.headers["Location"].rsplit("/", 1)[1]
    assert requests.get(f"{stack.web_url}/api/v1/jobs/{job_id}", timeout=10).json()["read"] == "number"
    page = session.get(f"{stack.web_url}/jobs/{job_id}", timeout=10).text
    assert 'class="result number"' in page
