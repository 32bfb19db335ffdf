"""Cluster-wide figures for ``GET /metrics``, read from Redis at scrape time.

Workers count every ended job in Redis hashes (see jobs/keys.py METRICS_*, written by
jobs/scripts/finish_jobs.lua in the buckets jobs/records.py picks): per-bucket, non-cumulative
counts keyed by each bucket's upper bound. Any web process can therefore report the whole
cluster; here the counts are made cumulative, as Prometheus histograms are. Queue depths, live
workers and model versions come from the queues and the workers' heartbeats.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator

import redis
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from jobs import keys, workers
from jobs.records import BATCH_BUCKETS, LATENCY_BUCKETS

log = logging.getLogger(__name__)


class ClusterCollector:
    """A prometheus_client collector; every scrape costs three Redis round trips."""

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
        pipe.hgetall(keys.METRICS_OUTCOMES)
        pipe.hgetall(keys.METRICS_LATENCY)
        pipe.hgetall(keys.METRICS_BATCH_SIZE)
        for queue in keys.QUEUES:
            pipe.llen(keys.queue_key(queue))
        pipe.get(keys.MODEL_ACTIVE)
        pipe.hgetall(keys.METRICS_FEEDBACK)
        pipe.hgetall(keys.METRICS_PREDICTIONS)
        pipe.hgetall(keys.FEEDBACK_BY_VERSION)
        outcomes, latency, batch_size, *depths, active, received, predictions, kept = pipe.execute()
        live = workers.live(self.redis)

        jobs = CounterMetricFamily(
            "digits_jobs", "Jobs ended, by type and outcome (all workers)", labels=["type", "outcome"]
        )
        for field, count in sorted(_decoded(outcomes).items()):
            job_type, _, outcome = field.partition(":")
            jobs.add_metric([job_type, outcome], float(count))

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
        return [*figures, active_version, *feedback_figures(received, predictions, kept)]


def feedback_figures(received: dict, predictions: dict, kept: dict) -> list[Metric]:
    """Corrections received per model version and verdict, and the share of each version's
    predictions that the corrections kept now say were wrong."""
    corrections = CounterMetricFamily(
        "digits_feedback",
        "Corrections received, by the model version corrected and whether it was wrong (corrected) or right",
        labels=["model_version", "verdict"],
    )
    for field, count in sorted(_decoded(received).items()):
        version, _, verdict = field.rpartition(":")
        corrections.add_metric([version, verdict], float(count))
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
    for bound, count in buckets:
        family.add_sample(f"{name}_bucket", {"le": bound}, count)
    family.add_sample(f"{name}_count", {}, buckets[-1][1])
    family.add_sample(f"{name}_sum", {}, total)
    return family


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
