"""Triton's statistics extension for model ``digits``: per version, how many requests were
answered and where their time went, in the shape ``tritonclient``'s ``get_inference_statistics``
reads (GET /v2/models[/digits[/versions/<v>]]/stats).

Workers count every prediction they end in one Redis hash (keys.METRICS_MODEL_STATS, written by
jobs/scripts/finish_jobs.lua with the times jobs/records.py ``served`` splits), so any web
process answers for the whole cluster. A request here is one image: a v2 request of N images (one
tensor job, jobs/tensors.py) counts N, as if each image had been its own request;
``execution_count`` counts model calls.
"""

from __future__ import annotations

import redis

from jobs import keys
from web.schemas import InferStatistics, ModelStatistics

DURATIONS = ("success", "fail", "queue", "compute_input", "compute_infer", "compute_output", "cache_hit", "cache_miss")
# Queue and compute figures are parts of the successful requests, so they count as many.
PARTS_OF_SUCCESS = ("queue", "compute_input", "compute_infer", "compute_output")


def read(client: redis.Redis) -> dict[str, dict[str, int]]:
    """Every version's stored figures: version -> {"<figure>": value} (one round trip)."""
    by_version: dict[str, dict[str, int]] = {}
    for field, value in client.hgetall(keys.METRICS_MODEL_STATS).items():
        version, _, figure = field.decode().partition(":")
        by_version.setdefault(version, {})[figure] = int(value)
    return by_version


def model_stat(model: str, version: str, figures: dict[str, int]) -> ModelStatistics:
    """One version's entry, zeros where nothing was counted (no cache: every request a miss of none)."""
    successes = figures.get("success:count", 0)
    stats: InferStatistics = {  # type: ignore[typeddict-item]
        name: {
            "count": successes if name in PARTS_OF_SUCCESS else figures.get(f"{name}:count", 0),
            "ns": figures.get(f"{name}:ns", 0),
        }
        for name in DURATIONS
    }
    return {
        "name": model,
        "version": version,
        "last_inference": figures.get("last_inference", 0),
        "inference_count": successes,
        "execution_count": figures.get("executions", 0),
        "inference_stats": stats,
        "batch_stats": [],
    }
