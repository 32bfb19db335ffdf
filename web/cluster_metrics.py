"""Cluster-wide figures for ``GET /metrics``, read from Redis at scrape time.

Workers count every ended job in Redis hashes (see jobs/keys.py METRICS_*, written by
jobs/scripts/finish_jobs.lua in the buckets jobs/records.py picks): per-bucket, non-cumulative
counts keyed by each bucket's upper bound (per lane for the queue-wait and service-time
histograms: "<lane>:<bound>"). Any web process can therefore report the whole cluster; here the
counts are made cumulative, as Prometheus histograms are. Queue depths, the oldest queued job's
age, the jobs in flight, live workers and model versions are read at scrape time from the
lanes, the running index, the records and the workers' heartbeats; Redis's memory from INFO.

Histogram bounds are chosen in jobs/records.py, counted by jobs/scripts/finish_jobs.lua, and
reported here: add a figure in those three places and nowhere else.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator

import redis
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from jobs import keys, workers
from jobs.records import BATCH_BUCKETS, LATENCY_BUCKETS, QUEUE_WAIT_BUCKETS, SERVICE_TIME_BUCKETS

log = logging.getLogger(__name__)

# At most this many running jobs are looked at per scrape to count the jobs in flight per lane
# (workers x PREDICT_BATCH_IMAGES are running at most; a few thousand reads cost Redis ~1 ms).
IN_FLIGHT_READ = 10_000

# The counter hashes every worker adds to, read whole on each scrape (in this order: _read unpacks them).
COUNTER_HASHES = (
    keys.METRICS_OUTCOMES,
    keys.METRICS_LATENCY,
    keys.METRICS_BATCH_SIZE,
    keys.METRICS_FEEDBACK,
    keys.METRICS_PREDICTIONS,
    keys.FEEDBACK_BY_VERSION,
    keys.METRICS_FAILURES,
    keys.METRICS_EXPIRED,
    keys.METRICS_QUEUE_WAIT,
    keys.METRICS_SERVICE_TIME,
)


class ClusterCollector:
    """A prometheus_client collector; every scrape costs four Redis round trips."""

    def __init__(self, client: redis.Redis):
        self.redis = client

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("digits_redis_up", "1 if Redis answered this scrape (the figures below need it)")
        try:
            figures = self._read()
        except redis.exceptions.RedisError as exc:
            log.warning("metrics: Redis unavailable: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from figures

    def _read(self) -> list[Metric]:
        pipe = self.redis.pipeline(transaction=False)
        for key in COUNTER_HASHES:
            pipe.hgetall(key)
        for queue in keys.QUEUES:
            pipe.llen(keys.queue_key(queue))
        pipe.get(keys.MODEL_ACTIVE)
        for lane in keys.PREDICT_QUEUES:
            pipe.lindex(keys.lane(lane), 0)  # the lane's oldest job (lanes are first in, first out)
        pipe.zrange(keys.RUNNING_JOBS, 0, IN_FLIGHT_READ - 1)
        pipe.info("memory")
        answers = iter(pipe.execute())
        stored = [next(answers) for _ in COUNTER_HASHES]
        outcomes, latency, batch_size, received, predictions, kept, failures, expired, queue_wait, service_time = stored
        depths = [next(answers) for _ in keys.QUEUES]
        active = next(answers)
        heads = [next(answers) for _ in keys.PREDICT_QUEUES]
        running, memory_info = next(answers), next(answers)
        live = workers.live(self.redis)
        pipe = self.redis.pipeline(transaction=False)
        for head in heads:
            pipe.hget(keys.job(head.decode()) if head else keys.job(""), "created_at")
        for job_id in running:
            pipe.hmget(keys.job(job_id.decode()), "status", "lane")
        answers = pipe.execute()
        created, running_fields = answers[: len(heads)], answers[len(heads) :]

        jobs = two_label_counter(
            "digits_jobs", "Jobs ended, by type and outcome (all workers)", ["type", "outcome"], outcomes
        )

        latency_histogram = stored_histogram(
            "digits_job_latency_seconds",
            "Prediction jobs: seconds from submission to result (all workers)",
            latency,
            LATENCY_BUCKETS,
        )
        batch_histogram = stored_histogram(
            "digits_batch_size", "Images per model call (all workers)", batch_size, BATCH_BUCKETS
        )

        depth = GaugeMetricFamily("digits_queue_depth", "Jobs waiting in each lane or queue", labels=["queue"])
        for queue, length in zip(keys.QUEUES, depths, strict=True):
            depth.add_metric([queue], length)

        live_count = GaugeMetricFamily("digits_workers_live", "Worker processes that sent a heartbeat recently")
        live_count.add_metric([], len(live))
        serving = GaugeMetricFamily(
            "digits_worker_model_version", "Model version each live worker process serves", labels=["worker", "backend"]
        )
        memory = GaugeMetricFamily(
            "digits_worker_resident_memory_bytes", "Resident memory of each live worker process", labels=["worker"]
        )
        fallback = GaugeMetricFamily(
            "digits_worker_model_fallback",
            "1 if the worker cannot load the active version and serves an older one (or none)",
            labels=["worker"],
        )
        for worker in live:
            if worker.model_version is not None:  # training workers, and those still loading, serve nothing
                serving.add_metric([worker.name, worker.backend], float(worker.model_version))
            if worker.rss_bytes:
                memory.add_metric([worker.name], float(worker.rss_bytes))
            if worker.predicts or worker.problem:
                fallback.add_metric([worker.name], 1.0 if worker.problem else 0.0)
        active_version = GaugeMetricFamily("digits_active_model_version", "The model version workers are told to serve")
        if active:
            active_version.add_metric([], float(active))
        figures = [jobs, latency_histogram, batch_histogram, depth, live_count, serving, memory, fallback]
        figures += lane_figures(queue_wait, service_time, expired, created, running_fields, live)
        figures += [failure_figure(failures), *redis_figures(memory_info)]
        return [*figures, active_version, *feedback_figures(received, predictions, kept)]


def lane_figures(
    queue_wait: dict, service_time: dict, expired: dict, oldest_created: list, running: list, live: list
) -> list[Metric]:
    """Per prediction lane: how long jobs waited in it and were served, expiries, the jobs in
    flight (taken by a worker, not ended), the oldest waiting job's age and the workers serving it."""
    wait = histograms_by_lane(
        "digits_job_queue_wait_seconds",
        "Prediction jobs: seconds waiting in their lane until a worker took them (all workers)",
        queue_wait,
        QUEUE_WAIT_BUCKETS,
    )
    service = histograms_by_lane(
        "digits_job_service_seconds",
        "Prediction jobs: seconds from a worker taking them to their end (all workers)",
        service_time,
        SERVICE_TIME_BUCKETS,
    )
    expiries = CounterMetricFamily(
        "digits_jobs_expired",
        "Jobs that ended expired (their deadline passed before a worker read them), per lane",
        labels=["lane"],
    )
    counted = _decoded(expired)
    for lane in sorted({*keys.PREDICT_QUEUES, *counted}):
        expiries.add_metric([lane], float(counted.get(lane, 0)))
    in_flight = GaugeMetricFamily(
        "digits_jobs_in_flight", "Prediction jobs a worker has taken and not ended, per lane", labels=["lane"]
    )
    per_lane = dict.fromkeys(keys.PREDICT_QUEUES, 0)
    for status, lane in running:
        if status == b"running" and lane:
            per_lane[lane.decode()] = per_lane.get(lane.decode(), 0) + 1
    for lane, count in per_lane.items():
        in_flight.add_metric([lane], count)
    oldest = GaugeMetricFamily(
        "digits_queue_oldest_age_seconds",
        "Seconds since the job at the head of each lane was submitted (0: the lane is empty)",
        labels=["lane"],
    )
    now = time.time()
    for lane, created in zip(keys.PREDICT_QUEUES, oldest_created, strict=True):
        oldest.add_metric([lane], max(0.0, now - float(created)) if created else 0.0)
    serving = GaugeMetricFamily(
        "digits_lane_workers", "Live worker processes with a model that take jobs from each lane", labels=["lane"]
    )
    for lane in keys.PREDICT_QUEUES:
        serving.add_metric([lane], sum(1 for worker in live if worker.predicts and lane in worker.queues))
    return [wait, service, expiries, in_flight, oldest, serving]


def failure_figure(failures: dict) -> Metric:
    return two_label_counter(
        "digits_job_failures",
        "Jobs that ended failed, by type and reason (the error code)",
        ["type", "reason"],
        failures,
    )


def two_label_counter(
    name: str, documentation: str, labels: list[str], stored: dict, split: Callable = str.partition
) -> Metric:
    """A counter from a hash of ``"<first label>:<second label>" -> count`` fields (sorted);
    ``split`` is ``str.rpartition`` where the first label may hold a colon and the second not."""
    family = CounterMetricFamily(name, documentation, labels=labels)
    for field, count in sorted(_decoded(stored).items()):
        first, _, second = split(field, ":")
        family.add_metric([first, second], float(count))
    return family


def redis_figures(info: dict) -> list[Metric]:
    used = GaugeMetricFamily("digits_redis_memory_used_bytes", "Memory Redis has allocated (INFO used_memory)")
    used.add_metric([], float(info.get("used_memory", 0)))
    limit = GaugeMetricFamily("digits_redis_memory_max_bytes", "Redis's maxmemory (0: no limit)")
    limit.add_metric([], float(info.get("maxmemory", 0)))
    return [used, limit]


def histograms_by_lane(name: str, documentation: str, stored: dict, bounds: tuple) -> Metric:
    """One histogram family with a ``lane`` label from a hash of "<lane>:<bound>" and "<lane>:sum"
    fields; every prediction lane is reported, with zeros before its first job."""
    per_lane: dict[str, dict[str, str]] = {lane: {} for lane in keys.PREDICT_QUEUES}
    for field, count in _decoded(stored).items():
        lane, _, bound = field.rpartition(":")
        per_lane.setdefault(lane, {})[bound] = count
    family = Metric(name, documentation, "histogram")
    for lane, fields in per_lane.items():
        total = float(fields.pop("sum", 0) or 0)
        add_histogram_samples(family, cumulative(fields, bounds), total, {"lane": lane})
    return family


def feedback_figures(received: dict, predictions: dict, kept: dict) -> list[Metric]:
    """Corrections received per model version and verdict, and the share of each version's
    predictions that the corrections kept now say were wrong."""
    corrections = two_label_counter(
        "digits_feedback",
        "Corrections received, by the model version corrected and whether it was wrong (corrected) or right",
        ["model_version", "verdict"],
        received,
        split=str.rpartition,
    )
    share = GaugeMetricFamily(
        "digits_predictions_corrected_ratio",
        "Share of a model version's predictions that people corrected (corrections kept / predictions made)",
        labels=["model_version"],
    )
    wrong = {field.rpartition(":")[0]: float(n) for field, n in _decoded(kept).items() if field.endswith(":corrected")}
    for version, made in sorted(_decoded(predictions).items()):
        if float(made) > 0:
            share.add_metric([version], wrong.get(version, 0.0) / float(made))
    return [corrections, share]


def stored_histogram(name: str, documentation: str, stored: dict, bounds: tuple) -> Metric:
    """A histogram from its Redis hash: per-bucket counts and a "sum" field."""
    fields = _decoded(stored)
    total = float(fields.pop("sum", 0) or 0)
    return histogram(name, documentation, cumulative(fields, bounds), total)


def histogram(name: str, documentation: str, buckets: list[tuple[str, float]], total: float) -> Metric:
    """A histogram family: its buckets, the count (the +Inf bucket) and the sum."""
    family = Metric(name, documentation, "histogram")
    add_histogram_samples(family, buckets, total)
    return family


def add_histogram_samples(family: Metric, buckets: list[tuple[str, float]], total: float, labels: dict | None = None):
    """One histogram's samples (its buckets, the count and the sum) in ``family``, with ``labels``."""
    labels = labels or {}
    for bound, count in buckets:
        family.add_sample(f"{family.name}_bucket", {**labels, "le": bound}, count)
    family.add_sample(f"{family.name}_count", labels, buckets[-1][1])
    family.add_sample(f"{family.name}_sum", labels, total)


def cumulative(counts: dict[str, str], known_bounds: tuple) -> list[tuple[str, float]]:
    """Per-bucket counts keyed by upper bound -> Prometheus buckets: cumulative, sorted, ending in +Inf.

    Bounds found in Redis but no longer in ``known_bounds`` (the bucket list changed) are kept.
    """
    per_bound: dict[float, float] = {float(bound): 0.0 for bound in known_bounds}
    for bound, count in counts.items():
        try:
            key = float(bound)
        except ValueError:
            log.warning("metrics: ignoring bucket %r", bound)
            continue
        per_bound[key] = per_bound.get(key, 0.0) + float(count)
    per_bound.setdefault(math.inf, 0.0)
    buckets, running = [], 0.0
    for bound in sorted(per_bound):
        running += per_bound[bound]
        buckets.append((floatToGoString(bound), running))
    return buckets


def _decoded(raw: dict[bytes, bytes]) -> dict[str, str]:
    return {key.decode(): value.decode() for key, value in raw.items()}
