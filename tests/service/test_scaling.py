"""Horizontal scaling, shown: several worker "hosts" on one Redis share the work, one dying loses
nothing, a new one joining starts taking work. Each host is its own Celery worker process with
its own --hostname, pointed at the same Redis, as on separate machines."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from jobs import keys
from stack.processes import PREDICT_QUEUES, Stack
from tests.conftest import OUTPUT, png_bytes
from tests.service.helpers import running_stack, submit, wait_for

pytestmark = pytest.mark.slow


def host_of(job: dict) -> str:
    return job["worker"].split("@")[0]


def run_clients(stack: Stack, images: list[bytes], clients: int = 8) -> list[dict]:
    """Each image sent alone, from several clients at once, and waited for."""

    def one(image: bytes) -> dict:
        (job_id,) = submit(stack.web_url, [image])
        return wait_for(stack.web_url, job_id, admin=True)  # to see which worker took it

    with ThreadPoolExecutor(clients) as pool:
        return list(pool.map(one, images))


@pytest.fixture
def hosts():
    workers = dict.fromkeys(("host1", "host2", "host3"), {"queues": PREDICT_QUEUES, "pool": "solo"})
    with running_stack(OUTPUT / "test_scaling", env={"BROKER_VISIBILITY_TIMEOUT": "5"}, workers=workers) as stack:
        yield stack


def test_jobs_spread_survive_a_lost_host_and_reach_a_new_one(hosts, mnist):
    images = [png_bytes(x) for x in mnist.x_test[:300]]
    jobs = run_clients(hosts, images)
    assert Counter(job["status"] for job in jobs) == {"succeeded": 300}
    spread = Counter(host_of(job) for job in jobs)
    assert set(spread) == {"host1", "host2", "host3"}, spread

    # host2 dies while a stream of jobs is in flight: none is lost.
    done = redis.Redis.from_url(hosts.redis_url)
    with ThreadPoolExecutor(1) as background:
        in_flight = background.submit(run_clients, hosts, images)
        while int(done.hget(keys.METRICS_OUTCOMES, "predict:succeeded") or 0) < 350:
            time.sleep(0.05)
        hosts.stop("host2", signal.SIGKILL)
        jobs = in_flight.result(timeout=300)
    assert Counter(job["status"] for job in jobs) == {"succeeded": 300}

    # host4 joins and takes its share.
    hosts.start_worker("host4", queues=PREDICT_QUEUES, pool="solo")
    deadline = time.monotonic() + 120
    while not any(name.startswith("host4@") for name in hosts.wait_for_workers(3)):  # host2 may still look live
        assert time.monotonic() < deadline, "host4 never became ready"
        time.sleep(0.2)
    jobs = run_clients(hosts, images)
    assert Counter(job["status"] for job in jobs) == {"succeeded": 300}
    assert "host4" in Counter(host_of(job) for job in jobs)


def test_workers_answer_celery_inspect_ping(hosts):
    ping = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "worker", "inspect", "ping", "--timeout", "5"],
        env=hosts.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ping.returncode == 0, ping.stderr
    for name in ("host1", "host2", "host3"):
        assert f"{name}@" in ping.stdout and "pong" in ping.stdout
