"""Structured logs: one JSON object per line from the web under gunicorn, naming request and job ids."""

from __future__ import annotations

import base64
import io
import json
import time

import requests
from PIL import Image

from tests.conftest import TOKEN
from tests.service.helpers import web_only


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (28, 28), 255).save(buffer, format="PNG")
    return buffer.getvalue()


def read_log_lines(path, wanted, timeout: float = 10) -> list[dict]:
    """Parsed lines of ``path`` once ``wanted(lines)`` is true (gunicorn writes asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        lines = [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]
        if wanted(lines) or time.monotonic() > deadline:
            return lines
        time.sleep(0.1)


def test_the_web_logs_json_lines_with_request_and_job_ids():
    with web_only("test_logs", env={"LOG_FORMAT": "json"}) as (stack, _):
        url = f"{stack.web_url}/api/v1/predictions"
        accepted = requests.post(url, json={"images": [base64.b64encode(png()).decode()] * 2}, timeout=10,
                                 headers={"X-Request-ID": "client-chose-this-1"})  # fmt: skip
        assert accepted.status_code == 202 and accepted.headers["X-Request-ID"] == "client-chose-this-1"
        job_ids = [job["job_id"] for job in accepted.json()["jobs"]]
        rejected = requests.post(url, json={"images": ["@@"]}, timeout=10, headers={"X-Request-ID": "x" * 65})
        assert rejected.status_code == 400
        generated = rejected.headers["X-Request-ID"]
        assert len(generated) == 32 and generated != "x" * 65  # an unusable id is replaced, not echoed
        training = requests.post(f"{stack.web_url}/api/v1/training-jobs", json={"arch": "seed", "epochs": 1},
                                 headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)  # fmt: skip
        assert training.status_code == 202

        log_file = stack.log_dir / "web.log"
        lines = read_log_lines(log_file, lambda ls: sum(line.get("logger") == "web.access" for line in ls) >= 3)

    raw = [line for line in log_file.read_text().splitlines() if line.strip()]
    assert all(line.startswith("{") for line in raw), [line for line in raw if not line.startswith("{")][:3]
    for line in lines:
        assert {"timestamp", "level", "logger", "message"} <= set(line)
    access = [line for line in lines if line["logger"] == "web.access"]
    by_id = {line["request_id"]: line for line in access}
    submission = by_id["client-chose-this-1"]
    assert submission["status"] == 202 and submission["method"] == "POST"
    assert submission["path"] == submission["endpoint"] == "/api/v1/predictions"
    assert submission["job_ids"] == job_ids and submission["batch_id"] == accepted.json()["batch_id"]
    assert by_id[generated]["status"] == 400 and by_id[generated]["error"] == "invalid_base64"
    assert by_id[generated]["endpoint"] == "/api/v1/predictions" and by_id[generated]["duration_ms"] >= 0
    trained = next(line for line in lines if line["logger"] == "web.api" and "training" in line["message"])
    assert trained["job_id"] == training.json()["job_id"]
    assert any(line["logger"] == "gunicorn.error" for line in lines)  # gunicorn's own lines are JSON too


def test_log_format_text_is_for_people():
    with web_only("test_logs_text", env={"LOG_FORMAT": "text"}) as (stack, _):
        requests.get(f"{stack.web_url}/healthz", headers={"X-Request-ID": "plain-id"}, timeout=10)
        log_file = stack.log_dir / "web.log"
        deadline = time.monotonic() + 10
        while "request_id=plain-id" not in log_file.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
    line = next(line for line in log_file.read_text().splitlines() if "request_id=plain-id" in line)
    assert " INFO " in line and "web.access: GET /healthz 200" in line and "status=200" in line
