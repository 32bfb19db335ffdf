"""Celery's queues between web and workers (training jobs, model checks): JSON messages only, on
kombu's Redis transport."""

from __future__ import annotations

import base64
import os
import uuid

import redis
import requests
from kombu import Connection

from jobs import keys, queue
from tests.conftest import png_bytes
from tests.service.helpers import wait_for


class RunsACommandWhenUnpickled:
    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def test_a_pickled_message_is_never_unpickled_and_the_worker_goes_on(stack, mnist, tmp_path):
    marker = tmp_path / "unpickled"
    with Connection(stack.redis_url) as connection:
        connection.Producer(serializer="pickle").publish(
            RunsACommandWhenUnpickled(f"touch {marker}"),
            exchange="",
            routing_key=keys.PREDICT_QUEUE,
            headers={"lang": "py", "task": queue.CHECK_TASK, "id": str(uuid.uuid4())},
        )
    image = base64.b64encode(png_bytes(mnist.x_test[0])).decode()
    accepted = requests.post(f"{stack.web_url}/api/v1/predictions", json={"images": [image]}, timeout=10)

    job = wait_for(stack.web_url, accepted.json()["jobs"][0]["job_id"])

    assert job["status"] == "succeeded" and job["result"]["label"] == mnist.y_test[0]
    worker_log = (stack.log_dir / "w1.log").read_text()
    assert "Refusing to deserialize untrusted content of type pickle" in worker_log
    assert not marker.exists()
    assert redis.Redis.from_url(stack.redis_url).llen(keys.PREDICT_QUEUE) == 0  # Celery's queue: refused, not looping
