"""One batch of prediction jobs, from the images the records handed over to how each job ended.

A job is one image, or a tensor job's whole tensor (jobs/tensors.py): its images go into the same
model call as every other job's, and it ends with one result holding all their outputs. A batch's
time budget stops only between jobs, so a tensor is read whole or not at all.

Pure: no Redis, no Celery. worker/predicting.py takes the jobs and records the outcomes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from jobs import records as rec
from jobs import tensors
from model.recognise import Bounds, Predictor, Reading, recognise

NO_DIGIT = [0.0] * 10


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
    images, reads, shown, spans, unreadable = [], [], [], [], {}
    for job in jobs:
        if job.tensor is None:
            parts = [job.image]
        else:
            try:
                parts = tensors.unpack(job.tensor, job.image) if job.image is not None else []
            except ValueError as exc:
                parts = []
                unreadable[job.job_id] = rec.error("invalid_tensor", f"{job.tensor}: {exc}")
            if job.image is None:
                gone = f"{job.tensor}: the job's tensor is no longer stored"
                unreadable[job.job_id] = rec.error("image_missing", gone)
        spans.append((len(images), len(parts)))
        images += parts
        reads += [job.read] * len(parts)
        shown += [job.tensor is None] * len(parts)  # a tensor's answer has no use for the inputs seen
    stops = {start for start, _ in spans}
    readings = recognise(images, predictor, bounds, budget_s, reads, shown, stops)
    outcomes, left_over, through_model = [], [], 0
    for job, (start, count) in zip(jobs, spans, strict=True):
        part = readings[start : start + count]
        if job.job_id in unreadable:
            outcomes.append(rec.Outcome(job.job_id, rec.FAILED, error=unreadable[job.job_id]))
            continue
        if any(reading is None for reading in part):
            left_over.append(job)
            continue
        through_model += sum(1 for reading in part if reading.result and "timings" in reading.result)
        outcomes.append(_tensor_outcome(job, part) if job.tensor else _outcome(job, part[0]))
    return RecognisedBatch(outcomes, through_model, left_over)


def _outcome(job: rec.Started, reading: Reading) -> rec.Outcome:
    if reading.error is None:
        return rec.Outcome(job.job_id, rec.SUCCEEDED, result=reading.result)
    return rec.Outcome(job.job_id, rec.FAILED, error=reading.error)


def _tensor_outcome(job: rec.Started, readings: Sequence[Reading]) -> rec.Outcome:
    """A tensor job's end: every image's outputs, or the first unreadable image's error."""
    for index, reading in enumerate(readings):
        if reading.error is not None:
            message = f"{job.tensor}[{index}]: {reading.error['message']}"
            return rec.Outcome(job.job_id, rec.FAILED, error=rec.error(reading.error["code"], message))
    results = [reading.result for reading in readings]
    labelled = [result for result in results if result["label"] is not None]
    outputs: tensors.TensorResult = {
        "label": [-1 if result["label"] is None else result["label"] for result in results],
        "probabilities": [result["probabilities"] or NO_DIGIT for result in results],
        "model_version": labelled[0]["model_version"] if labelled else None,
    }
    # A tensor's images share one model call (a batch's budget stops only between jobs).
    if timed := [result["timings"] for result in results if result.get("timings")]:
        outputs["timings"] = timed[0]
    return rec.Outcome(job.job_id, rec.SUCCEEDED, result=outputs)


def poisoned(job: rec.Started) -> rec.Outcome:
    """The end of a job whose image took its worker down, again, while it was recognised alone."""
    reason = "its worker died while reading it, twice (once alone): it is not read again"
    if job.tensor:
        reason = f"{job.tensor}: {reason}"
    return rec.Outcome(job.job_id, rec.FAILED, error=rec.error("poison", reason))
