"""Liveness and takeover are judged by Redis's clock, not each host's.

A host whose clock is off runs the real service code against a real Redis: without libfaketime on
these machines, the host is a child Python process whose ``time.time`` is shifted before anything
is imported (the test's doing; the service has no seam for it). Whatever that process writes and
decides about who is alive must agree with an honest host.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading

import pytest

from jobs import workers
from jobs.records import JobRecords

SKEW_S = 30.0

# argv: offset seconds, Redis URL, then what to do; prints a JSON answer.
SKEWED_HOST = textwrap.dedent(
    """
    import json, sys, time
    offset = float(sys.argv[1])
    real_time = time.time
    time.time = lambda: real_time() + offset  # this host's clock is off; Redis's is not
    import redis
    from jobs import workers
    from jobs.records import JobRecords
    client = redis.Redis.from_url(sys.argv[2])
    records = JobRecords(client)
    action, args = sys.argv[3], sys.argv[4:]
    if action == "beat":
        workers.beat(client, args[0], ["predict"], 1, "litert", 1, 1)
        answer = None
    elif action == "start":
        answer = [started.taken for started in records.start(args[1:], args[0])]
    elif action == "orphans":
        answer = records.running_on_dead_workers(workers.SILENCE_S, resend_every_s=0)
    elif action == "training_beat":
        records.beat(args[0])
        answer = None
    elif action == "fail_silent_training":
        answer = records.fail_silent_training(float(args[0]))
    print(json.dumps(answer))
    """
)


def on_skewed_host(redis_client, offset: float, *args: str):
    kwargs = redis_client.connection_pool.connection_kwargs
    url = f"redis://127.0.0.1:{kwargs['port']}/{kwargs['db']}"
    done = subprocess.run(
        [sys.executable, "-c", SKEWED_HOST, str(offset), url, *args], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def running_job(redis_client, worker: str) -> str:
    records = JobRecords(redis_client)
    (job_id,) = records.create("predict", images=[b"png"]).ids
    assert records.start([job_id], worker)[0].taken
    return job_id


def test_a_slow_worker_is_live_and_keeps_its_jobs(redis_client):
    on_skewed_host(redis_client, -SKEW_S, "beat", "slow@host:1")  # then no other child starts: no pause
    job_id = running_job(redis_client, "slow@host:1")
    assert [w.name for w in workers.live(redis_client)] == ["slow@host:1"]
    assert JobRecords(redis_client).running_on_dead_workers(workers.SILENCE_S, resend_every_s=0) == []
    assert not JobRecords(redis_client).start([job_id], "honest@host:2")[0].taken


@pytest.fixture
def honest_worker(redis_client):
    """A worker on a host with the right time, beating every HEARTBEAT_S as a live one does (a
    child process may take seconds to start on a loaded machine; between beats it stays live)."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.is_set():
            workers.beat(redis_client, "honest@host:1", ["predict"], 1, "litert", 1, 1)
            stop.wait(workers.HEARTBEAT_S)

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    yield "honest@host:1"
    stop.set()
    thread.join()


def test_a_fast_worker_removes_no_one_and_takes_no_live_workers_job(redis_client, honest_worker):
    job_id = running_job(redis_client, honest_worker)
    on_skewed_host(redis_client, SKEW_S, "beat", "fast@host:2")
    assert sorted(w.name for w in workers.live(redis_client)) == ["fast@host:2", honest_worker]
    assert on_skewed_host(redis_client, SKEW_S, "start", "fast@host:2", job_id) == [False]
    assert on_skewed_host(redis_client, SKEW_S, "orphans") == []
    assert JobRecords(redis_client).get(job_id)["worker"] == honest_worker


def test_a_slow_host_sees_live_workers_live_and_takes_no_job_of_theirs(redis_client, honest_worker):
    job_id = running_job(redis_client, honest_worker)
    assert on_skewed_host(redis_client, -SKEW_S, "orphans") == []
    assert on_skewed_host(redis_client, -SKEW_S, "start", "slow@host:2", job_id) == [False]


def test_a_silent_worker_is_still_taken_over(redis_client):
    """The other side: a worker that stopped beating loses its jobs, whatever the clocks say."""
    job_id = running_job(redis_client, "gone@host:1")  # never beat: silent
    assert on_skewed_host(redis_client, -SKEW_S, "start", "slow@host:2", job_id) == [True]


def test_a_training_heartbeat_from_a_slow_host_is_judged_by_redis_time(redis_client):
    records = JobRecords(redis_client)
    (job_id,) = records.create("train").ids
    assert records.start([job_id], "slow@host:1")[0].taken
    on_skewed_host(redis_client, -SKEW_S, "training_beat", job_id)
    assert records.fail_silent_training(10) == [], "a fresh heartbeat judged by the slow host's clock"
    assert on_skewed_host(redis_client, SKEW_S, "fail_silent_training", "10") == []
    assert records.get(job_id)["status"] == "running"
