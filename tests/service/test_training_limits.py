"""Training within bounds: a few jobs queued at most, a time limit per job, a cap on stored versions."""

from __future__ import annotations

import pytest
import requests

from jobs.model_store import ModelStore
from tests.conftest import OUTPUT, TOKEN
from tests.service.helpers import running_stack, wait_for, web_only

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def train(base: str, **params) -> requests.Response:
    return requests.post(f"{base}/api/v1/training-jobs", json=params, headers=AUTH, timeout=10)


def test_at_most_the_configured_number_of_training_jobs_wait():
    with web_only("test_training_queue_limit", env={"MAX_QUEUED_TRAINING": "2"}, workers=1) as (stack, _):
        statuses = [train(stack.web_url, arch="seed").status_code for _ in range(3)]
        refused = train(stack.web_url, arch="seed")
    assert statuses == [202, 202, 429]
    assert refused.json()["error"]["code"] == "too_many_training_jobs" and refused.headers["Retry-After"]


def test_a_full_model_store_refuses_new_versions_before_training():
    with web_only("test_model_store_full", env={"MAX_MODEL_VERSIONS": "1"}, workers=1) as (stack, client):
        ModelStore(client).ensure_seeded()
        refused = train(stack.web_url, arch="seed")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "model_store_full", refused.text


@pytest.mark.slow
@pytest.mark.parametrize("pool", ["prefork", "solo"])  # solo: Celery's own soft limit never fires
def test_a_training_job_over_its_time_limit_is_stopped_and_fails_saying_so(pool):
    workers = {"t1": {"queues": "train", "pool": pool}}
    with running_stack(OUTPUT / "test_training_time_limit", env={"TRAINING_TIME_LIMIT": "8"}, workers=workers) as stack:
        accepted = train(stack.web_url, arch="default", epochs=20)
        job = wait_for(stack.web_url, accepted.json()["job_id"], timeout=120, admin=True)
        alive = stack.processes["t1"].poll() is None
    assert job["status"] == "failed" and job["error"]["code"] == "time_limit", job
    assert "8 s" in job["error"]["message"] and alive
    assert job["worker"].startswith("t1@"), job  # in a pool process too, named after its worker


@pytest.mark.slow
def test_a_training_job_whose_time_runs_out_while_tensorflow_loads_fails_saying_so():
    # Loading TensorFlow in the pool process takes seconds (more on a busy machine): with a 1 s
    # limit, Celery's soft limit lands in the import, before any training.
    workers = {"t1": {"queues": "train"}}
    with running_stack(
        OUTPUT / "test_training_time_limit_at_start", env={"TRAINING_TIME_LIMIT": "1"}, workers=workers
    ) as stack:
        accepted = train(stack.web_url, arch="seed", epochs=1)
        job = wait_for(stack.web_url, accepted.json()["job_id"], timeout=60)
    assert job["status"] == "failed" and job["error"]["code"] == "time_limit", job
