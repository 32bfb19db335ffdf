"""Security headers on every response, CSRF tokens on the HTML forms, one session key for all web processes."""

from __future__ import annotations

import io
import re
import time

import pytest
from PIL import Image

from jobs import keys
from jobs.records import JobRecords
from stack.redis_server import free_port
from web import create_app
from web.security import CONTENT_SECURITY_POLICY

EXPECTED_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (28, 28), 255).save(buffer, format="PNG")
    return buffer.getvalue()


def form_token(client) -> str:
    page = client.get("/").get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def upload(client, token: str | None):
    data = {"image": (io.BytesIO(png()), "digit.png")}
    if token is not None:
        data["csrf_token"] = token
    return client.post("/predict", data=data, headers={"Accept": "text/html"})


PATHS = ["/", "/jobs", "/train", "/models", "/api/v1/models", "/api/v1/jobs", "/healthz", "/static/style.css", "/nope"]


@pytest.mark.parametrize("path", PATHS)
def test_every_response_carries_the_security_headers(make_app, path):
    response = make_app().test_client().get(path)
    for name, value in EXPECTED_HEADERS.items():
        assert response.headers.get(name) == value, (path, name)
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY and "unsafe-eval" not in CONTENT_SECURITY_POLICY


def test_a_view_with_a_stricter_policy_keeps_it(make_app, redis_client):
    records = JobRecords(redis_client)
    (job_id,) = records.create("predict", fields={"keep_image": "1"}, images=[png()], client="127.0.0.1").ids
    response = make_app().test_client().get(f"/jobs/{job_id}/upload")
    assert response.status_code == 200
    assert response.headers["Content-Security-Policy"] == "default-src 'none'"
    assert response.headers["X-Frame-Options"] == "DENY"


def test_a_form_post_without_a_csrf_token_is_rejected(make_app, redis_client):
    client = make_app().test_client()
    client.get("/")  # has a session, just no token in the post
    response = upload(client, token=None)
    assert response.status_code == 400
    assert "CSRF token is missing" in response.get_data(as_text=True)
    assert redis_client.zcard(keys.RECENT_JOBS) == 0, "a job was created"


def test_a_form_post_with_a_forged_token_is_rejected(make_app, redis_client):
    client = make_app().test_client()
    form_token(client)
    assert upload(client, token="forged").status_code == 400
    assert redis_client.zcard(keys.RECENT_JOBS) == 0


def test_a_form_post_with_the_forms_token_is_accepted(make_app, redis_client):
    client = make_app().test_client()
    response = upload(client, form_token(client))
    assert response.status_code == 303, response.get_data(as_text=True)
    assert redis_client.zcard(keys.RECENT_JOBS) == 1


def test_the_json_api_needs_no_csrf_token(make_app):
    client = make_app().test_client()
    response = client.post("/api/v1/predictions", data={"image": (io.BytesIO(png()), "a.png")})
    assert response.status_code == 202, response.get_data(as_text=True)
    rejected = client.post("/api/v1/training-jobs", json={"arch": "seed"})
    assert rejected.status_code == 401  # the bearer token guards it, not CSRF


def test_the_api_and_the_inference_protocol_open_no_session(make_app, monkeypatch):
    from web.security import SharedKeySessionInterface

    signed = []
    serializer = SharedKeySessionInterface.get_signing_serializer

    def counted(*args):
        signed.append(1)
        return serializer(*args)

    monkeypatch.setattr(SharedKeySessionInterface, "get_signing_serializer", counted)
    client = make_app().test_client()
    client.set_cookie("session", "anything")
    assert client.get("/api/v1/jobs/" + "0" * 32).status_code == 404
    assert client.get("/v2/models/digits").status_code == 200
    assert signed == []  # no cookie read, no serializer built: not per request
    client.get("/")
    assert signed  # pages do


def test_web_processes_without_secret_key_share_one_through_redis(make_app, redis_client):
    first, second = make_app().test_client(), make_app().test_client()
    token = form_token(first)
    second.set_cookie("session", first.get_cookie("session").value)
    assert upload(second, token).status_code == 303
    assert redis_client.get(keys.WEB_SECRET_KEY)

    redis_client.delete(keys.WEB_SECRET_KEY)  # a process that makes up a key of its own rejects the form
    third = make_app().test_client()
    third.set_cookie("session", first.get_cookie("session").value)
    assert upload(third, token).status_code == 400


def test_secret_key_from_the_environment_wins(make_app, redis_client, environ):
    environ.setenv("SECRET_KEY", "k" * 40)
    app = make_app()
    client = app.test_client()
    assert upload(client, form_token(client)).status_code == 303
    assert app.secret_key == "k" * 40
    assert redis_client.get(keys.WEB_SECRET_KEY) is None


def test_without_redis_health_answers_at_once_and_pages_say_503(environ):
    environ.delenv("SECRET_KEY", raising=False)
    client = create_app({"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}).test_client()
    started = time.monotonic()
    assert client.get("/healthz").status_code == 200
    assert time.monotonic() - started < 1
    page = client.get("/")
    assert page.status_code == 503 and page.headers["Retry-After"]


def test_the_session_cookie_is_secure_when_the_request_came_over_https(make_app):
    app = make_app(SECRET_KEY="k" * 40)
    over_https = app.test_client().get("/", base_url="https://digits.example")
    over_http = app.test_client().get("/", base_url="http://digits.example")
    assert "Secure" in over_https.headers["Set-Cookie"]
    assert "Secure" not in over_http.headers["Set-Cookie"]


def test_behind_a_proxy_the_client_address_and_scheme_come_from_it(make_app):
    app = make_app(SECRET_KEY="k" * 40, PROXIES=1)
    forwarded = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}
    response = app.test_client().get("/", headers=forwarded)
    assert "Secure" in response.headers["Set-Cookie"]
    direct = make_app(SECRET_KEY="k" * 40).test_client().get("/", headers=forwarded)
    assert "Secure" not in direct.headers["Set-Cookie"]  # without PROXIES nobody may claim it
