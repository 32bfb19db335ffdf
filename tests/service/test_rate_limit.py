"""RATE_LIMIT: a ceiling on submissions per client with work pending, counted in Redis across gunicorn
processes, answered 429; a client with nothing pending is never refused."""

from __future__ import annotations

import base64
import io

import pytest
import requests
from PIL import Image

from jobs import keys
from settings import Settings
from tests.conftest import OUTPUT, TOKEN, png_bytes
from tests.service.helpers import form_session, running_stack, wait_for, web_only
from web import create_app

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def png_b64() -> str:
    buffer = io.BytesIO()
    Image.new("L", (28, 28), 255).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_over_the_limit_is_429_json_with_retry_after_and_nothing_is_queued():
    with web_only("test_rate_limit", env={"RATE_LIMIT": "4 per minute"}, workers=2) as (stack, client):
        predictions = f"{stack.web_url}/api/v1/predictions"
        training = f"{stack.web_url}/api/v1/training-jobs"
        # The first finds nothing pending (no worker here takes it): it is not counted; the rest are.
        statuses = [requests.post(predictions, json={"images": [png_b64()]}, timeout=10).status_code for _ in range(3)]
        statuses.append(requests.post(predictions, json={"images": ["@@"]}, timeout=10).status_code)  # counts too
        statuses.append(
            requests.post(training, json={"arch": "seed", "epochs": 1}, headers=AUTH, timeout=10).status_code
        )
        assert statuses == [202, 202, 202, 400, 202]  # one budget for both kinds of submission, on both processes
        queued = client.llen(keys.lane(keys.PREDICT_QUEUE)), client.llen(keys.TRAIN_QUEUE)

        for url, body, headers in [(predictions, {"images": [png_b64()]}, {}), (training, {"epochs": 1}, AUTH)]:
            refused = requests.post(url, json=body, headers=headers, timeout=10)
            assert refused.status_code == 429, refused.text
            assert refused.headers["Content-Type"].startswith("application/json")
            error = refused.json()["error"]
            assert error["code"] == "rate_limited" and "4 per 1 minute" in error["message"]
            assert 1 <= int(refused.headers["Retry-After"]) <= 61
        session, token = form_session(stack.web_url)
        form = session.post(
            f"{stack.web_url}/predict",
            data={"csrf_token": token},
            files={"image": ("a.png", b"x", "image/png")},
            headers={"Accept": "text/html"},
            timeout=10,
        )
        assert form.status_code == 429  # the HTML form is no way around it ...
        assert form.headers["Content-Type"].startswith("text/html") and "retry after" in form.text  # ... and says so

        assert (client.llen(keys.lane(keys.PREDICT_QUEUE)), client.llen(keys.TRAIN_QUEUE)) == queued
        # Reading is not limited: polling and listing go on.
        assert all(requests.get(f"{stack.web_url}/api/v1/models", timeout=10).ok for _ in range(10))
        assert requests.get(f"{stack.web_url}/api/v1/jobs/{'0' * 32}", timeout=10).status_code == 404


def test_an_empty_rate_limit_disables_it():
    with web_only("test_rate_limit_off", env={"RATE_LIMIT": ""}) as (stack, _):
        url = f"{stack.web_url}/api/v1/predictions"
        statuses = {requests.post(url, json={"images": ["@@"]}, timeout=10).status_code for _ in range(120)}
    assert statuses == {400}


def test_a_malformed_rate_limit_stops_the_web_at_start():
    with pytest.raises(ValueError, match="RATE_LIMIT"):
        create_app({"RATE_LIMIT": "lots per second"})


def test_without_redis_submissions_are_503_not_500():
    with web_only("test_rate_limit_no_redis", env={"RATE_LIMIT": "50 per second"}) as (stack, client):
        client.shutdown(nosave=True)
        response = requests.post(f"{stack.web_url}/api/v1/predictions", json={"images": [png_b64()]}, timeout=30)
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "unavailable" and response.headers["Retry-After"]


def test_a_client_that_waits_for_each_answer_is_never_refused_under_the_defaults(mnist):
    image = base64.b64encode(png_bytes(mnist.x_test[0])).decode()
    default = Settings().rate_limit
    with running_stack(OUTPUT / "test_rate_limit_polite", env={"RATE_LIMIT": default}) as stack:
        session = requests.Session()
        statuses, labels = [], []
        for _ in range(100):  # as fast as it can, one at a time
            accepted = session.post(f"{stack.web_url}/api/v1/predictions", json={"images": [image]}, timeout=30)
            statuses.append(accepted.status_code)
            if accepted.status_code == 202:
                labels.append(wait_for(stack.web_url, accepted.json()["jobs"][0]["job_id"])["result"]["label"])
    assert statuses == [202] * 100, f"refused: {[s for s in statuses if s != 202]} under RATE_LIMIT={default!r}"
    assert labels == [int(mnist.y_test[0])] * 100
