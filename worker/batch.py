"""One batch of prediction jobs, from the images the records handed over to how each job ended.

Pure: no Redis, no Celery. worker/tasks.py reads the jobs in and writes the outcomes back.
"""

from __future__ import annotations

from collections.abc import Sequence

from jobs import records as rec
from model.recognise import Predictor, recognise


def outcomes(
    jobs: Sequence[rec.Started], predictor: Predictor | None, max_pixels: int
) -> tuple[list[rec.Outcome], int]:
    """Each job's :class:`~jobs.records.Outcome`, in order, and how many images went through the model."""
    readings = recognise([job.image for job in jobs], predictor, max_pixels)
    ended = [
        rec.Outcome(job.job_id, rec.SUCCEEDED, result=reading.result)
        if reading.error is None
        else rec.Outcome(job.job_id, rec.FAILED, error=reading.error)
        for job, reading in zip(jobs, readings, strict=True)
    ]
    through_model = sum(1 for reading in readings if reading.result and "timings" in reading.result)
    return ended, through_model
