"""Corrections as Redis keeps them (jobs/feedback.py): a cap, a retention, a held-out share decided by
the job id; and the token the web asks for them (Flask's test client). Corrections over HTTP for
real predictions: tests/service/test_feedback.py."""

from __future__ import annotations

import time

import numpy as np
import pytest

from jobs import keys
from jobs.feedback import HELD_OUT_PERCENT, FeedbackFull, FeedbackLimits, FeedbackStore, is_held_out
from tests.conftest import TOKEN
from web import create_app

ADMIN = {"Authorization": f"Bearer {TOKEN}"}


def test_corrections_need_the_predict_token_where_predictions_do(redis_server):
    settings = {"REDIS_URL": redis_server.url, "PREDICTIONS_NEED_TOKEN": True, "DIGITS_ADMIN_TOKEN": TOKEN}
    web = create_app(settings).test_client()
    url = f"/api/v1/jobs/{'0' * 32}/feedback"
    assert web.post(url, json={"label": 1}).status_code == 401
    assert web.post(url, json={"label": 1}, headers=ADMIN).status_code == 404
    assert web.get("/api/v1/feedback").status_code == 401


def test_the_cap_refuses_a_correction_whole(redis_client):
    store = FeedbackStore(redis_client, FeedbackLimits(max_bytes=2000))
    pixels = np.full((28, 28), 7, np.uint8)
    store.add("a" * 32, 1, 2, 1, pixels, "10.0.0.1")
    used = store.bytes_used()
    assert 784 < used < 1000
    store.add("a" * 32, 3, 2, 1, pixels, "10.0.0.1")  # replacing one takes no more room
    assert abs(store.bytes_used() - used) <= 2  # (the time's digits may differ)
    store.add("b" * 32, 1, 1, 1, pixels, "10.0.0.1")
    both = store.bytes_used()
    with pytest.raises(FeedbackFull):
        store.add("c" * 32, 1, 1, 1, pixels, "10.0.0.1")
    assert store.ids() == ["b" * 32, "a" * 32] and store.bytes_used() == both
    assert store.by_version() == {"1": {"corrected": 1, "confirmed": 1}}
    assert store.delete(["a" * 32, "c" * 32]) == 1
    assert store.by_version() == {"1": {"corrected": 0, "confirmed": 1}} and abs(store.bytes_used() - used) <= 2


def test_old_corrections_are_pruned_after_the_retention(redis_client):
    store = FeedbackStore(redis_client, FeedbackLimits(retention_s=1))
    store.add("a" * 32, 1, 1, 1, np.zeros((28, 28), np.uint8), "10.0.0.1")
    assert store.ids() == ["a" * 32]
    time.sleep(1.2)
    assert store.ids() == [] and store.bytes_used() == 0 and store.by_version() == {}
    assert redis_client.exists(keys.feedback("a" * 32)) == 0


def test_the_held_out_share_is_decided_by_the_job_id_alone():
    ids = [f"{n:032x}" for n in range(2000)]
    held = [job_id for job_id in ids if is_held_out(job_id)]
    assert abs(len(held) / len(ids) - HELD_OUT_PERCENT / 100) < 0.03
    # The same ids on every host and in every run (sha256 of the id, not Python's salted hash).
    assert [n for n in range(40) if is_held_out(f"{n:032x}")] == [8, 12, 22, 24, 28, 29, 32, 34, 36]
