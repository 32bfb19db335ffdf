"""New work is answered once a replica has it (REPLICA_ACK), and refused, not promised, when none does."""

from __future__ import annotations

import base64
import os
import signal

import redis

from jobs import keys
from jobs.replicas import ReplicaAck
from tests.conftest import TOKEN, png_bytes
from web import create_app


def app_on(url: str, **settings):
    return create_app({"REDIS_URL": url, "SECRET_KEY": "k" * 40, "DIGITS_API_TOKEN": TOKEN, **settings})


def waits(client: redis.Redis) -> int:
    """How many WAIT commands the server has run."""
    return int(client.info("commandstats").get("cmdstat_wait", {}).get("calls", 0))


def one_image(mnist) -> dict:
    return {"images": [base64.b64encode(png_bytes(mnist.x_test[0])).decode()]}


def test_with_a_replica_connected_a_job_is_answered_once_the_replica_has_it(replicated, mnist):
    primary, replica = redis.Redis(port=replicated.primary.port), redis.Redis(port=replicated.replica.port)
    client = app_on(replicated.url).test_client()
    client.post("/api/v1/predictions", json=one_image(mnist))  # the script is loaded once (a second WAIT)
    before = waits(primary)
    answer = client.post("/api/v1/predictions", json=one_image(mnist))
    assert answer.status_code == 202, answer.json
    job_id = answer.json["jobs"][0]["job_id"]
    assert waits(primary) == before + 1
    assert replica.hget(keys.job(job_id), "status") == b"queued"  # read at once: WAIT saw it there


def test_a_primary_that_has_not_seen_the_script_yet_is_sent_it_and_the_job_still_waits(replicated, mnist):
    primary, replica = redis.Redis(port=replicated.primary.port), redis.Redis(port=replicated.replica.port)
    client = app_on(replicated.url).test_client()
    assert client.post("/api/v1/predictions", json=one_image(mnist)).status_code == 202
    primary.script_flush()  # as a replica promoted by a failover has none of the primary's scripts
    before = waits(primary)
    answer = client.post("/api/v1/predictions", json=one_image(mnist))
    assert answer.status_code == 202, answer.json
    assert replica.hget(keys.job(answer.json["jobs"][0]["job_id"]), "status") == b"queued"
    assert waits(primary) == before + 2  # the first try found no script; the second wrote and waited


def test_training_jobs_are_acknowledged_too(replicated, mnist):
    primary, replica = redis.Redis(port=replicated.primary.port), redis.Redis(port=replicated.replica.port)
    client = app_on(replicated.url).test_client()
    client.post("/api/v1/predictions", json=one_image(mnist))  # the script is loaded once (a second WAIT)
    before = waits(primary)
    answer = client.post("/api/v1/training-jobs", json={"epochs": 1}, headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 202, answer.json
    assert waits(primary) == before + 1
    assert replica.hget(keys.job(answer.json["job_id"]), "type") == b"train"


def test_a_replica_that_does_not_acknowledge_in_time_makes_it_a_503_not_a_promise(replicated, mnist):
    app = app_on(replicated.url, REPLICA_ACK="on", REPLICA_ACK_TIMEOUT_MS=200)
    os.kill(replicated.replica.process.pid, signal.SIGSTOP)  # connected, but answers nothing
    try:
        answer = app.test_client().post("/api/v1/predictions", json=one_image(mnist))
    finally:
        os.kill(replicated.replica.process.pid, signal.SIGCONT)
    assert answer.status_code == 503
    assert answer.json["error"]["code"] == "not_replicated" and answer.headers["Retry-After"]
    assert "within 200 ms" in answer.json["error"]["message"]


def test_without_replicas_auto_does_not_wait_and_on_refuses(redis_server, mnist):
    url = redis_server.url.replace("/0", "/1")
    primary = redis.Redis.from_url(url)
    before = waits(primary)
    assert app_on(url).test_client().post("/api/v1/predictions", json=one_image(mnist)).status_code == 202
    assert waits(primary) == before  # auto: no replica, no WAIT (it would only run to its timeout)
    refused = app_on(url, REPLICA_ACK="on", REPLICA_ACK_TIMEOUT_MS=50).test_client()
    assert refused.post("/api/v1/predictions", json=one_image(mnist)).status_code == 503
    primary.flushdb()


def test_auto_asks_the_primary_again_after_a_while(redis_server, replicated):
    alone = ReplicaAck(redis.Redis.from_url(redis_server.url), "auto", refresh_s=0)
    assert not alone.wanted()
    paired = ReplicaAck(redis.Redis(port=replicated.primary.port), "auto", refresh_s=3600)
    assert paired.wanted()
    paired.redis = redis.Redis.from_url(redis_server.url)  # as if the replica had gone
    assert paired.wanted(), "asked again only after refresh_s"
    paired.refresh_s = 0
    assert not paired.wanted()
    assert ReplicaAck(paired.redis, "on").wanted() and not ReplicaAck(paired.redis, "off").wanted()
