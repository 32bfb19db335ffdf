"""``read=number`` on a submission, as the web decides it alone: which ``read`` values it takes
(anything else is a 400 naming both) and what it stores on the record. The app in process through
Flask's test client, on a Redis of its own, no worker. Numbers read by a real worker:
tests/service/test_number_jobs.py."""

from __future__ import annotations

import base64
import io
import re

import pytest
import redis
from PIL import Image

from jobs import keys
from tests.conftest import private_redis
from web import create_app


def png(width: int = 120, height: int = 60) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (width, height), 255).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def web():
    """The app's test client, and a client of its Redis."""
    with private_redis() as server:
        yield create_app({"REDIS_URL": server.url}).test_client(), redis.Redis.from_url(server.url)


@pytest.fixture(autouse=True)
def _empty_redis(web):
    web[1].flushdb()


ABSENT = object()


def post(app, read=ABSENT, how: str = "multipart", query=None):
    query_string = {"read": query} if query is not None else None
    if how == "json":
        body = {"images": [base64.b64encode(png()).decode()]}
        if read is not ABSENT:
            body["read"] = read
        return app.post("/api/v1/predictions", json=body, query_string=query_string)
    data = {"image": (io.BytesIO(png()), "a.png", "image/png")} | ({"read": read} if read is not ABSENT else {})
    return app.post("/api/v1/predictions", data=data, query_string=query_string)


BAD_READS = [
    ("multipart", {"read": "numbers"}),
    ("multipart", {"read": ""}),
    ("multipart", {"query": "Digit"}),
    ("json", {"read": "words"}),
    ("json", {"read": 7}),
    ("json", {"query": "line"}),
    ("json", {"read": None}),  # null is not absent
    ("multipart", {"read": "digit", "query": "number"}),  # two places that disagree
]


@pytest.mark.parametrize(("how", "given"), BAD_READS, ids=[f"{h}-{g}" for h, g in BAD_READS])
def test_a_read_other_than_digit_or_number_is_a_400_naming_both(web, how, given):
    app, client = web
    response = post(app, how=how, **given)
    assert response.status_code == 400, response.text
    error = response.json["error"]
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
    app, _ = web
    response = post(app, how=how, **given)
    assert response.status_code == 202, response.text
    (job,) = response.json["jobs"]
    record = app.get(job["status_url"]).json
    assert record["read"] == read and record["status"] == "queued"


def test_the_upload_form_takes_read_too(web):
    app, _ = web
    token = re.search(r'name="csrf_token" value="([^"]+)"', app.get("/").text).group(1)
    answer = app.post(
        "/predict", data={"image": (io.BytesIO(png()), "a.png", "image/png"), "csrf_token": token, "read": "number"}
    )
    assert answer.status_code == 303, answer.text
    job_id = answer.headers["Location"].rsplit("/", 1)[1]
    assert app.get(f"/api/v1/jobs/{job_id}").json["read"] == "number"
    assert 'class="result number"' in app.get(f"/jobs/{job_id}").text
