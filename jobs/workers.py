"""The worker registry: each worker process says "I am alive" here, and everyone else asks who is.

A worker process beats every :data:`HEARTBEAT_S` seconds; it is live while its last beat is
younger than :data:`SILENCE_S`, both by Redis's clock (jobs/clock.py), so a host whose own clock
is off neither drops out nor drops the others. Health checks, metrics, the launcher and the
bench all ask :func:`live`, so they agree on who is there and what it serves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import redis

from jobs import keys, scripts

HEARTBEAT_S = 2.0
SILENCE_S = 3 * HEARTBEAT_S


@dataclass(frozen=True)
class LiveWorker:
    """One live worker process, as its last heartbeat described it."""

    name: str
    queues: tuple[str, ...]
    model_version: int | None
    backend: str
    rss_bytes: int
    pid: int
    heartbeat: float
    problem: str = ""  # why it does not serve the active version, when it does not

    @property
    def predicts(self) -> bool:
        """Whether it serves predictions now: it consumes the predict queue and holds a model."""
        return any(name in keys.PREDICT_QUEUES for name in self.queues) and self.model_version is not None

    @property
    def ready(self) -> bool:
        """Whether it can do what it is there for: predict workers need a model, training workers nothing."""
        serves_predictions = any(name in keys.PREDICT_QUEUES for name in self.queues)
        return self.predicts or (not serves_predictions and bool(self.queues))


def unserved_lanes(live_workers: Sequence[LiveWorker]) -> list[str]:
    """The prediction lanes that none of ``live_workers`` takes jobs from with a model in hand."""
    return [lane for lane in keys.PREDICT_QUEUES if not any(w.predicts and lane in w.queues for w in live_workers)]


def beat(
    client: redis.Redis,
    name: str,
    queues: Sequence[str],
    model_version: int | None,
    backend: str,
    rss_bytes: int,
    pid: int,
    problem: str = "",
) -> None:
    """Record that worker process ``name`` is alive now, what it consumes and what it serves."""
    fields = {
        "queues": ",".join(queues),
        "model_version": "" if model_version is None else str(model_version),
        "backend": backend,
        "rss_bytes": str(rss_bytes),
        "pid": str(pid),
        "problem": problem,
    }
    scripts.BeatWorker(client)(name=name, silence_s=SILENCE_S, fields=fields)


def live(client: redis.Redis) -> list[LiveWorker]:
    """The worker processes that beat within the last :data:`SILENCE_S` seconds (two round trips)."""
    names = scripts.LiveWorkers(client)(silence_s=SILENCE_S)
    if not names:
        return []
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.hgetall(keys.worker(name))
    workers = []
    for name, raw in zip(names, pipe.execute(), strict=True):
        if not raw:  # expired between the two reads
            continue
        fields = {key.decode(): value.decode() for key, value in raw.items()}
        workers.append(
            LiveWorker(
                name=name,
                queues=tuple(q for q in fields.get("queues", "").split(",") if q),
                model_version=int(fields["model_version"]) if fields.get("model_version") else None,
                backend=fields.get("backend", ""),
                rss_bytes=int(fields.get("rss_bytes") or 0),
                pid=int(fields.get("pid") or 0),
                heartbeat=float(fields.get("heartbeat") or 0),
                problem=fields.get("problem", ""),
            )
        )
    return workers
