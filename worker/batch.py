"""One batch of prediction jobs, from the images the records handed over to how each job ended.

Pure: no Redis, no Celery. worker/predicting.py reads the jobs in and writes the outcomes back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from jobs import records as rec
from model.recognise import Bounds, Predictor, recognise


@dataclass
class Read:
    """What a batch came to: the jobs that ended, how many images went through the model, and
    the jobs left unread because the batch's time ran out (they go back to their queue)."""

    outcomes: list[rec.Outcome]
    through_model: int
    unread: list[rec.Started]


def read(jobs: Sequence[rec.Started], predictor: Predictor | None, bounds: Bounds, budget_s: float = 0.0) -> Read:
    """Each job's :class:`~jobs.records.Outcome`, in order, as far as ``budget_s`` allows."""
    readings = recognise([job.image for job in jobs], predictor, bounds, budget_s, [job.read for job in jobs])
    outcomes, unread = [], []
    for job, reading in zip(jobs, readings, strict=True):
        if reading is None:
            unread.append(job)
        elif reading.error is None:
            outcomes.append(rec.Outcome(job.job_id, rec.SUCCEEDED, result=reading.result))
        else:
            outcomes.append(rec.Outcome(job.job_id, rec.FAILED, error=reading.error))
    through_model = sum(1 for reading in readings if reading and reading.result and "timings" in reading.result)
    return Read(outcomes, through_model, unread)


def poisoned(job: rec.Started) -> rec.Outcome:
    """The end of a job whose image took its worker down, again, while it was read alone."""
    reason = "its worker died while reading it, twice (once alone): it is not read again"
    return rec.Outcome(job.job_id, rec.FAILED, error=rec.error("poison", reason))
