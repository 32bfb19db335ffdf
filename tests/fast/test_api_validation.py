"""Bad input gets a clear 4xx JSON error and enqueues nothing (the app in process, a real Redis, no worker).

Tables of hostile inputs, then hypothesis fuzzing of the same endpoints through Flask's test
client: validation needs neither gunicorn nor a worker (what gunicorn itself refuses before the
app sees it is tested in tests/service/test_slow_clients.py). Images that pass the web's header check but
cannot be decoded are followed through a worker in tests/service/test_hostile_images.py.
"""

from __future__ import annotations

import base64
import io
import json
import re
import struct
import time
import zipfile
import zlib
from urllib.parse import quote

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from werkzeug.test import EnvironBuilder, TestResponse, run_wsgi_app
from werkzeug.wrappers import Request

from jobs import keys
from tests.conftest import TOKEN
from web import create_app
from web.images import decode_base64_image

MAX_IMAGE_BYTES = 200_000
MAX_IMAGES = 5
LIMITS = {
    "MAX_IMAGE_BYTES": MAX_IMAGE_BYTES,
    "MAX_IMAGES_PER_REQUEST": MAX_IMAGES,
    "MAX_CONTENT_LENGTH": 1_000_000,
    "MAX_IMAGE_PIXELS": 4_000_000,
    "RATE_LIMIT": "",  # fuzzing sends more than the default allows; tests/service/test_rate_limit.py has its own
}
# Its own database of the session's Redis: with no worker, anything enqueued stays visible there.
DATABASE = 2


def database_url(redis_server) -> str:
    return redis_server.url.rsplit("/", 1)[0] + f"/{DATABASE}"


@pytest.fixture(scope="module")
def app(redis_server):
    return create_app({"REDIS_URL": database_url(redis_server), "DIGITS_ADMIN_TOKEN": TOKEN, **LIMITS})


@pytest.fixture(scope="module")
def web(app, redis_server):
    """The app's test client, and a client of its Redis."""
    return app.test_client(), redis.Redis.from_url(database_url(redis_server))


@pytest.fixture(autouse=True)
def _empty_redis(redis_server):
    redis.Redis.from_url(database_url(redis_server)).flushdb()


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
    error = response.json["error"]
    assert error["code"] == code and error["message"]
    assert client.llen(keys.lane(keys.PREDICT_QUEUE)) == 0 and client.llen(keys.TRAIN_QUEUE) == 0
    assert client.zcard(keys.RECENT_JOBS) == 0, "a job record was created"


def post_files(client, files, path: str = "/api/v1/predictions", headers: dict | None = None, data=()):
    """POST ``files`` (``(field, (filename, bytes, content type))``, as requests takes them) and the
    form fields ``data`` as multipart, encoded as requests encodes them."""
    boundary = "digits-test-boundary-7d3f"
    body = io.BytesIO()
    for name, value in data:
        body.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for field, (filename, content, kind) in files:
        disposition = f'form-data; name="{field}"; filename="{filename}"'
        body.write(f"--{boundary}\r\nContent-Disposition: {disposition}\r\nContent-Type: {kind}\r\n\r\n".encode())
        body.write(content + b"\r\n")
    body.write(f"--{boundary}--\r\n".encode())
    return post_raw(client, path, body.getvalue(), f"multipart/form-data; boundary={boundary}", headers)


def post_raw(client, path: str, body: bytes, content_type: str, headers: dict | None = None):
    return client.post(path, data=body, headers={"Content-Type": content_type, **(headers or {})})


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
    client, db = web
    assert_rejected(post_files(client, files), status, code, db)


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
    ("too many images, none a string", {"images": [1] * (MAX_IMAGES + 1)}, 413, "too_many_images"),
    ("bomb as base64", {"images": [base64.b64encode(BOMB_PNG).decode()]}, 413, "too_many_pixels"),
    ("zero bytes as base64", {"images": [""]}, 400, "empty_image"),
    ("no images", {"read": "digit"}, 400, "invalid_request"),
    ("read unknown", {"images": ["x"], "read": "letters"}, 400, "invalid_read"),
    ("read null", {"images": ["x"], "read": None}, 400, "invalid_read"),
]


@pytest.mark.parametrize(("case", "body", "status", "code"), JSON_CASES, ids=[c[0] for c in JSON_CASES])
def test_bad_json_is_rejected(web, case, body, status, code):
    client, db = web
    response = client.post("/api/v1/predictions", json=body)
    assert_rejected(response, status, code, db)


def test_a_refused_multipart_submission_names_every_bad_file_and_why(web):
    """Issue 34: one bad file among many is not the only one named, nor the first only."""
    client, db = web
    good = ("image", ("good.png", image_bytes(), "image/png"))
    files = [good, ("image", ("notes.txt", b"shopping list" * 10, "text/plain")), good,
             ("image", ("huge.bmp", image_bytes("BMP", (500, 500)), "image/bmp")), good]  # fmt: skip
    response = post_files(client, files)
    assert_rejected(response, 415, "not_an_image", db)  # the first bad one's status and code, as when alone
    error = response.json["error"]
    assert "2 of 5 images are refused" in error["message"]
    assert "notes.txt" in error["message"] and "huge.bmp" in error["message"]
    assert [(i["index"], i["status"], i["code"]) for i in error["images"]] == [(1, 415, "not_an_image"),
                                                                             (3, 413, "too_large")]  # fmt: skip
    assert "notes.txt" in error["images"][0]["name"] and "huge.bmp" in error["images"][1]["name"]
    assert all(i["message"] for i in error["images"])


def test_a_refused_json_submission_names_every_bad_image_and_why(web):
    client, db = web
    good = base64.b64encode(image_bytes()).decode()
    body = {"images": [good, "@@not base64@@", base64.b64encode(b"plain text").decode(), good]}
    response = client.post("/api/v1/predictions", json=body)
    assert_rejected(response, 400, "invalid_base64", db)
    images = response.json["error"]["images"]
    assert [(i["index"], i["name"], i["code"]) for i in images] == [
        (1, "images[1]", "invalid_base64"),
        (2, "images[2]", "not_an_image"),
    ]


def test_a_refusal_says_which_field_and_what_was_expected(web):
    client, db = web
    response = client.post("/api/v1/predictions", json={"images": ["iVBORw0KGgo=", 7]})
    assert_rejected(response, 400, "invalid_image", db)
    assert "images[1]" in response.json["error"]["message"] and "string" in response.json["error"]["message"]
    response = client.post("/api/v1/predictions", json={"images": ["x"], "read": "letters"})
    assert "digit" in response.json["error"]["message"] and "number" in response.json["error"]["message"]


def test_malformed_json_and_wrong_content_type(web):
    client, db = web
    url = "/api/v1/predictions"
    assert_rejected(post_raw(client, url, b"{not json", "application/json"), 400, "invalid_json", db)
    assert_rejected(post_raw(client, url, image_bytes(), "image/png"), 415, "unsupported_media_type", db)


def test_request_body_over_the_limit(web):
    client, db = web
    files = [("image", ("a.png", b"\x89PNG" + b"\0" * 1_100_000, "image/png"))]
    assert_rejected(post_files(client, files), 413, "request_entity_too_large", db)


WAITS = ["abc", "-1", "31", "nan", "inf", "1_0", " 5", "\u0663", "0x1", "1e400", "1" * 50]


@pytest.mark.parametrize("wait", WAITS)
def test_bad_wait_values(web, wait):
    client, db = web
    response = client.get(f"/api/v1/jobs/{'0' * 32}", query_string={"wait": wait})
    assert_rejected(response, 400, "invalid_wait", db)


@pytest.mark.parametrize("path", [f"/api/v1/jobs/{'0' * 32}", f"/api/v1/batches/{'0' * 32}", "/api/v1/predictions"])
def test_a_wait_of_thousands_of_digits_is_refused_at_once(web, path):
    """Parsing a client's text must cost what its length allows, never more: this once took 2.2 s of CPU."""
    client, db = web
    method = client.post if path.endswith("predictions") else client.get
    started = time.process_time()
    response = method(path, query_string={"wait": "1" * 8000 + "x"})
    spent = time.process_time() - started
    assert_rejected(response, 400, "invalid_wait", db)
    assert spent < 0.05, f"{spent:.3f} s of CPU to refuse one ?wait="


@pytest.mark.parametrize("limit", ["0", "201", "abc", "-1", "2.5", "1" * 5000, "\u0663", " 5", "+5"])
def test_bad_job_list_limits(web, limit):
    client, db = web
    response = client.get("/api/v1/jobs", query_string={"limit": limit}, headers={"Authorization": f"Bearer {TOKEN}"})
    assert_rejected(response, 400, "invalid_limit", db)


@pytest.mark.parametrize(("limit", "split"), [("1001", "all"), ("1" * 5000, "all"), ("5", "test"), ("5", "a" * 5000)])
def test_bad_feedback_limits_and_splits(web, limit, split):
    client, db = web
    listed = client.get("/api/v1/feedback", query_string={"limit": limit})
    exported = client.get("/api/v1/feedback/export", query_string={"split": split})
    if limit != "5":
        assert_rejected(listed, 400, "invalid_limit", db)
    if split != "all":
        assert_rejected(exported, 400, "invalid_split", db)


def test_training_needs_the_token(web):
    client, db = web
    url = "/api/v1/training-jobs"
    body = {"arch": "seed", "epochs": 1}
    assert_rejected(client.post(url, json=body), 401, "unauthorized", db)
    wrong = {"Authorization": "Bearer wrong"}
    assert_rejected(client.post(url, json=body, headers=wrong), 403, "forbidden", db)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"epochs": 100000}, "epochs"),
        ({"epochs": 100000}, "100"),
        ({"arch": "gpt"}, "arch"),
        ({"arch": "gpt"}, "'default'"),
        ({"batch_size": "big"}, "batch_size"),
        ({"base_version": 3, "arch": "forest"}, "Keras"),
    ],
)
def test_absurd_training_parameters_say_the_allowed_range(web, body, message):
    client, db = web
    response = client.post("/api/v1/training-jobs", json=body, headers={"Authorization": f"Bearer {TOKEN}"})
    assert_rejected(response, 400, "invalid_parameters", db)
    assert message in response.json["error"]["message"]


@pytest.mark.parametrize("version", ["..%2F..%2Fetc%2Fpasswd", "0", "abc", "99"])
def test_unknown_model_versions_are_404(web, version):
    client, db = web
    assert_rejected(client.get(f"/api/v1/models/{version}"), 404, "not_found", db)


def test_activation_needs_the_token(web):
    client, db = web
    assert_rejected(client.post("/api/v1/models/1/activate"), 401, "unauthorized", db)


def test_unknown_routes_and_methods_are_json(web):
    client, db = web
    assert_rejected(client.get("/api/v1/nothing"), 404, "not_found", db)
    assert_rejected(client.get("/api/v1/predictions"), 405, "method_not_allowed", db)


def test_the_web_never_imports_tensorflow():
    import subprocess
    import sys

    code = "import sys, web; web.create_app(); print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False False"


def test_too_many_pending_jobs_per_client_is_429(redis_server):
    client = create_app({"REDIS_URL": database_url(redis_server), "MAX_PENDING_PER_CLIENT": 3}).test_client()
    files = [("image", (f"{i}.png", image_bytes(), "image/png")) for i in range(2)]
    assert post_files(client, files).status_code == 202  # no worker: they stay pending
    refused = post_files(client, files)
    assert refused.status_code == 429 and refused.json["error"]["code"] == "too_many_pending"
    assert refused.headers["Retry-After"]
    assert post_files(client, files[:1]).status_code == 202  # exactly up to the limit


# --- more hostile input, one request at a time -------------------------------------------------

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_a_huge_chunked_body_without_length_is_cut_off(app, web):
    _, db = web

    def thirty_megabytes():
        for _ in range(300):
            yield b"\0" * 100_000

    # As gunicorn hands the app a chunked body: no Content-Length, a stream that ends where the body does.
    environ = EnvironBuilder("/api/v1/predictions", method="POST", content_type="multipart/form-data; boundary=x")
    request = environ.get_environ()
    request.pop("CONTENT_LENGTH", None)
    request["wsgi.input"] = io.BufferedReader(GeneratorStream(thirty_megabytes()))
    request["wsgi.input_terminated"] = True
    response = TestResponse(*run_wsgi_app(app.wsgi_app, request), request=Request(request))
    assert_rejected(response, 413, "request_entity_too_large", db)
    assert "1000000 bytes" in response.json["error"]["message"]


class GeneratorStream(io.RawIOBase):
    """A file-like reader of a generator's chunks, as a WSGI server hands a streamed body to the app."""

    def __init__(self, chunks):
        self.chunks, self.left = chunks, b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self.left:
            self.left = next(self.chunks, b"")
            if not self.left:
                return 0
        size = min(len(buffer), len(self.left))
        buffer[:size], self.left = self.left[:size], self.left[size:]
        return size


def test_thousands_of_parts_say_which_limit(web):
    client, db = web
    files = [("image", (f"{i}.png", b"x", "image/png")) for i in range(2000)]
    response = post_files(client, files)
    assert_rejected(response, 413, "request_entity_too_large", db)
    assert f"{MAX_IMAGES + 16} multipart parts" in response.json["error"]["message"]


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
    client, db = web
    assert_rejected(post_raw(client, "/api/v1/predictions", body, content_type), 415, "unsupported_media_type", db)


@pytest.mark.parametrize("body", [b"null", b"[]", b'"images"', b"1", b"{", b"\xff\xfe", b'{"images": NaN}'])
def test_json_that_is_not_an_object_is_400(web, body):
    client, db = web
    response = post_raw(client, "/api/v1/predictions", body, "application/json")
    assert response.status_code == 400 and response.json["error"]["code"] in ("invalid_json", "invalid_request")
    assert_rejected(response, response.status_code, response.json["error"]["code"], db)


def test_base64_wrapped_at_76_characters_is_accepted(web):
    client, db = web
    wrapped = base64.encodebytes(image_bytes(size=(120, 120))).decode()  # what `base64` and MIME produce
    assert wrapped.count("\n") > 1
    response = client.post("/api/v1/predictions", json={"images": [wrapped]})
    assert response.status_code == 202, response.text
    assert db.llen(keys.lane(keys.PREDICT_QUEUE)) == 1


@pytest.mark.parametrize("space", [" ", "\t", "\r\n", "\x0b\x0c", "\u00a0", "\u2003", "\u3000"])
def test_base64_with_any_whitespace_between_is_accepted(space):
    data = image_bytes(size=(30, 30))
    text = base64.b64encode(data).decode()
    spaced = space + space.join(text[i : i + 10] for i in range(0, len(text), 10)) + space
    assert decode_base64_image(spaced, 0) == data
    assert decode_base64_image("data:image/png;base64," + spaced, 0, len(data)) == data


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
    client, db = web
    response = post_raw(client, "/api/v1/training-jobs", body, "application/json", AUTH)
    assert_rejected(response, 400, code, db)
    assert len(response.json["error"]["message"]) <= 500  # what was sent is never echoed whole


def test_overlong_ids_versions_and_headers(web):
    client, db = web
    for path in (f"/api/v1/jobs/{'a' * 1000}", f"/api/v1/batches/{'b' * 1000}", f"/api/v1/models/{'1' * 3000}"):
        response = client.get(path)
        assert_rejected(response, 404, "not_found", db)
        assert len(response.json["error"]["message"]) < 150
    long_token = client.post("/api/v1/models/1/activate", headers={"Authorization": "Bearer " + "a" * 8000})
    assert_rejected(long_token, 403, "forbidden", db)
    echoed = client.get("/healthz", headers={"X-Request-ID": "r" * 1000})
    assert re.fullmatch("[0-9a-f]{32}", echoed.headers["X-Request-ID"])
    card = post_files(
        client,
        [("file", ("m.keras", b"PK\x03\x04", "application/octet-stream"))],
        path="/api/v1/models",
        headers=AUTH,
        data=[("card", "c" * 600_000)],
    )
    assert_rejected(card, 413, "request_entity_too_large", db)
    assert client.get("/healthz").status_code == 200


PATH_LIKE_VERSIONS = ["../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "%2e%2e", "1%00", "-1", "1e3", "01", "1.0",
                      "99999999999", "%D9%A1", "1%20", "%201", "0x1", "+1"]  # fmt: skip


@pytest.mark.parametrize("version", PATH_LIKE_VERSIONS)
def test_path_like_model_versions_are_404(web, version):
    client, db = web
    for method, suffix, headers in [("GET", "", {}), ("GET", "/file", {}), ("POST", "/activate", AUTH),
                                    ("DELETE", "", AUTH)]:  # fmt: skip
        response = client.open(f"/api/v1/models/{version}{suffix}", method=method, headers=headers)
        assert response.status_code == 404, (method, suffix, response.status_code, response.data)
        assert response.mimetype == "application/json" and b'"not_found"' in response.data


def test_job_ids_that_are_not_ours_are_404(web):
    client, db = web
    accepted = client.post("/api/v1/predictions", json={"images": [base64.b64encode(image_bytes()).decode()]}).json
    job_id, batch_id = accepted["jobs"][0]["job_id"], accepted["batch_id"]
    assert client.get(f"/api/v1/jobs/{job_id}").status_code == 200
    not_ours = [job_id.upper(), job_id[:-1] + ("0" if job_id[-1] != "0" else "1"), "digits:models:active", "*", "%2A"]
    for other in not_ours:
        assert client.get(f"/api/v1/jobs/{other}").status_code == 404
        for method, path in [("DELETE", f"/api/v1/jobs/{other}"), ("POST", f"/api/v1/jobs/{other}/cancel")]:
            response = client.open(path, method=method, headers=AUTH)
            assert response.status_code == 404 and response.json["error"]["code"] == "not_found"
    # A batch id is not a job id, nor the other way round.
    assert client.get(f"/api/v1/jobs/{batch_id}").status_code == 404
    assert client.get(f"/api/v1/batches/{job_id}").status_code == 404
    assert db.hget(keys.job(job_id), "status") == b"queued"  # nothing above touched the real job


# --- fuzzing: any input gets an answer below 500, in JSON, and nothing half-queued ---

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
        assert set(response.json["error"]) - {"images"} == {"code", "message"}  # images: a submission's bad ones
        assert queued == queued_before


def post_json(client, path: str, body: object, headers: dict | None = None):
    """POST ``body`` as JSON, NaN and Infinity included (Python's parser, like the server's, takes them)."""
    return post_raw(client, path, json.dumps(body).encode(), "application/json", headers)


def queue_length(client: redis.Redis) -> int:
    """Jobs waiting in every lane and queue (a client's 17th pending job goes to the bulk lane)."""
    return sum(client.llen(keys.queue_key(name)) for name in keys.QUEUES)


@FUZZ
@given(files=st.lists(image_like_bytes, min_size=1, max_size=MAX_IMAGES + 1))
def test_fuzz_multipart_uploads(web, files):
    client, db = web
    before = queue_length(db)
    response = post_files(client, [("image", (f"{i}.png", data, "image/png")) for i, data in enumerate(files)])
    assert response.status_code in (202, 400, 413, 415), response.text
    assert_answered(response, db, before, len(files))  # a job per image


@FUZZ
@given(
    body=json_values
    | st.fixed_dictionaries(
        {"images": st.lists(image_like_bytes.map(lambda b: base64.b64encode(b).decode()) | json_values, max_size=7)}
    )
)
def test_fuzz_json_predictions(web, body):
    client, db = web
    before = queue_length(db)
    response = post_json(client, "/api/v1/predictions", body)
    assert response.status_code in (202, 400, 413, 415), response.text
    images = body.get("images") if isinstance(body, dict) else None
    assert_answered(response, db, before, len(images) if isinstance(images, list) else 0)  # a job per image


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
    client, db = web
    before = queue_length(db)
    response = post_json(client, "/api/v1/training-jobs", body, AUTH)
    assert response.status_code in (202, 400), response.text
    assert_answered(response, db, before, 1)


@FUZZ
@given(identifier=st.text(min_size=1, max_size=300), wait=st.none() | st.text(max_size=12))
def test_fuzz_ids_in_paths(web, identifier, wait):
    client, db = web
    segment = quote(identifier, safe="")
    query = {"wait": wait} if wait is not None else None
    before = queue_length(db)
    for method, path, headers in [
        ("GET", f"/api/v1/jobs/{segment}", {}),
        ("GET", f"/api/v1/batches/{segment}", {}),
        ("POST", f"/api/v1/jobs/{segment}/cancel", AUTH),
        ("GET", f"/api/v1/models/{segment}", {}),
        ("POST", f"/api/v1/models/{segment}/activate", AUTH),
    ]:
        response = client.open(path, method=method, query_string=query, headers=headers)
        # An id of slashes makes another path, which may be one that takes other methods.
        assert response.status_code in ((400, 404, 405) if "/" in identifier else (400, 404)), (method, path)
        assert_answered(response, db, before, 0)


@FUZZ
@given(request_id=st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=80))
def test_fuzz_request_ids(web, request_id):
    client, _ = web
    echoed = client.get("/healthz", headers={"X-Request-ID": request_id})
    if re.fullmatch(r"[A-Za-z0-9._:-]{1,64}", request_id):
        assert echoed.headers["X-Request-ID"] == request_id
    else:
        assert re.fullmatch("[0-9a-f]{32}", echoed.headers["X-Request-ID"])


def test_predictions_and_polling_can_be_made_to_need_the_token(redis_server):
    config = {"REDIS_URL": database_url(redis_server), "DIGITS_ADMIN_TOKEN": TOKEN, "PREDICTIONS_NEED_TOKEN": True}
    client = create_app(config).test_client()
    files = [("image", ("a.png", image_bytes(), "image/png"))]
    refused = post_files(client, files)
    assert refused.status_code == 401 and refused.json["error"]["code"] == "unauthorized"
    accepted = post_files(client, files, headers=AUTH)
    assert accepted.status_code == 202
    job_url = accepted.json["jobs"][0]["status_url"]
    assert client.get(job_url).status_code == 401
    assert client.get(job_url, headers=AUTH).status_code == 200
    assert client.get("/jobs").status_code == 401


DEEP_JSON = b"[" * 100_000 + b"]" * 100_000  # deeper than any parser's recursion


@pytest.mark.parametrize("path", ["/api/v1/predictions", "/api/v1/training-jobs"])
def test_json_nested_too_deep_is_400_not_500(web, path):
    client, db = web
    assert_rejected(post_raw(client, path, DEEP_JSON, "application/json", AUTH), 400, "invalid_json", db)


def keras_shaped_zip() -> bytes:
    """A zip with the names of a .keras file: enough for the web's format check, which comes first."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("config.json", "{}")
        archive.writestr("metadata.json", "{}")
    return buffer.getvalue()


@pytest.mark.parametrize("card", ["[" * 200_000, "[1, 2]", '"a card"', "{"])
def test_a_model_card_that_is_not_a_json_object_is_400_not_500(web, card):
    client, _ = web
    response = post_files(
        client, [("file", ("m.keras", keras_shaped_zip(), "application/zip"))], "/api/v1/models", AUTH, [("card", card)]
    )
    assert response.status_code == 400 and response.json["error"]["code"] == "invalid_card", response.text


def mpo_bytes() -> bytes:
    """A two-picture MPO, as many cameras write their JPEGs."""
    first, second = Image.new("L", (40, 40), 255), Image.new("L", (40, 40), 0)
    buffer = io.BytesIO()
    first.save(buffer, format="MPO", save_all=True, append_images=[second])
    return buffer.getvalue()


def test_a_multi_picture_jpeg_is_accepted_and_read_from_its_first_picture(web):
    client, db = web
    data = mpo_bytes()
    assert Image.open(io.BytesIO(data)).format == "MPO"
    response = post_files(client, [("image", ("camera.jpg", data, "image/jpeg"))])
    assert response.status_code == 202, response.text
    from model.images.preprocess import decode

    assert decode(data).getextrema() == (255, 255)  # the first picture (white), not the second


def test_protocol_numbers_of_thousands_of_digits_are_refused_not_a_crash(web):
    """Numbers in headers and paths are bounded before they are read (int() refuses over 4,300 digits)."""
    client, db = web
    body = b'{"inputs": [{"name": "pixels", "datatype": "UINT8", "shape": [1, 28, 28], "data": [0]}]}'
    header = {"Inference-Header-Content-Length": "1" * 5000}
    answer = post_raw(client, "/v2/models/digits/infer", body, "application/octet-stream", header)
    assert answer.status_code == 400 and "Inference-Header-Content-Length" in answer.json["error"], answer.text
    answer = post_raw(client, f"/v2/models/digits/versions/{'1' * 5000}/infer", body, "application/json")
    assert answer.status_code == 404 and isinstance(answer.json["error"], str), answer.text
    assert queue_length(db) == 0
