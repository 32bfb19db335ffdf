"""One batch of prediction jobs, from the images the records handed over to how each job ended.

Pure: no Redis, no Celery. worker/predicting.py takes the jobs and records the outcomes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from jobs import records as rec
from model.recognise import Bounds, Predictor, recognise


@dataclass
class RecognisedBatch:
    """What a batch came to: the jobs that ended, how many images went through the model, and
    the jobs left over because the batch's time ran out (they go back to their lanes)."""

    outcomes: list[rec.Outcome]
    through_model: int
    left_over: list[rec.Started]


def recognise_batch(
    jobs: Sequence[rec.Started], predictor: Predictor | None, bounds: Bounds, budget_s: float = 0.0
) -> RecognisedBatch:
    """Each job's :class:`~jobs.records.Outcome`, in order, as far as ``budget_s`` allows."""
    readings = recognise([job.image for job in jobs], predictor, bounds, budget_s, [job.read for job in jobs])
    outcomes, left_over = [], []
    for job, reading in zip(jobs, readings, strict=True):
        if reading is None:
            left_over.append(job)
        elif reading.error is None:
            outcomes.append(rec.Outcome(job.job_id, rec.SUCCEEDED, result=reading.result))
        else:
            outcomes.append(rec.Outcome(job.job_id, rec.FAILED, error=reading.error))
    through_model = sum(1 for reading in readings if reading and reading.result and "timings" in reading.result)
    return RecognisedBatch(outcomes, through_model, left_over)


def poisoned(job: rec.Started) -> rec.Outcome:
    """The end of a job whose image took its worker down, again, while it was recognised alone."""
    reason = "its worker died while reading it, twice (once alone): it is not read again"
    return rec.Outcome(job.job_id, rec.FAILED, error=rec.error("poison", reason))
