"""What a worker process holds follows from what it serves: a training-only worker loads no
prediction model and is no prediction capacity."""

from __future__ import annotations

import redis
import requests

from jobs import workers
from tests.conftest import OUTPUT, running_stack


def test_a_training_worker_loads_no_prediction_model_and_is_not_ready_capacity():
    with running_stack(OUTPUT / "test_worker_roles", workers={"train1": {"queues": "train"}}) as stack:
        ready = requests.get(f"{stack.web_url}/readyz", timeout=10)
        (trainer,) = workers.live(redis.Redis.from_url(stack.redis_url))
        log = (stack.log_dir / "train1.log").read_text()

    assert ready.status_code == 503 and ready.json()["status"] == "no_workers"
    assert [w["model_version"] for w in ready.json()["workers"]] == [None]  # listed, serving nothing
    assert trainer.queues == ("train",) and trainer.model_version is None and not trainer.predicts
    assert "serving model version" not in log
    assert trainer.rss_bytes < 400 * 2**20, "a training worker at rest holds no TensorFlow model"
