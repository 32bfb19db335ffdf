"""A long poll on a batch reads nothing per wake, however many jobs the batch holds: each finish
notice says how many jobs the batch has left, and the waiters on one batch share one reading of its
counter a second (in case a notice was lost). Counted with Redis's own INFO commandstats while real
finish scripts end the jobs and a real JobWaiter (its pub/sub listener included) holds the waits."""

from __future__ import annotations

import threading
import time

import redis

from jobs import keys
from jobs import records as rec
from web.waiting import JobWaiter

JOBS, WAITERS, ROUNDS = 1000, 200, 10
CONNECTING = {"select", "client|setinfo", "hello", "ping", "subscribe"}


def command_calls(client: redis.Redis) -> dict[str, int]:
    return {name.removeprefix("cmdstat_"): stats["calls"] for name, stats in client.info("commandstats").items()}


def finish_in_rounds(records: rec.JobRecords, job_ids: list[str]) -> None:
    """End the jobs in ROUNDS finish calls: ROUNDS notices, each naming the batch."""
    for chunk in range(ROUNDS):
        ended = job_ids[chunk * JOBS // ROUNDS : (chunk + 1) * JOBS // ROUNDS]
        records.finish([rec.Outcome(job_id, rec.SUCCEEDED, result={"label": 1}) for job_id in ended])
        time.sleep(0.05)


def test_waiters_on_a_batch_read_nothing_per_wake_and_share_one_reading_a_second(redis_client):
    records = rec.JobRecords(redis_client)
    # What the finishes cost Redis alone, with no one waiting: subtracted below.
    alone = records.create("predict", JOBS, batch_id=rec.new_job_id(), client="10.0.0.9").ids
    before = command_calls(redis_client)
    finish_in_rounds(records, alone)
    finishes = {name: calls - before.get(name, 0) for name, calls in command_calls(redis_client).items()}

    batch_id = rec.new_job_id()
    job_ids = records.create("predict", JOBS, batch_id=batch_id, client="10.0.0.9").ids
    url = redis_client.connection_pool.connection_kwargs
    waiter = JobWaiter(lambda: redis.Redis(**url), max_waits=10_000, max_waits_per_client=10_000)
    answers: list[int] = []

    def wait(i: int) -> None:
        answers.append(waiter.wait_batch(batch_id, 30, lambda: records.batch_unfinished(batch_id), f"client-{i % 7}"))

    threads = [threading.Thread(target=wait, args=(i,)) for i in range(WAITERS)]
    for thread in threads:
        thread.start()
    time.sleep(1)  # every waiter is in, and the first readings are done
    before, started = command_calls(redis_client), time.monotonic()
    finish_in_rounds(records, job_ids)
    for thread in threads:
        thread.join(10)
    after, seconds = command_calls(redis_client), time.monotonic() - started
    assert answers == [0] * WAITERS  # every wait ended when the last job did
    waiting = {name: calls - before.get(name, 0) - finishes.get(name, 0) for name, calls in after.items()}
    # (a connection's set-up, and the script loaded once by the first run, are not the waits')
    waiting = {name: calls for name, calls in waiting.items() if calls > 0 and name not in CONNECTING}
    # At most one reading of the counter a second for all 200 waiters together, none per notice,
    # nothing else (the waits before this change read all 1,000 records per waiter per wake).
    assert set(waiting) <= {"get"}, waiting
    assert waiting.get("get", 0) <= seconds + 2, f"{waiting} in {seconds:.1f} s, {ROUNDS} notices, {WAITERS} waiters"
    assert waiter.waiting == 0


def test_the_counter_follows_the_jobs_and_a_wait_counts_against_its_client(redis_client):
    records = rec.JobRecords(redis_client)
    batch_id = rec.new_job_id()
    first, second = records.create("predict", 2, batch_id=batch_id, client="10.0.0.9").ids
    assert records.batch_unfinished(batch_id) == 2
    pubsub = redis_client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(keys.JOBS_FINISHED_CHANNEL)
    pubsub.get_message(timeout=1)
    records.finish([rec.Outcome(first, rec.SUCCEEDED, result={})])
    notice = rec.FinishedNotice.parse(pubsub.get_message(timeout=2)["data"])
    assert notice.ids == [first] and notice.batches == {batch_id: 1}  # what a waiter needs, read from nothing
    records.finish([rec.Outcome(first, rec.FAILED, result={})])  # ended already: not counted twice
    assert records.batch_unfinished(batch_id) == 1
    url = redis_client.connection_pool.connection_kwargs
    waiter = JobWaiter(lambda: redis.Redis(**url), max_waits=100, max_waits_per_client=1)
    held = threading.Thread(
        target=waiter.wait_batch, args=(batch_id, 5, lambda: records.batch_unfinished(batch_id), "10.0.0.9")
    )
    held.start()
    time.sleep(0.3)
    started = time.monotonic()
    # The client's one wait is in use: a second is answered at once, with the count as it stands.
    assert waiter.wait_batch(batch_id, 5, lambda: records.batch_unfinished(batch_id), "10.0.0.9") == 1
    assert time.monotonic() - started < 0.5
    records.finish([rec.Outcome(second, rec.CANCELLED, error=rec.error("cancelled", "test"))])
    held.join(3)
    assert not held.is_alive() and records.batch_unfinished(batch_id) == 0


def test_a_lost_notice_delays_the_waiters_by_about_a_second(redis_client):
    records = rec.JobRecords(redis_client)
    batch_id = rec.new_job_id()
    records.create("predict", 3, batch_id=batch_id)
    url = redis_client.connection_pool.connection_kwargs
    waiter = JobWaiter(lambda: redis.Redis(**url), max_waits=100, max_waits_per_client=100)
    ended: list[float] = []

    def wait() -> None:
        waiter.wait_batch(batch_id, 20, lambda: records.batch_unfinished(batch_id), "10.0.0.8")
        ended.append(time.monotonic())

    threads = [threading.Thread(target=wait) for _ in range(20)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    redis_client.delete(keys.batch_unfinished(batch_id))  # the jobs ended, and no notice said so
    lost_at = time.monotonic()
    for thread in threads:
        thread.join(10)
    assert len(ended) == 20 and max(ended) - lost_at < 2.5  # the one that looks each second woke the rest


def test_a_finished_batch_polled_again_is_answered_without_reading_its_jobs_again(redis_client, make_app):
    records = rec.JobRecords(redis_client)
    batch_id = rec.new_job_id()
    job_ids = records.create("predict", 300, batch_id=batch_id, client="10.0.0.9").ids
    web = make_app().test_client()
    path = f"/api/v1/batches/{batch_id}"
    records.finish([rec.Outcome(job_id, rec.SUCCEEDED, result={"label": 1}) for job_id in job_ids[:-1]])
    assert web.get(path).get_json()["done"] is False
    records.finish([rec.Outcome(job_ids[-1], rec.SUCCEEDED, result={"label": 2})])

    first = web.get(path)
    assert first.get_json()["done"] and first.get_json()["jobs"][-1]["result"]["label"] == 2  # nothing stale
    before = command_calls(redis_client)
    again = [web.get(path) for _ in range(20)]
    calls = {name: count - before.get(name, 0) for name, count in command_calls(redis_client).items()}

    assert all(answer.status_code == 200 and answer.data == first.data for answer in again)
    read = {name: calls.get(name, 0) for name in ("hgetall", "hmget", "lrange")}
    assert read == {"hgetall": 0, "hmget": 0, "lrange": 0}, f"20 polls of a finished batch read {read}"


def test_waiters_on_single_jobs_read_their_record_once_while_the_notices_can_be_trusted(redis_client):
    records = rec.JobRecords(redis_client)
    job_ids = records.create("predict", WAITERS, client="10.0.0.9").ids
    url = redis_client.connection_pool.connection_kwargs
    waiter = JobWaiter(lambda: redis.Redis(**url), max_waits=10_000, max_waits_per_client=10_000)
    answers: list[str] = []

    def wait(job_id: str) -> None:
        answers.append(waiter.wait(job_id, 30, lambda: records.get(job_id), "10.0.0.9")["status"])

    threads = [threading.Thread(target=wait, args=(job_id,)) for job_id in job_ids]
    before = command_calls(redis_client)
    for thread in threads:
        thread.start()
    time.sleep(3.5)
    reads = command_calls(redis_client).get("hgetall", 0) - before.get("hgetall", 0)
    records.finish([rec.Outcome(job_id, rec.SUCCEEDED, result={"label": 1}) for job_id in job_ids])
    for thread in threads:
        thread.join(10)
    assert answers == ["succeeded"] * WAITERS
    # Each read its record once, on arrival; a re-read each second would be 3 more each.
    assert reads <= WAITERS * 1.2, f"{WAITERS} waits read {reads} records in 3.5 s"


def test_a_notice_lost_while_the_listener_was_away_is_made_up_for_when_it_is_back(redis_client):
    records = rec.JobRecords(redis_client)
    (job_id,) = records.create("predict", 1, client="10.0.0.9").ids
    url = redis_client.connection_pool.connection_kwargs
    waiter = JobWaiter(lambda: redis.Redis(**url), max_waits=10, max_waits_per_client=10)
    answer: list[tuple[str, float]] = []

    def wait() -> None:
        status = waiter.wait(job_id, 20, lambda: records.get(job_id), "10.0.0.9")["status"]
        answer.append((status, time.monotonic()))

    thread = threading.Thread(target=wait)
    thread.start()
    time.sleep(0.5)
    redis_client.client_kill_filter(_type="pubsub")  # the listener is cut off...
    records.finish([rec.Outcome(job_id, rec.SUCCEEDED, result={"label": 1})])  # ...and misses this notice
    ended_at = time.monotonic()
    thread.join(10)
    assert answer and answer[0][0] == "succeeded"
    assert answer[0][1] - ended_at < 3, "the wait learnt of the end only from its periodic re-read"
