"""Tokens by role: the admin token trains and manages models; the predict token (when predictions
need one) predicts and reads, and nothing more; wrong tokens are throttled per client.

All decided by the web alone: the app in process through Flask's test client, on a Redis of its own.
"""

from __future__ import annotations

import io

import pytest
import redis
from flask.testing import FlaskClient
from PIL import Image
from werkzeug.test import TestResponse

from jobs import keys
from model.shipped import SHIPPED_MODEL
from tests.conftest import private_redis
from web import create_app

ADMIN, PREDICT = "admin-token-not-secret", "predict-token-not-secret"


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (28, 28), 255).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def web():
    settings = {"DIGITS_ADMIN_TOKEN": ADMIN, "DIGITS_PREDICT_TOKEN": PREDICT, "PREDICTIONS_NEED_TOKEN": True,
                "DIGITS_API_TOKEN": "", "TOKEN_FAILURES_PER_MINUTE": 5}  # fmt: skip
    with private_redis() as server:
        client = redis.Redis.from_url(server.url)
        client.set(keys.MODEL_ACTIVE, 1)  # a version for the reads below: the shipped model
        yield create_app({"REDIS_URL": server.url, **settings}).test_client(), client


def call(web: FlaskClient, method: str, path: str, token: str | None = None, files=None, **kwargs) -> TestResponse:
    """``files`` as requests takes them ({field: bytes or (filename, bytes)}), sent as a multipart upload."""
    if files:
        parts = {field: part if isinstance(part, tuple) else (f"{field}.bin", part) for field, part in files.items()}
        kwargs["data"] = {field: (io.BytesIO(data), name) for field, (name, data) in parts.items()}
    return web.open(path, method=method, headers=bearer(token) if token else {}, **kwargs)


def test_the_predict_token_predicts_and_reads_but_manages_nothing(web):
    app, _ = web
    accepted = call(app, "POST", "/api/v1/predictions", PREDICT, files={"image": png()})
    assert accepted.status_code == 202
    job_url = accepted.json["jobs"][0]["status_url"]
    assert call(app, "GET", job_url, PREDICT).status_code == 200
    assert call(app, "GET", "/api/v1/models", PREDICT).status_code == 200
    assert call(app, "GET", "/api/v1/models", None).status_code == 401  # model reads need it too

    upload = {"file": ("m.keras", SHIPPED_MODEL.read_bytes())}
    for method, path, kwargs in [
        ("POST", "/api/v1/training-jobs", {"json": {"arch": "seed"}}),
        ("POST", "/api/v1/models/1/activate", {}),
        ("POST", "/api/v1/models", {"files": upload}),
        ("DELETE", "/api/v1/models/1", {}),
        ("DELETE", job_url, {}),
    ]:
        refused = call(app, method, path, PREDICT, **kwargs)
        assert refused.status_code == 403, (method, path, refused.text)
        assert refused.json["error"]["code"] == "forbidden"


def test_the_admin_token_does_both(web):
    app, _ = web
    assert call(app, "POST", "/api/v1/predictions", ADMIN, files={"image": png()}).status_code == 202
    training = call(app, "POST", "/api/v1/training-jobs", ADMIN, json={"arch": "seed"})
    assert training.status_code == 202
    assert call(app, "DELETE", f"/api/v1/jobs/{training.json['job_id']}", ADMIN).status_code == 202


def test_wrong_tokens_are_throttled_per_client_but_never_the_right_one(web):
    app, client = web
    statuses = [call(app, "GET", "/api/v1/models", "guess").status_code for _ in range(6)]
    assert statuses == [403] * 5 + [429]
    throttled = call(app, "GET", "/api/v1/models", "another guess")
    assert throttled.status_code == 429 and 1 <= int(throttled.headers["Retry-After"]) <= 60
    assert throttled.json["error"]["code"] == "too_many_token_failures"
    # Whoever shares the address with a guesser is not locked out: the token is checked first.
    assert call(app, "GET", "/api/v1/models", PREDICT).status_code == 200

    other = app.get("/api/v1/models", headers=bearer(PREDICT), environ_base={"REMOTE_ADDR": "127.0.0.2"})
    assert other.status_code == 200  # another client address is not held back
    client.delete(keys.token_failures("127.0.0.1"))


def test_the_inference_protocol_takes_the_same_tokens(web):
    app, _ = web
    malformed = {"inputs": []}  # past the token, a 400: no worker is needed to tell
    refused = call(app, "POST", "/v2/models/digits/infer", None, json=malformed)
    assert refused.status_code == 401 and isinstance(refused.json["error"], str)
    assert call(app, "POST", "/v2/models/digits/infer", PREDICT, json=malformed).status_code == 400
    assert call(app, "GET", "/v2/models/digits", None).status_code == 401
    assert call(app, "GET", "/v2/models/digits", PREDICT).status_code == 200
    assert call(app, "GET", "/v2/health/live", None).status_code == 200  # probes stay open
