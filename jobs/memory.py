"""Redis's memory as the service budgets it: what the configured caps can hold at most, checked
against ``maxmemory`` at start, and a high-water mark below ``maxmemory`` above which new work is
refused while work already accepted finishes.

Under ``maxmemory`` with ``noeviction`` Redis refuses writes that may grow memory. Work that is
accepted must still be able to start and finish (jobs/scripts/: each frees before it writes), and
everything the service keeps is bounded by a setting, so the caps can be added up:

- images of unfinished jobs: MAX_QUEUED_BYTES;
- ended jobs' records: MAX_FINISHED_JOBS x FINISHED_JOB_BYTES (the oldest are forgotten beyond);
- model versions: MAX_MODEL_VERSIONS x MAX_MODEL_BYTES x 2 (the file, and its LiteRT export);
- corrections: MAX_FEEDBACK_BYTES;
- and BASELINE_BYTES for everything small (indexes, counters, Redis itself, buffers).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import redis

MiB = 1024 * 1024
# One ended prediction's record, its entries in the indexes and its share of its batch's list:
# measured, a digit's record takes 2.7 KB (MEMORY USAGE; used_memory grew 2.9 KB a job with its
# indexes) and a number's of four digits 7.8 KB; a mix mostly of digits is budgeted at 4 KB.
FINISHED_JOB_BYTES = 4096
BASELINE_BYTES = 8 * MiB  # Redis itself and Celery's keys take about 2 MiB; the rest is room for buffers
SAMPLE_S = 0.25  # how often one process asks Redis for its memory, at most


class MemoryBudgetError(RuntimeError):
    """The configured caps add up past what Redis may hold; the message shows the sum."""


@dataclass(frozen=True)
class Caps:
    """The settings that bound what the service keeps in Redis (0: no limit)."""

    max_queued_bytes: int
    max_finished_jobs: int
    max_model_versions: int
    max_model_bytes: int
    max_feedback_bytes: int

    def parts(self) -> dict[str, int | None]:
        """Bytes each part may hold at most (None: unbounded)."""
        return {
            "images of unfinished jobs (MAX_QUEUED_BYTES)": self.max_queued_bytes or None,
            f"ended jobs (MAX_FINISHED_JOBS x {FINISHED_JOB_BYTES} bytes)": (
                self.max_finished_jobs * FINISHED_JOB_BYTES or None
            ),
            "model versions (MAX_MODEL_VERSIONS x MAX_MODEL_BYTES x 2: file and LiteRT export)": (
                self.max_model_versions * self.max_model_bytes * 2 or None
            ),
            "corrections (MAX_FEEDBACK_BYTES)": self.max_feedback_bytes or None,
            "indexes, counters and Redis itself": BASELINE_BYTES,
        }


def check_budget(caps: Caps, maxmemory: int, high_water: float) -> None:
    """Raise :class:`MemoryBudgetError` unless the caps fit under ``high_water`` x ``maxmemory``
    (nothing to check when ``maxmemory`` is 0: Redis itself then sets no limit)."""
    if not maxmemory:
        return
    parts = caps.parts()
    room = int(maxmemory * high_water)
    unbounded = [name for name, size in parts.items() if size is None]
    total = sum(size for size in parts.values() if size is not None)
    if unbounded or total > room:
        lines = "; ".join(
            f"{name}: {'no limit' if size is None else f'{size / MiB:.0f} MiB'}" for name, size in parts.items()
        )
        raise MemoryBudgetError(
            f"the configured caps add up to {'more than any limit' if unbounded else f'{total / MiB:.0f} MiB'}, "
            f"past REDIS_HIGH_WATER ({high_water:g}) x Redis's maxmemory ({maxmemory / MiB:.0f} MiB) = "
            f"{room / MiB:.0f} MiB: {lines}. Lower the caps or raise maxmemory."
        )


def maxmemory(client: redis.Redis) -> int:
    """Redis's ``maxmemory`` in bytes (0: none)."""
    return int(client.info("memory").get("maxmemory", 0))


class MemoryGauge:
    """Whether Redis is above its high-water mark, from an INFO taken at most every SAMPLE_S per
    process (INFO costs Redis microseconds; one per submission would add up)."""

    def __init__(self, client: redis.Redis, high_water: float):
        self._client, self.high_water = client, high_water
        self._lock = threading.Lock()
        self._sampled_at = -SAMPLE_S
        self._used = self._limit = 0

    def over_high_water(self) -> tuple[int, int] | None:
        """(bytes used, the high-water mark) when above it, else None."""
        with self._lock:
            now = time.monotonic()
            if now - self._sampled_at >= SAMPLE_S:
                memory = self._client.info("memory")
                self._used = int(memory["used_memory"])
                self._limit = int(int(memory.get("maxmemory", 0)) * self.high_water)
                self._sampled_at = now
            used, limit = self._used, self._limit
        return (used, limit) if limit and used > limit else None
