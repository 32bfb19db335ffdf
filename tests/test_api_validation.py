"""Bad input gets a clear 4xx JSON error and enqueues nothing (web under gunicorn, no worker).

Tables of hostile inputs, then hypothesis fuzzing of the same endpoints over real HTTP. Images that
pass the web's header check but cannot be decoded are followed through a worker in
tests/test_hostile_images.py.
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import re
import struct
import zipfile
import zlib
from urllib.parse import quote, urlsplit

import pytest
import redis
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
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
            "RATE_LIMIT": "",  # fuzzing sends more than the default allows; tests/test_rate_limit.py has its own
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


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_of(width: int, height: int, idat: bytes = b"") -> bytes:
    """A 1-bit grayscale PNG with the given size and compressed pixel data (none: a header only)."""
    header = png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + header + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def huge_white_png(side: int) -> bytes:
    """A genuine, fully decodable side x side PNG, streamed so the pixels never exist here."""
    compressor = zlib.compressobj(9)
    row = b"\x00" + b"\xff" * (side // 8)  # filter byte, then 8 white pixels per byte
    data = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    return png_of(side, side, data)


def zipped_png() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("seven.png", image_bytes())
    return buffer.getvalue()


HUGE_PNG = huge_white_png(20_000)  # 400 million pixels in about 76 KB
BOMB_PNG = png_of(50_000, 50_000)  # 2.5 billion pixels claimed in a 60-byte header
GIF_SCREEN_BOMB = b"GIF89a" + struct.pack("<HH", 65535, 65535) + b"\x00\x00\x00;"


def assert_rejected(response, status: int, code: str, client: redis.Redis):
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code and error["message"]
    assert client.llen(keys.lane(keys.PREDICT_QUEUE)) == 0 and client.llen(keys.TRAIN_QUEUE) == 0
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
    ("image inside a zip", [("image", ("a.zip", zipped_png(), "application/zip"))], 415, "not_an_image"),
    ("20,000x20,000 PNG", [("image", ("big.png", HUGE_PNG, "image/png"))], 413, "too_many_pixels"),
    ("decompression bomb header", [("image", ("bomb.png", BOMB_PNG, "image/png"))], 413, "too_many_pixels"),
    ("GIF screen of 65535x65535, no frame", [("image", ("a.gif", GIF_SCREEN_BOMB, "image/gif"))], 415, "not_an_image"),
    ("PDF", [("image", ("a.pdf", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n", "image/png"))],
     415, "not_an_image"),
    ("thousands of files", [("image", (f"{i}.png", b"x", "image/png")) for i in range(5000)],
     413, "request_entity_too_large"),
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
    ("images an object", {"images": {"0": "abc"}}, 400, "invalid_request"),
    ("image null", {"images": [None]}, 400, "invalid_image"),
    ("image a list", {"images": [[]]}, 400, "invalid_image"),
    ("image true", {"images": [True]}, 400, "invalid_image"),
    ("base64 cut short", {"images": ["iVBORw0KGgoAAAANSUhEU"]}, 400, "invalid_base64"),
    ("data URL of text", {"images": ["data:text/plain;base64,aGk="]}, 400, "invalid_base64"),
    ("too many images", {"images": ["x"] * (MAX_IMAGES + 1)}, 413, "too_many_images"),
    ("bomb as base64", {"images": [base64.b64encode(BOMB_PNG).decode()]}, 413, "too_many_pixels"),
    ("zero bytes as base64", {"images": [""]}, 400, "empty_image"),
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


# --- more hostile input, one request at a time -------------------------------------------------

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def raw_request(base: str, method: str, path: str, headers: dict | None = None) -> tuple[int, str, bytes]:
    """Send ``path`` exactly as given (requests would resolve ``..`` and re-quote it)."""
    address = urlsplit(base)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=10)
    try:
        connection.request(method, path, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type") or "", response.read()
    finally:
        connection.close()


def test_a_huge_chunked_body_without_length_is_cut_off(web):
    stack, client = web

    def thirty_megabytes():
        for _ in range(300):
            yield b"\0" * 100_000

    response = requests.post(
        f"{stack.web_url}/api/v1/predictions",
        data=thirty_megabytes(),
        headers={"Content-Type": "multipart/form-data; boundary=x"},
        timeout=30,
    )
    assert_rejected(response, 413, "request_entity_too_large", client)
    assert "1000000 bytes" in response.json()["error"]["message"]


def test_thousands_of_parts_say_which_limit(web):
    stack, client = web
    files = [("image", (f"{i}.png", b"x", "image/png")) for i in range(2000)]
    response = post_files(stack.web_url, files)
    assert_rejected(response, 413, "request_entity_too_large", client)
    assert f"{MAX_IMAGES + 16} multipart parts" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/x-www-form-urlencoded", b"image=iVBORw0KGgo"),
        ("text/plain", b"iVBORw0KGgo"),
        ("image/svg+xml", b'<svg xmlns="http://www.w3.org/2000/svg"/>'),
        ("application/octet-stream", b"\x89PNG\r\n\x1a\n"),
        ("", b"{}"),
    ],
)
def test_wrong_content_types_are_415(web, content_type, body):
    stack, client = web
    response = requests.post(
        f"{stack.web_url}/api/v1/predictions", data=body, headers={"Content-Type": content_type}, timeout=10
    )
    assert_rejected(response, 415, "unsupported_media_type", client)


@pytest.mark.parametrize("body", [b"null", b"[]", b'"images"', b"1", b"{", b"\xff\xfe", b'{"images": NaN}'])
def test_json_that_is_not_an_object_is_400(web, body):
    stack, client = web
    response = requests.post(
        f"{stack.web_url}/api/v1/predictions", data=body, headers={"Content-Type": "application/json"}, timeout=10
    )
    assert response.status_code == 400 and response.json()["error"]["code"] in ("invalid_json", "invalid_request")
    assert_rejected(response, response.status_code, response.json()["error"]["code"], client)


def test_base64_wrapped_at_76_characters_is_accepted(web):
    stack, client = web
    wrapped = base64.encodebytes(image_bytes(size=(120, 120))).decode()  # what `base64` and MIME produce
    assert wrapped.count("\n") > 1
    response = requests.post(f"{stack.web_url}/api/v1/predictions", json={"images": [wrapped]}, timeout=10)
    assert response.status_code == 202, response.text
    assert client.llen(keys.lane(keys.PREDICT_QUEUE)) == 1


TRAINING_BODIES = [
    ("epochs a string", b'{"epochs": "ten"}', "invalid_parameters"),
    ("epochs a boolean", b'{"epochs": true}', "invalid_parameters"),
    ("epochs infinite", b'{"epochs": 1e400}', "invalid_parameters"),
    ("epochs of 400 digits", b'{"epochs": 1' + b"0" * 400 + b"}", "invalid_parameters"),
    ("epochs of 5000 digits", b'{"epochs": 1' + b"0" * 5000 + b"}", "invalid_json"),
    ("learning_rate NaN", b'{"learning_rate": NaN}', "invalid_parameters"),
    ("augment a string", b'{"augment": "yes"}', "invalid_parameters"),
    ("arch a number", b'{"arch": 123}', "invalid_parameters"),
    ("arch of 100,000 characters", b'{"arch": "' + b"x" * 100_000 + b'"}', "invalid_parameters"),
    ("activate a list", b'{"activate": ["always"]}', "invalid_parameters"),
    ("200 unknown long keys", ("{" + ",".join(f'"{"k" * 1000}{i}": 1' for i in range(200)) + "}").encode(),
     "invalid_parameters"),
    ("a list", b"[1, 2]", "invalid_json"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "body", "code"), TRAINING_BODIES, ids=[c[0] for c in TRAINING_BODIES])
def test_training_parameters_of_the_wrong_type_or_size_are_400(web, case, body, code):
    stack, client = web
    response = requests.post(
        f"{stack.web_url}/api/v1/training-jobs",
        data=body,
        headers={**AUTH, "Content-Type": "application/json"},
        timeout=10,
    )
    assert_rejected(response, 400, code, client)
    assert len(response.json()["error"]["message"]) <= 500  # what was sent is never echoed whole


def test_overlong_ids_versions_and_headers(web):
    stack, client = web
    base = stack.web_url
    for path in (f"/api/v1/jobs/{'a' * 1000}", f"/api/v1/batches/{'b' * 1000}", f"/api/v1/models/{'1' * 3000}"):
        response = requests.get(base + path, timeout=10)
        assert_rejected(response, 404, "not_found", client)
        assert len(response.json()["error"]["message"]) < 150
    # Past gunicorn's own limits (request line 4094 bytes, header field 8190) gunicorn answers,
    # in HTML, before the app sees anything.
    assert requests.get(f"{base}/api/v1/jobs/{'a' * 10_000}", timeout=10).status_code == 414
    assert requests.get(f"{base}/healthz", headers={"X-Padding": "a" * 20_000}, timeout=10).status_code == 431
    assert requests.get(f"{base}/healthz", headers={f"X-{i}": "a" for i in range(150)}, timeout=10).status_code in (
        400,
        431,
    )
    long_token = requests.post(f"{base}/api/v1/models/1/activate", headers={"Authorization": "Bearer " + "a" * 8000})
    assert_rejected(long_token, 403, "forbidden", client)
    echoed = requests.get(f"{base}/healthz", headers={"X-Request-ID": "r" * 1000}, timeout=10)
    assert re.fullmatch("[0-9a-f]{32}", echoed.headers["X-Request-ID"])
    card = requests.post(
        f"{base}/api/v1/models",
        files={"file": ("m.keras", b"PK\x03\x04", "application/octet-stream")},
        data={"card": "c" * 600_000},
        headers=AUTH,
        timeout=10,
    )
    assert_rejected(card, 413, "request_entity_too_large", client)
    assert requests.get(f"{base}/healthz", timeout=10).ok


PATH_LIKE_VERSIONS = ["../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "%2e%2e", "1%00", "-1", "1e3", "01", "1.0",
                      "99999999999", "%D9%A1", "1%20", "%201", "0x1", "+1"]  # fmt: skip


@pytest.mark.parametrize("version", PATH_LIKE_VERSIONS)
def test_path_like_model_versions_are_404(web, version):
    stack, client = web
    for method, suffix, headers in [("GET", "", {}), ("GET", "/file", {}), ("POST", "/activate", AUTH),
                                    ("DELETE", "", AUTH)]:  # fmt: skip
        status, content_type, body = raw_request(stack.web_url, method, f"/api/v1/models/{version}{suffix}", headers)
        assert status == 404, (method, suffix, status, body)
        assert content_type.startswith("application/json") and b'"not_found"' in body


def test_job_ids_that_are_not_ours_are_404(web):
    stack, client = web
    accepted = requests.post(
        f"{stack.web_url}/api/v1/predictions", json={"images": [base64.b64encode(image_bytes()).decode()]}, timeout=10
    ).json()
    job_id, batch_id = accepted["jobs"][0]["job_id"], accepted["batch_id"]
    assert requests.get(f"{stack.web_url}/api/v1/jobs/{job_id}", timeout=10).status_code == 200
    not_ours = [job_id.upper(), job_id[:-1] + ("0" if job_id[-1] != "0" else "1"), "digits:models:active", "*", "%2A"]
    for other in not_ours:
        assert requests.get(f"{stack.web_url}/api/v1/jobs/{other}", timeout=10).status_code == 404
        for method, path in [("DELETE", f"/api/v1/jobs/{other}"), ("POST", f"/api/v1/jobs/{other}/cancel")]:
            response = requests.request(method, stack.web_url + path, headers=AUTH, timeout=10)
            assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    # A batch id is not a job id, nor the other way round.
    assert requests.get(f"{stack.web_url}/api/v1/jobs/{batch_id}", timeout=10).status_code == 404
    assert requests.get(f"{stack.web_url}/api/v1/batches/{job_id}", timeout=10).status_code == 404
    assert client.hget(keys.job(job_id), "status") == b"queued"  # nothing above touched the real job


# --- fuzzing over real HTTP: any input gets an answer below 500, in JSON, and nothing half-queued ---

FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,  # the same examples on every run, so CI cannot fail by chance
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
VALID_IMAGES = [image_bytes(fmt, (28, 28)) for fmt in ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP")]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
image_like_bytes = st.one_of(
    st.binary(max_size=3000),
    # A real image cut anywhere and followed by anything: headers that pass, bodies that do not.
    st.tuples(st.sampled_from(VALID_IMAGES), st.integers(0, 400), st.binary(max_size=200)).map(
        lambda t: t[0][: t[1]] + t[2]
    ),
)


def assert_answered(response, client: redis.Redis, queued_before: int, accepted_adds: int) -> None:
    """< 500, JSON errors, and the queues grew by ``accepted_adds`` jobs if and only if accepted."""
    assert response.status_code < 500, response.text
    queued = queue_length(client)
    if response.status_code in (201, 202):
        assert queued == queued_before + accepted_adds
    else:
        assert response.headers["Content-Type"].startswith("application/json"), response.text
        assert set(response.json()["error"]) == {"code", "message"}
        assert queued == queued_before


def post_json(url: str, body: object, headers: dict | None = None) -> requests.Response:
    """POST ``body`` as JSON, NaN and Infinity included (Python's parser, like the server's, takes them)."""
    data = json.dumps(body).encode()
    return requests.post(url, data=data, headers={"Content-Type": "application/json", **(headers or {})}, timeout=10)


def queue_length(client: redis.Redis) -> int:
    """Jobs waiting in every lane and queue (a client's 17th pending job goes to the bulk lane)."""
    return sum(client.llen(keys.queue_key(name)) for name in keys.QUEUES)


@FUZZ
@given(files=st.lists(image_like_bytes, min_size=1, max_size=MAX_IMAGES + 1))
def test_fuzz_multipart_uploads(web, files):
    stack, client = web
    before = queue_length(client)
    response = post_files(stack.web_url, [("image", (f"{i}.png", data, "image/png")) for i, data in enumerate(files)])
    assert response.status_code in (202, 400, 413, 415), response.text
    assert_answered(response, client, before, len(files))  # a job per image


@FUZZ
@given(
    body=json_values
    | st.fixed_dictionaries(
        {"images": st.lists(image_like_bytes.map(lambda b: base64.b64encode(b).decode()) | json_values, max_size=7)}
    )
)
def test_fuzz_json_predictions(web, body):
    stack, client = web
    before = queue_length(client)
    response = post_json(f"{stack.web_url}/api/v1/predictions", body)
    assert response.status_code in (202, 400, 413, 415), response.text
    images = body.get("images") if isinstance(body, dict) else None
    assert_answered(response, client, before, len(images) if isinstance(images, list) else 0)  # a job per image


@FUZZ
@given(
    body=st.dictionaries(
        st.sampled_from(["arch", "epochs", "batch_size", "learning_rate", "augment", "train_limit", "activate"])
        | st.text(max_size=20),
        json_values | st.integers(min_value=-(10**30), max_value=10**30),
        max_size=8,
    )
)
def test_fuzz_training_parameters(web, body):
    stack, client = web
    before = queue_length(client)
    response = post_json(f"{stack.web_url}/api/v1/training-jobs", body, AUTH)
    assert response.status_code in (202, 400), response.text
    assert_answered(response, client, before, 1)


@FUZZ
@given(identifier=st.text(min_size=1, max_size=300), wait=st.none() | st.text(max_size=12))
def test_fuzz_ids_in_paths(web, identifier, wait):
    stack, client = web
    segment = quote(identifier, safe="")
    params = {"wait": wait} if wait is not None else None
    before = queue_length(client)
    for method, path, headers in [
        ("GET", f"/api/v1/jobs/{segment}", {}),
        ("GET", f"/api/v1/batches/{segment}", {}),
        ("POST", f"/api/v1/jobs/{segment}/cancel", AUTH),
        ("GET", f"/api/v1/models/{segment}", {}),
        ("POST", f"/api/v1/models/{segment}/activate", AUTH),
    ]:
        response = requests.request(method, stack.web_url + path, params=params, headers=headers, timeout=40)
        assert response.status_code in (400, 404), (method, path, response.text)
        assert_answered(response, client, before, 0)


@FUZZ
@given(request_id=st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=80))
def test_fuzz_request_ids(web, request_id):
    stack, _ = web
    echoed = requests.get(f"{stack.web_url}/healthz", headers={"X-Request-ID": request_id}, timeout=10)
    if re.fullmatch(r"[A-Za-z0-9._:-]{1,64}", request_id):
        assert echoed.headers["X-Request-ID"] == request_id
    else:
        assert re.fullmatch("[0-9a-f]{32}", echoed.headers["X-Request-ID"])


def test_predictions_and_polling_can_be_made_to_need_the_token():
    server = RedisServer().start()
    stack = Stack(server.url, OUTPUT / "test_predictions_token", env={"DIGITS_API_TOKEN": TOKEN,
                                                                       "PREDICTIONS_NEED_TOKEN": "true"})  # fmt: skip
    auth = {"Authorization": f"Bearer {TOKEN}"}
    try:
        stack.start_web(workers=1)
        files = [("image", ("a.png", image_bytes(), "image/png"))]
        refused = requests.post(f"{stack.web_url}/api/v1/predictions", files=files, timeout=10)
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"
        accepted = requests.post(f"{stack.web_url}/api/v1/predictions", files=files, headers=auth, timeout=10)
        assert accepted.status_code == 202
        job_url = stack.web_url + accepted.json()["jobs"][0]["status_url"]
        assert requests.get(job_url, timeout=10).status_code == 401
        assert requests.get(job_url, headers=auth, timeout=10).status_code == 200
        assert requests.get(f"{stack.web_url}/jobs", timeout=10).status_code == 401
    finally:
        stack.stop_all()
        server.close()


DEEP_JSON = b"[" * 100_000 + b"]" * 100_000  # deeper than any parser's recursion


@pytest.mark.parametrize("path", ["/api/v1/predictions", "/api/v1/training-jobs"])
def test_json_nested_too_deep_is_400_not_500(web, path):
    stack, client = web
    response = requests.post(
        f"{stack.web_url}{path}", data=DEEP_JSON, headers={"Content-Type": "application/json", **AUTH}, timeout=10
    )
    assert_rejected(response, 400, "invalid_json", client)


def keras_shaped_zip() -> bytes:
    """A zip with the names of a .keras file: enough for the web's format check, which comes first."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("config.json", "{}")
        archive.writestr("metadata.json", "{}")
    return buffer.getvalue()


def test_a_model_card_nested_too_deep_is_400_not_500(web):
    stack, _ = web
    response = requests.post(
        f"{stack.web_url}/api/v1/models",
        headers=AUTH,
        files={"file": ("m.keras", keras_shaped_zip())},
        data={"card": "[" * 200_000},
        timeout=30,
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_card", response.text


def mpo_bytes() -> bytes:
    """A two-picture MPO, as many cameras write their JPEGs."""
    first, second = Image.new("L", (40, 40), 255), Image.new("L", (40, 40), 0)
    buffer = io.BytesIO()
    first.save(buffer, format="MPO", save_all=True, append_images=[second])
    return buffer.getvalue()


def test_a_multi_picture_jpeg_is_accepted_and_read_from_its_first_picture(web):
    stack, client = web
    data = mpo_bytes()
    assert Image.open(io.BytesIO(data)).format == "MPO"
    response = post_files(stack.web_url, [("image", ("camera.jpg", data, "image/jpeg"))])
    assert response.status_code == 202, response.text
    from model.images.preprocess import decode

    assert decode(data).getextrema() == (255, 255)  # the first picture (white), not the second
