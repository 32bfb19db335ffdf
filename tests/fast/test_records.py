"""Job records in a real Redis: lifecycle, first-finish-wins, expiry, notices, cancellation."""

from __future__ import annotations

import json
import os
import time

import pytest

from jobs import keys
from jobs import records as rec


def test_lifecycle_queued_running_succeeded(redis_client):
    records = rec.JobRecords(redis_client, ttl_seconds=60)
    (job_id,) = records.create("predict").ids
    job = records.get(job_id)
    assert job["status"] == "queued" and job["type"] == "predict" and job["created_at"].endswith("Z")
    assert job["started_at"] is None and job["result"] is None

    assert [job.status for job in records.start([job_id], "w1")] == ["queued"]
    assert records.get(job_id)["status"] == "running"

    ended = records.finish([rec.Outcome(job_id, "succeeded", result={"label": 3})])
    job = records.get(job_id)
    assert ended == [job_id]
    assert job["status"] == "succeeded" and job["result"] == {"label": 3} and job["finished_at"]


def test_first_finish_wins(redis_client):
    records = rec.JobRecords(redis_client)
    (job_id,) = records.create("predict").ids
    assert records.finish([rec.Outcome(job_id, "succeeded", result={"label": 1})]) == [job_id]
    assert records.finish([rec.Outcome(job_id, "succeeded", result={"label": 9})]) == []
    (again,) = records.start([job_id], "w2")
    assert again.status == "succeeded" and not again.taken  # a redelivery sees it ended
    assert records.get(job_id)["result"] == {"label": 1}


def test_a_start_costs_redis_three_commands_a_job_beyond_what_the_batch_shares(redis_client):
    records = rec.JobRecords(redis_client)
    calls = {}
    for count in (1, 65):
        ids = records.create("predict", count=count, images=[b"png"] * count).ids
        redis_client.config_resetstat()
        assert all(job.taken and job.image == b"png" for job in records.start(ids, "w1"))
        stats = redis_client.info("commandstats")
        calls[count] = sum(v["calls"] for k, v in stats.items() if k != "cmdstat_config|resetstat")
    assert calls[65] <= calls[1] + 3 * 64  # its record read and written, its image read
    assert redis_client.hget(keys.job(ids[0]), "deliveries") == b"1"
    assert all(job.suspect for job in records.start(ids, "w2"))  # w1 never beat: taken over
    assert redis_client.hget(keys.job(ids[0]), "deliveries") == b"2"


def test_a_job_given_twice_in_one_finish_ends_and_counts_once(redis_client):
    records = rec.JobRecords(redis_client)
    (job_id,) = records.create("predict", client="10.0.0.1").ids
    twice = [rec.Outcome(job_id, "succeeded", result={"label": 1}), rec.Outcome(job_id, "failed")]
    assert records.finish(twice) == [job_id]
    assert records.get(job_id)["status"] == "succeeded"
    assert redis_client.hgetall(keys.METRICS_OUTCOMES) == {b"predict:succeeded": b"1"}
    assert records.pending("10.0.0.1") == 0 and redis_client.zcard(keys.finished_by_client("10.0.0.1")) == 1


def test_a_finish_costs_redis_three_commands_a_job_beyond_what_the_batch_shares(redis_client):
    records = rec.JobRecords(redis_client, finished_limits=rec.FinishedLimits(jobs=10_000, per_client=1000))
    for count in (1, 65):
        ids = records.create("predict", count=count, batch_id=rec.new_job_id(), client="10.0.0.1").ids
        started = records.start(ids, "w1")
        redis_client.config_resetstat()
        records.finish(  # as a worker does: what start told it spares looking it up
            [rec.Outcome(i, "succeeded", result={"label": 1, "model_version": 1}) for i in ids],
            batch_size=count,
            clients=[job.client for job in started],
            created_at=[job.created_at for job in started],
            batches=[job.batch for job in started],
            started_at=[job.started_at for job in started],
            model_version=1,
        )
        stats = redis_client.info("commandstats")
        calls = sum(v["calls"] for k, v in stats.items() if k not in ("cmdstat_config", "cmdstat_info"))
        if count == 1:
            alone = calls
        else:  # each job: its record read, written and read whole for the notice; the rest is one command a key
            assert calls <= alone + 3 * (count - 1), stats


def test_new_ids_are_distinct_job_ids():
    ids = rec.new_job_ids(1000) + [rec.new_job_id()]
    assert len(set(ids)) == len(ids) and all(rec.is_job_id(job_id) for job_id in ids)
    assert rec.new_job_ids(0) == []


def test_unknown_and_malformed_ids_are_none(redis_client):
    records = rec.JobRecords(redis_client)
    assert records.get("0" * 32) is None
    assert records.get("../../etc/passwd") is None
    assert records.start(["0" * 32], "w") == [rec.Started("0" * 32, None)]
    assert records.finish([rec.Outcome("0" * 32, "failed")]) == []
    assert not redis_client.exists(keys.job("0" * 32))  # finishing does not create records


def test_records_expire(redis_client):
    records = rec.JobRecords(redis_client, ttl_seconds=1)
    (job_id,) = records.create("predict").ids
    assert 0 < redis_client.ttl(keys.job(job_id)) <= 1
    time.sleep(1.2)
    assert records.get(job_id) is None


def test_finish_announces_ended_jobs(redis_client):
    records = rec.JobRecords(redis_client)
    ids = records.create("predict", count=3).ids
    pubsub = redis_client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(keys.JOBS_FINISHED_CHANNEL)
    pubsub.get_message(timeout=1)
    records.finish([rec.Outcome(i, "failed", error=rec.error("x", "y")) for i in ids])
    message = pubsub.get_message(timeout=2)
    notice = rec.FinishedNotice.parse(message["data"])
    assert notice.ids == ids
    assert [notice.record(i) for i in ids] == records.get_many(ids)  # carried: nothing to read again


def test_a_notice_carries_records_up_to_a_bound_and_names_the_rest(redis_client, monkeypatch):
    monkeypatch.setattr(rec, "NOTICE_RECORD_BYTES", 2000)
    records = rec.JobRecords(redis_client)
    ids = records.create("predict", count=4).ids
    pubsub = redis_client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(keys.JOBS_FINISHED_CHANNEL)
    pubsub.get_message(timeout=1)
    records.finish([rec.Outcome(i, "succeeded", result={"label": 1, "padding": "x" * 600}) for i in ids])
    notice = rec.FinishedNotice.parse(pubsub.get_message(timeout=2)["data"])
    carried = [i for i in ids if notice.record(i) is not None]
    assert notice.ids == ids and 1 <= len(carried) < len(ids)
    assert all(notice.record(i) == records.get(i) for i in carried)
    assert rec.FinishedNotice.parse(b"a b\nnot json").ids == ["a", "b"]  # malformed records: ids still heard


def test_a_notice_reads_no_more_records_once_one_does_not_fit(redis_client, monkeypatch):
    monkeypatch.setattr(rec, "NOTICE_RECORD_BYTES", 2000)
    records = rec.JobRecords(redis_client)
    ids = records.create("predict", count=50).ids
    redis_client.config_resetstat()
    records.finish([rec.Outcome(i, "succeeded", result={"label": 1, "padding": "x" * 600}) for i in ids])
    read = redis_client.info("commandstats").get("cmdstat_hgetall", {}).get("calls", 0)
    assert read <= 3  # two records fit, then the one that did not: the other 47 are not read for nothing


def test_many_created_in_order_and_listed_newest_first(redis_client):
    records = rec.JobRecords(redis_client)
    ids = records.create("predict", count=5).ids
    assert [job["id"] for job in records.get_many(ids)] == ids
    assert len(set(ids)) == 5 and all(rec.is_job_id(i) for i in ids)
    assert {job["id"] for job in records.recent(10)} == set(ids)


def test_cancel_queued_at_once_running_on_request(redis_client):
    records = rec.JobRecords(redis_client)
    queued, running = records.create("train", count=2, fields={"params": {"epochs": 1}}).ids
    assert records.get(queued)["params"] == {"epochs": 1}
    records.start([running], "w")
    assert records.request_cancel(queued)["status"] == "cancelled"
    assert not records.should_stop(running)
    assert records.request_cancel(running)["cancel_requested"] is True
    assert records.should_stop(running)


def test_record_is_readable_in_redis_cli(redis_client):
    records = rec.JobRecords(redis_client)
    (job_id,) = records.create("predict").ids
    records.finish([rec.Outcome(job_id, "succeeded", result={"label": 7})])
    raw = redis_client.hgetall(keys.job(job_id))
    assert raw[b"status"] == b"succeeded" and json.loads(raw[b"result"]) == {"label": 7}


def test_finishing_counts_outcomes_latency_and_batch_size_once(redis_client):
    records = rec.JobRecords(redis_client)
    ids = records.create("predict", count=3).ids
    outcomes = [rec.Outcome(ids[0], "succeeded", result={}), rec.Outcome(ids[1], "failed", error=rec.error("x", "y"))]
    records.finish(outcomes, batch_size=2)
    records.finish(outcomes, batch_size=2)  # a redelivery: nothing new is counted but the model call
    assert redis_client.hgetall(keys.METRICS_OUTCOMES) == {b"predict:succeeded": b"1", b"predict:failed": b"1"}
    latency = redis_client.hgetall(keys.METRICS_LATENCY)
    assert sum(int(v) for k, v in latency.items() if k != b"sum") == 2
    assert 0 <= float(latency[b"sum"]) < 5
    # Each job in the first bucket whose bound its own latency (finished_at - created_at) does not pass.
    expected: dict[bytes, int] = {}
    for job_id in ids[:2]:
        created, finished = map(float, redis_client.hmget(keys.job(job_id), "created_at", "finished_at"))
        bucket = next((b for b in rec.LATENCY_BUCKETS if finished - created <= float(b)), "+Inf")
        expected[bucket.encode()] = expected.get(bucket.encode(), 0) + 1
    assert {k: int(v) for k, v in latency.items() if k != b"sum"} == expected
    assert redis_client.hgetall(keys.METRICS_BATCH_SIZE) == {b"2": b"2", b"sum": b"4"}


def test_predictions_are_counted_once_for_the_model_version_that_read_a_digit(redis_client):
    records = rec.JobRecords(redis_client)
    ids = records.create("predict", count=4).ids
    outcomes = [
        rec.Outcome(ids[0], "succeeded", result={"label": 7, "model_version": 3}),
        rec.Outcome(ids[1], "succeeded", result={"label": 1, "model_version": 3}),
        rec.Outcome(ids[2], "succeeded", result={"label": None, "reason": "blank", "model_version": None}),
        rec.Outcome(ids[3], "succeeded", result={"text": "42", "model_version": 3}),  # a number: not a digit
    ]
    records.finish(outcomes)
    records.finish(outcomes[:1])  # a redelivery is not counted again
    assert redis_client.hgetall(keys.METRICS_PREDICTIONS) == {b"3": b"2"}


def test_pending_jobs_are_counted_per_client_until_they_end(redis_client):
    records = rec.JobRecords(redis_client)
    ids = records.create("predict", count=3, client="10.0.0.7").ids
    assert records.pending("10.0.0.7") == 3 and records.pending("10.0.0.8") == 0
    records.finish([rec.Outcome(i, "succeeded", result={}) for i in ids[:2]])
    assert records.pending("10.0.0.7") == 1
    records.finish([rec.Outcome(ids[2], "succeeded", result={})])
    records.finish([rec.Outcome(ids[2], "succeeded", result={})])
    assert records.pending("10.0.0.7") == 0 and not redis_client.exists(keys.pending("10.0.0.7"))


def test_a_pending_counter_expires_a_record_life_after_it_was_made_and_is_not_renewed(redis_client):
    records = rec.JobRecords(redis_client, ttl_seconds=100)
    lanes = rec.Lanes(keys.PREDICT_QUEUE, keys.BULK_QUEUE, fast_pending=10)
    counters = [keys.pending("10.0.0.1"), keys.pending_bytes("10.0.0.1"), keys.pending_fast("10.0.0.1")]
    counters.append(keys.QUEUED_BYTES)
    records.create("predict", client="10.0.0.1", images=[b"png"], lanes=lanes)
    assert all(0 < redis_client.ttl(key) <= 100 for key in counters)
    for key in counters:
        redis_client.expire(key, 50)
    redis_client.config_resetstat()
    records.create("predict", client="10.0.0.1", images=[b"png"], lanes=lanes)
    assert all(0 < redis_client.ttl(key) <= 50 for key in counters)  # not renewed: a leak goes in time
    assert redis_client.info("commandstats")["cmdstat_expire"]["calls"] == 1  # the new record's
    assert records.pending("10.0.0.1") == 2 and records.pending_bytes("10.0.0.1") == 6


def test_a_batchs_counter_stays_at_zero_with_its_expiry_once_its_jobs_have_ended(redis_client):
    records = rec.JobRecords(redis_client, ttl_seconds=100)
    batch_id = rec.new_job_id()
    ids = records.create("predict", 2, batch_id=batch_id).ids
    records.finish([rec.Outcome(ids[0], rec.SUCCEEDED, result={})])
    redis_client.config_resetstat()
    records.finish([rec.Outcome(ids[1], rec.SUCCEEDED, result={})])
    assert records.batch_unfinished(batch_id) == 0
    assert redis_client.get(keys.batch_unfinished(batch_id)) == b"0"  # not deleted: one command less an end
    assert 0 < redis_client.ttl(keys.batch_unfinished(batch_id)) <= 100


def test_the_recent_index_is_trimmed_once_a_process_has_listed_a_few_jobs(redis_client):
    records = rec.JobRecords(redis_client)
    redis_client.config_resetstat()
    for _ in range(rec.RECENT_JOBS_KEPT + 40):
        records.create("predict")
    trims = redis_client.info("commandstats")["cmdstat_zremrangebyrank"]["calls"]
    assert trims <= (rec.RECENT_JOBS_KEPT + 40) // rec.RECENT_TRIM_EVERY + 1
    assert rec.RECENT_JOBS_KEPT <= redis_client.zcard(keys.RECENT_JOBS) < rec.RECENT_JOBS_KEPT + rec.RECENT_TRIM_EVERY


def test_bucket_of():
    assert rec.bucket_of(0.004, rec.LATENCY_BUCKETS) == "0.005"
    assert rec.bucket_of(0.05, rec.LATENCY_BUCKETS) == "0.05"
    assert rec.bucket_of(99, rec.LATENCY_BUCKETS) == "+Inf"
    assert rec.bucket_of(3, rec.BATCH_BUCKETS) == "4"


def test_a_batch_counts_its_unfinished_jobs_and_expired_ones_as_ended(redis_client):
    records = rec.JobRecords(redis_client)
    ids = records.create(
        "predict", 4, batch_id=rec.new_job_id(), client="10.0.0.9", images=[b"a", b"b", b"c", b"d"]
    ).ids
    records.start(ids[:2], "w1")
    records.finish([rec.Outcome(ids[0], "succeeded", result={"label": 0})])
    redis_client.delete(keys.job(ids[3]))  # expired

    assert records.unfinished(ids) == 2 and records.unfinished([]) == 0
    assert [redis_client.get(keys.job_image(i)) for i in ids[:3]] == [None, b"b", b"c"]  # kept until the job ends
    assert redis_client.hget(keys.job(ids[2]), "client") == b"10.0.0.9" and records.pending("10.0.0.9") == 3


def test_starting_hands_over_each_image_and_client_once_as_bytes(redis_client):
    records = rec.JobRecords(redis_client)
    images = [b"\x89PNG\r\n\x00\xff", b"\x00"]  # any bytes, untouched: nothing is base64-encoded
    ids = records.create("predict", 2, client="10.0.0.5", images=images).ids
    records.finish([rec.Outcome(ids[1], "succeeded", result={})], clients=["10.0.0.5"])

    first, second = records.start(ids, "w1")
    assert (first.taken, first.image, first.client) == (True, images[0], "10.0.0.5")
    assert (second.taken, second.image) == (False, None)  # ended: nothing to hand over
    records.finish([rec.Outcome(ids[0], "succeeded", result={})], clients=[first.client])
    assert records.pending("10.0.0.5") == 0 and not redis_client.exists(keys.job_image(ids[0]))


def test_a_kept_image_outlives_its_job_for_its_page(redis_client):
    records = rec.JobRecords(redis_client)
    (kept,) = records.create("predict", fields={"keep_image": "1"}, images=[b"png"]).ids
    (dropped,) = records.create("predict", images=[b"png"]).ids
    records.finish([rec.Outcome(kept, "succeeded", result={}), rec.Outcome(dropped, "succeeded", result={})])
    assert records.kept_image(kept, None) == b"png" and records.kept_image(dropped, None) is None
    assert records.keep_images([kept, dropped], None) == [True, False]


def test_a_silent_training_job_fails_and_gives_back_its_place_in_the_training_budget(redis_client):
    records = rec.JobRecords(redis_client)
    silent, beating = records.create("train", 2, fields={"params": {}}, client="training-jobs").ids
    records.start([silent, beating], "w1")
    records.beat(silent)
    records.beat(beating)
    redis_client.hset(keys.job(silent), "heartbeat", repr(time.time() - 120))

    assert records.fail_silent_training(60) == [silent]
    assert records.get(silent)["status"] == "failed" and records.get(silent)["error"]["code"] == "worker_lost"
    assert records.get(beating)["status"] == "running"
    assert records.pending("training-jobs") == 1  # the failed job no longer counts against the budget


def test_starting_takes_over_only_the_jobs_of_silent_workers_and_never_hands_over_poison_again(redis_client):
    records = rec.JobRecords(redis_client)
    on_live, on_dead, read_alone = records.create("predict", 3, images=[b"a", b"b", b"c"]).ids
    records.start([on_live], "live")
    records.start([on_dead, read_alone], "dead")
    records.read_alone(read_alone)
    redis_client.zadd(keys.WORKERS, {"live": time.time(), "dead": time.time() - 60})

    live, dead, alone = records.start([on_live, on_dead, read_alone], "w2", silence_s=10)
    assert (live.status, live.taken, live.image) == ("running", False, None)  # its worker still beats
    assert (dead.taken, dead.suspect, dead.poison, dead.image) == (True, True, False, b"b")
    assert (alone.taken, alone.suspect, alone.poison, alone.image) == (True, True, True, None)
    assert [redis_client.hget(keys.job(i), "worker") for i in (on_live, on_dead)] == [b"live", b"w2"]
    assert redis_client.hget(keys.job(on_dead), "deliveries") == b"2"
    assert redis_client.hget(keys.job(read_alone), "alone") is None
    assert dead.created_at == float(redis_client.hget(keys.job(on_dead), "created_at"))


def test_byte_limits_refuse_a_request_whole_and_write_nothing(redis_client):
    records = rec.JobRecords(redis_client)
    records.create("predict", 2, client="10.0.0.1", images=[b"x" * 60, b"x" * 30])
    with pytest.raises(rec.OverLimit) as per_client:
        records.create("predict", 2, client="10.0.0.1", images=[b"y" * 10, b"y"], limits=rec.PendingLimits(bytes=100))
    assert (per_client.value.limit, per_client.value.outstanding, per_client.value.allowed) == ("bytes", 90, 100)
    with pytest.raises(rec.OverLimit) as everyone:
        records.create("predict", 1, client="10.0.0.2", images=[b"z" * 20], limits=rec.PendingLimits(total_bytes=100))
    assert (everyone.value.limit, everyone.value.outstanding, everyone.value.allowed) == ("total_bytes", 90, 100)
    assert records.pending("10.0.0.1") == 2 and records.pending_bytes("10.0.0.1") == 90
    assert records.pending("10.0.0.2") == 0 and records.queued_bytes() == 90
    assert redis_client.zcard(keys.QUEUED_JOBS) == 2
    assert records.create(
        "predict", 1, client="10.0.0.2", images=[b"z" * 10], limits=rec.PendingLimits(total_bytes=100)
    )


def test_latency_is_counted_for_predictions_only_from_when_start_said_they_were_created(redis_client):
    records = rec.JobRecords(redis_client)
    (prediction,) = records.create("predict").ids
    (training,) = records.create("train", fields={"params": {}}).ids
    started = records.start([prediction, training], "w1")
    redis_client.hset(keys.job(prediction), "created_at", "1")  # what start handed over counts, not this
    time.sleep(0.06)

    outcomes = [rec.Outcome(job.job_id, "succeeded", result={}) for job in started]
    records.finish(outcomes, clients=[job.client for job in started], created_at=[job.created_at for job in started])
    finished = float(redis_client.hget(keys.job(prediction), "finished_at"))
    latency = {k.decode(): float(v) for k, v in redis_client.hgetall(keys.METRICS_LATENCY).items()}
    seconds = finished - started[0].created_at
    assert 0.06 <= seconds < 5 and latency.pop("sum") == pytest.approx(seconds)  # summed as text, a bit may differ
    assert latency == {rec.bucket_of(seconds, rec.LATENCY_BUCKETS): 1}
    assert redis_client.hgetall(keys.METRICS_OUTCOMES) == {b"predict:succeeded": b"1", b"train:succeeded": b"1"}


def test_only_what_a_client_needs_is_kept_once_a_job_ends(redis_client):
    records = rec.JobRecords(redis_client)
    (job_id,) = records.create("predict", client="10.0.0.3", images=[os.urandom(1000)]).ids
    assert records.pending_bytes("10.0.0.3") == 1000 and records.queued_bytes() == 1000
    records.finish([rec.Outcome(job_id, "succeeded", result={"label": 1})])
    assert records.pending_bytes("10.0.0.3") == 0 and records.queued_bytes() == 0
    assert not redis_client.exists(keys.job_image(job_id))  # the upload is gone, the record stays
    assert records.get(job_id)["result"] == {"label": 1}


def test_thousands_of_jobs_end_in_one_step_and_leave_the_indexes(redis_client):
    records = rec.JobRecords(redis_client)
    ids = records.create(
        "predict", 2500, client="10.0.0.3", images=[b"x"] * 2500, lanes=rec.Lanes(keys.PREDICT_QUEUE)
    ).ids
    records.start(ids[:1200], "w1")
    ended = records.finish(rec.Outcome(job_id, rec.SUCCEEDED, result={"label": None}) for job_id in ids)
    assert ended == ids and records.pending("10.0.0.3") == 0
    assert redis_client.zcard(keys.QUEUED_JOBS) == 0 and redis_client.zcard(keys.RUNNING_JOBS) == 0
