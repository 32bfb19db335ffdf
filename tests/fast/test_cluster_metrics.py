"""The cluster's histogram buckets as /metrics shows them (web/cluster_metrics.py). The scrape itself,
over gunicorn's processes and a real worker: tests/service/test_metrics.py."""

from __future__ import annotations

import time

from jobs import keys
from jobs.records import JobRecords, Lanes
from web.cluster_metrics import ClusterCollector, cumulative


def test_cumulative_buckets_keep_unknown_bounds_and_end_in_inf():
    buckets = cumulative({"0.5": "2", "1": "3", "+Inf": "1", "0.75": "4"}, ("0.5", "1", "2"))
    assert buckets == [("0.5", 2.0), ("0.75", 6.0), ("1.0", 9.0), ("2.0", 9.0), ("+Inf", 10.0)]
    assert cumulative({}, ("1",)) == [("1.0", 0.0), ("+Inf", 0.0)]


def test_in_flight_and_oldest_age_per_lane_are_read_from_the_records(redis_client):
    records = JobRecords(redis_client)
    lanes = Lanes(keys.PREDICT_QUEUE, keys.BULK_QUEUE, fast_pending=2)
    old = records.create("predict", 3, client="10.0.0.1", images=[b"x"] * 3, lanes=lanes)  # a backlog: bulk
    time.sleep(1.0)
    fresh = records.create("predict", 2, client="10.0.0.2", images=[b"x"] * 2, lanes=lanes)
    assert (old.lane, fresh.lane) == (keys.BULK_QUEUE, keys.PREDICT_QUEUE)
    taken = redis_client.lpop(keys.lane(keys.BULK_QUEUE), 2)
    records.start([i.decode() for i in taken], "w1@host")  # two bulk jobs in a worker's hands

    families = {family.name: family.samples for family in ClusterCollector(redis_client).collect()}

    assert _value(families, "digits_jobs_in_flight", lane=keys.BULK_QUEUE) == 2
    assert _value(families, "digits_jobs_in_flight", lane=keys.PREDICT_QUEUE) == 0
    assert 1.0 <= _value(families, "digits_queue_oldest_age_seconds", lane=keys.BULK_QUEUE) < 30
    assert 0 <= _value(families, "digits_queue_oldest_age_seconds", lane=keys.PREDICT_QUEUE) < 1.0
    assert _value(families, "digits_lane_workers", lane=keys.PREDICT_QUEUE) == 0  # no worker beats here


def _value(families: dict, name: str, **labels) -> float:
    return sum(
        s.value
        for s in families.get(name, [])
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )
