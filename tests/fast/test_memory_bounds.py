"""Redis memory can never stop the service: the scripts that start, release and finish accepted
work free before they write, so they complete on a full Redis under noeviction; ended jobs are
bounded per client and in all; the caps are added up against maxmemory at start; an admin can
purge ended jobs. (The flood through the whole service is tests/test_redis_flood.py.)"""

from __future__ import annotations

import io
import os
import time

import pytest
import redis

from jobs import keys
from jobs import records as rec
from jobs.memory import Caps, MemoryBudgetError, check_budget
from tests.conftest import TOKEN
from web import create_app

MiB = 1024 * 1024


def fill(client: redis.Redis) -> None:
    """Write until Redis refuses five times in a row: it is over maxmemory from here on."""
    i = refused = 0
    while refused < 5:
        try:
            client.set(f"filler:{i}", os.urandom(100))
            refused = 0
        except redis.exceptions.OutOfMemoryError:
            refused += 1
        i += 1


WRITE_FIRST = "redis.call('HSET', KEYS[1], 'status', 'succeeded') return 1"  # what finish did first before


@pytest.fixture
def small_redis(own_redis):
    return redis.Redis.from_url(own_redis(maxmemory="4mb").url)


def test_accepted_work_starts_releases_and_finishes_on_a_full_redis(small_redis):
    records = rec.JobRecords(small_redis)
    ids = records.create("predict", 6, batch_id=rec.new_job_id(), client="10.0.0.4", images=[b"i" * 500] * 6).ids
    records.start(ids[:4], "w1")
    fill(small_redis)
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        small_redis.eval(WRITE_FIRST, 1, keys.job(ids[0]))  # full, truly: a script writing first is refused
    assert [job.taken for job in records.start(ids[4:], "w1")] == [True, True]  # queued work starts
    assert records.release(ids[3:4], "w1") == ids[3:4]  # and goes back when its worker lets go
    ended = records.finish([rec.Outcome(job_id, rec.SUCCEEDED, result={"label": 3}) for job_id in ids])
    assert ended == ids
    assert [job["status"] for job in records.get_many(ids)] == [rec.SUCCEEDED] * 6
    assert records.pending("10.0.0.4") == 0 and not small_redis.exists(keys.job_image(ids[0]))


def test_ended_jobs_are_bounded_per_client_and_in_all(redis_client):
    records = rec.JobRecords(redis_client, finished_limits=rec.FinishedLimits(jobs=50, per_client=20))

    def run(client: str, count: int) -> list[str]:
        batch_id = rec.new_job_id()
        ids = records.create("predict", count, batch_id=batch_id, client=client).ids
        for job_id in ids:  # one by one: each end is later than the one before
            records.finish([rec.Outcome(job_id, rec.SUCCEEDED, result={})])
        return ids

    first = run("10.0.0.1", 30)
    kept = [job is not None for job in records.get_many(first)]
    assert kept == [False] * 10 + [True] * 20  # its own oldest went first
    assert records.batch(rec.new_job_id()) is None
    others = run("10.0.0.2", 20) + run("10.0.0.3", 20)
    assert all(records.get_many(others))
    kept = [job is not None for job in records.get_many(first)]
    assert sum(kept) == 10 and kept[-10:] == [True] * 10  # 50 in all: the oldest of anyone's went
    assert redis_client.zcard(keys.FINISHED_JOBS) == 50


def test_the_ended_jobs_are_counted_once_a_hundredth_of_the_limit_has_ended_and_never_pass_it_by_more(redis_client):
    records = rec.JobRecords(redis_client, finished_limits=rec.FinishedLimits(jobs=10_000, per_client=300))
    ids = records.create("predict", 400, client="10.0.0.1").ids
    redis_client.config_resetstat()
    for job_id in ids:
        records.finish([rec.Outcome(job_id, rec.SUCCEEDED, result={})])
        assert redis_client.zcard(keys.finished_by_client("10.0.0.1")) <= 300 + 3
    counted = redis_client.info("commandstats")["cmdstat_zcard"]["calls"] - 400  # less this test's own
    assert counted <= 2 * (400 // 3 + 1)  # the index and the client's, every third finish
    assert redis_client.zcard(keys.finished_by_client("10.0.0.1")) >= 300


def test_forgetting_an_ended_job_costs_three_commands_and_its_batch_and_indexes_one_for_all(redis_client):
    records = rec.JobRecords(redis_client)
    batch_id = rec.new_job_id()
    ids = records.create("predict", 100, batch_id=batch_id, client="10.0.0.1", images=[b"png"] * 100).ids
    records.finish([rec.Outcome(job_id, rec.SUCCEEDED, result={}) for job_id in ids])
    redis_client.config_resetstat()
    assert records.forget_finished() == 100
    stats = redis_client.info("commandstats")
    calls = sum(v["calls"] for k, v in stats.items() if k != "cmdstat_config|resetstat")
    assert calls <= 3 * 100 + 10, stats  # its owners read, its status read, its record and image deleted
    assert redis_client.zcard(keys.FINISHED_JOBS) == 0 and redis_client.zcard(keys.finished_by_client("10.0.0.1")) == 0
    assert not redis_client.exists(*[keys.job(job_id) for job_id in ids])
    assert records.batch(batch_id) is None and not redis_client.exists(keys.batch_unfinished(batch_id))


def test_a_batch_is_forgotten_with_its_jobs_and_an_admin_can_purge_every_ended_job(redis_server):
    url = redis_server.url.rsplit("/", 1)[0] + "/3"
    client = redis.Redis.from_url(url)
    client.flushdb()
    app = create_app({"REDIS_URL": url, "DIGITS_ADMIN_TOKEN": TOKEN, "RATE_LIMIT": ""})
    records = app.extensions["digits"].records
    batch_id = rec.new_job_id()
    done = records.create("predict", 3, batch_id=batch_id, client="10.0.0.5").ids
    records.finish([rec.Outcome(job_id, rec.SUCCEEDED, result={}) for job_id in done])
    (waiting,) = records.create("predict", client="10.0.0.5").ids
    web = app.test_client()
    assert web.post("/api/v1/admin/purge-finished").status_code in (401, 403)
    answer = web.post("/api/v1/admin/purge-finished", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200 and answer.json == {"deleted": 3}
    assert records.get_many(done) == [None] * 3 and records.batch(batch_id) is None
    assert records.get(waiting)["status"] == rec.QUEUED  # unfinished work stays
    client.flushdb()


def test_caps_that_do_not_fit_maxmemory_stop_the_web_at_start(own_redis):
    defaults = Caps(256 * MiB, 40_000, 20, 8 * MiB, 64 * MiB)
    check_budget(defaults, 1024 * MiB, 0.85)  # the defaults fit a 1 GB Redis
    with pytest.raises(MemoryBudgetError, match="MAX_QUEUED_BYTES"):
        check_budget(Caps(512 * MiB, 80_000, 50, 16 * MiB, 64 * MiB), 1024 * MiB, 0.85)  # the old defaults
    with pytest.raises(MemoryBudgetError, match="no limit"):
        check_budget(Caps(0, 80_000, 20, 8 * MiB, 64 * MiB), 1024 * MiB, 0.85)
    check_budget(Caps(0, 0, 0, 0, 0), 0, 0.85)  # no maxmemory: nothing to check against
    server = own_redis(maxmemory="64mb")
    with pytest.raises(MemoryBudgetError, match="64 MiB"):
        create_app({"REDIS_URL": server.url, "DIGITS_ADMIN_TOKEN": TOKEN})
    small = {"MAX_QUEUED_BYTES": 8 * MiB, "MAX_FINISHED_JOBS": 5000, "MAX_MODEL_VERSIONS": 2,
             "MAX_MODEL_BYTES": 4 * MiB, "MAX_FEEDBACK_BYTES": 1 * MiB}  # fmt: skip
    assert create_app({"REDIS_URL": server.url, "DIGITS_ADMIN_TOKEN": TOKEN, **small})


def test_new_work_is_refused_above_the_high_water_mark_and_accepted_again_below(mnist, own_redis):
    from tests.conftest import png_bytes

    server = own_redis(maxmemory="16mb")
    client = redis.Redis.from_url(server.url)
    small = {"MAX_QUEUED_BYTES": MiB, "MAX_FINISHED_JOBS": 500, "MAX_MODEL_VERSIONS": 1, "MAX_MODEL_BYTES": MiB,
             "MAX_FEEDBACK_BYTES": MiB // 4, "RATE_LIMIT": ""}  # fmt: skip
    web = create_app({"REDIS_URL": server.url, "DIGITS_ADMIN_TOKEN": TOKEN, **small}).test_client()
    image = {"image": (io.BytesIO(png_bytes(mnist.x_test[0])), "seven.png")}
    assert web.post("/api/v1/predictions", data=image).status_code == 202
    filler = 0
    while client.info("memory")["used_memory"] < 0.9 * 16 * MiB:  # above 85%, below the limit
        client.set(f"filler:{filler}", os.urandom(10_000))
        filler += 1
    time.sleep(0.3)  # the web's last reading of Redis's memory is out of date
    refused = web.post("/api/v1/predictions", data={"image": (io.BytesIO(png_bytes(mnist.x_test[0])), "a.png")})
    assert refused.status_code == 503 and refused.json["error"]["code"] == "store_busy"
    assert int(refused.headers["Retry-After"]) >= 1
    client.delete(*[f"filler:{i}" for i in range(filler)])
    time.sleep(0.3)
    again = web.post("/api/v1/predictions", data={"image": (io.BytesIO(png_bytes(mnist.x_test[0])), "b.png")})
    assert again.status_code == 202
