"""Bad input gets a clear 4xx JSON error and enqueues nothing (web under gunicorn, no worker)."""

from __future__ import annotations

import base64
import io

import pytest
import redis
import requests
from PIL import Image

from jobs import keys
from stack.processes import Stack
from stack.redis_server import RedisServer
from tests.conftest import OUTPUT, TOKEN

MAX_IMAGE_BYTES = 200_000
MAX_IMAGES = 5


@pytest.fixture(scope="module")
def web():
    """The web alone: with no worker, anything enqueued would stay visible in the queue."""
    server = RedisServer().start()
    stack = Stack(
        server.url,
        OUTPUT / "test_api_validation",
        env={
            "DIGITS_API_TOKEN": TOKEN,
            "MAX_IMAGE_BYTES": str(MAX_IMAGE_BYTES),
            "MAX_IMAGES_PER_REQUEST": str(MAX_IMAGES),
            "MAX_CONTENT_LENGTH": "1000000",
            "MAX_IMAGE_PIXELS": "4000000",
        },  # fmt: skip
    )
    stack.start_web(workers=1)
    yield stack, redis.Redis.from_url(server.url)
    stack.stop_all()
    server.close()


@pytest.fixture(autouse=True)
def _empty_redis(web):
    web[1].flushdb()


def image_bytes(fmt: str = "PNG", size=(28, 28), mode="L") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, 255).save(buffer, format=fmt)
    return buffer.getvalue()


def assert_rejected(response, status: int, code: str, client: redis.Redis):
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code and error["message"]
    assert client.llen(keys.PREDICT_QUEUE) == 0 and client.llen(keys.TRAIN_QUEUE) == 0
    assert client.zcard(keys.RECENT_JOBS) == 0, "a job record was created"


def post_files(base: str, files):
    return requests.post(f"{base}/api/v1/predictions", files=files, timeout=10)


MULTIPART_CASES = [
    ("no file field", [("other", ("a.png", image_bytes(), "image/png"))], 400, "missing_image"),
    ("empty file", [("image", ("a.png", b"", "image/png"))], 400, "empty_image"),
    ("text, not an image", [("image", ("a.png", b"hello, world" * 10, "image/png"))], 415, "not_an_image"),
    ("unsupported format", [("image", ("a.ppm", image_bytes("PPM"), "image/x-ppm"))], 415, "unsupported_format"),
    ("SVG", [("image", ("a.svg", b'<svg xmlns="http://www.w3.org/2000/svg"/>', "image/svg+xml"))], 415, "not_an_image"),
    ("too large", [("image", ("a.bmp", image_bytes("BMP", (500, 500)), "image/bmp"))], 413, "too_large"),
    ("too many pixels", [("image", ("a.png", image_bytes("PNG", (3000, 3000)), "image/png"))], 413, "too_many_pixels"),
    ("one bad among good", [("image", ("a.png", image_bytes(), "image/png")), ("image", ("b.png", b"x", "image/png"))],
     415, "not_an_image"),
    ("too many images", [("image", (f"{i}.png", image_bytes(), "image/png")) for i in range(MAX_IMAGES + 1)],
     413, "too_many_images"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "files", "status", "code"), MULTIPART_CASES, ids=[c[0] for c in MULTIPART_CASES])
def test_bad_uploads_are_rejected(web, case, files, status, code):
    stack, client = web
    assert_rejected(post_files(stack.web_url, files), status, code, client)


JSON_CASES = [
    ("not an object", ["x"], 400, "invalid_json"),
    ("images not a list", {"images": "abc"}, 400, "invalid_request"),
    ("image not a string", {"images": [123]}, 400, "invalid_image"),
    ("invalid base64", {"images": ["@@not base64@@"]}, 400, "invalid_base64"),
    ("empty list", {"images": []}, 400, "missing_image"),
    ("base64 of text", {"images": [base64.b64encode(b"plain text").decode()]}, 415, "not_an_image"),
]


@pytest.mark.parametrize(("case", "body", "status", "code"), JSON_CASES, ids=[c[0] for c in JSON_CASES])
def test_bad_json_is_rejected(web, case, body, status, code):
    stack, client = web
    response = requests.post(f"{stack.web_url}/api/v1/predictions", json=body, timeout=10)
    assert_rejected(response, status, code, client)


def test_malformed_json_and_wrong_content_type(web):
    stack, client = web
    url = f"{stack.web_url}/api/v1/predictions"
    bad_json = requests.post(url, data=b"{not json", headers={"Content-Type": "application/json"}, timeout=10)
    assert_rejected(bad_json, 400, "invalid_json", client)
    raw = requests.post(url, data=image_bytes(), headers={"Content-Type": "image/png"}, timeout=10)
    assert_rejected(raw, 415, "unsupported_media_type", client)


def test_request_body_over_the_limit(web):
    stack, client = web
    files = [("image", ("a.png", b"\x89PNG" + b"\0" * 1_100_000, "image/png"))]
    assert_rejected(post_files(stack.web_url, files), 413, "request_entity_too_large", client)


@pytest.mark.parametrize("wait", ["abc", "-1", "31", "nan"])
def test_bad_wait_values(web, wait):
    stack, client = web
    response = requests.get(f"{stack.web_url}/api/v1/jobs/{'0' * 32}", params={"wait": wait}, timeout=10)
    assert_rejected(response, 400, "invalid_wait", client)


@pytest.mark.parametrize("limit", ["0", "201", "abc", "-1", "2.5"])
def test_bad_job_list_limits(web, limit):
    stack, client = web
    response = requests.get(f"{stack.web_url}/api/v1/jobs", params={"limit": limit}, timeout=10)
    assert_rejected(response, 400, "invalid_limit", client)


def test_training_needs_the_token(web):
    stack, client = web
    url = f"{stack.web_url}/api/v1/training-jobs"
    body = {"arch": "seed", "epochs": 1}
    assert_rejected(requests.post(url, json=body, timeout=10), 401, "unauthorized", client)
    wrong = {"Authorization": "Bearer wrong"}
    assert_rejected(requests.post(url, json=body, headers=wrong, timeout=10), 403, "forbidden", client)


@pytest.mark.parametrize(
    ("body", "message"),
    [({"epochs": 100000}, "[1, 100]"), ({"arch": "gpt"}, "arch must be one of"), ({"batch_size": "big"}, "batch_size")],
)
def test_absurd_training_parameters_say_the_allowed_range(web, body, message):
    stack, client = web
    response = requests.post(
        f"{stack.web_url}/api/v1/training-jobs", json=body, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    )
    assert_rejected(response, 400, "invalid_parameters", client)
    assert message in response.json()["error"]["message"]


@pytest.mark.parametrize("version", ["..%2F..%2Fetc%2Fpasswd", "0", "abc", "99"])
def test_unknown_model_versions_are_404(web, version):
    stack, client = web
    response = requests.get(f"{stack.web_url}/api/v1/models/{version}", timeout=10)
    assert_rejected(response, 404, "not_found", client)


def test_activation_needs_the_token(web):
    stack, client = web
    response = requests.post(f"{stack.web_url}/api/v1/models/1/activate", timeout=10)
    assert_rejected(response, 401, "unauthorized", client)


def test_unknown_routes_and_methods_are_json(web):
    stack, client = web
    assert_rejected(requests.get(f"{stack.web_url}/api/v1/nothing", timeout=10), 404, "not_found", client)
    assert_rejected(requests.get(f"{stack.web_url}/api/v1/predictions", timeout=10), 405, "method_not_allowed", client)


def test_the_web_never_imports_tensorflow():
    import subprocess
    import sys

    code = "import sys, web; web.create_app(); print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False False"


def test_too_many_pending_jobs_per_client_is_429(tmp_path):
    server = RedisServer().start()
    stack = Stack(server.url, OUTPUT / "test_pending_limit", env={"MAX_PENDING_PER_CLIENT": "3"})
    try:
        stack.start_web(workers=1)
        files = [("image", (f"{i}.png", image_bytes(), "image/png")) for i in range(2)]
        assert post_files(stack.web_url, files).status_code == 202  # no worker: they stay pending
        refused = post_files(stack.web_url, files)
        assert refused.status_code == 429 and refused.json()["error"]["code"] == "too_many_pending"
        assert refused.headers["Retry-After"]
        assert post_files(stack.web_url, files[:1]).status_code == 202  # exactly up to the limit
    finally:
        stack.stop_all()
        server.close()
