"""A batch of prediction jobs through this worker process: start them in the records, recognise
them, record every outcome, and give back what was not begun.

A batch is bounded twice: by ``PREDICT_BATCH_IMAGES`` images (worker/consumer.py takes the fast
lane's jobs first) and by ``PREDICT_BATCH_BUDGET_MS`` of recognising, after which the images not
begun go back to their lanes, so one slow request never holds a worker for long. Jobs taken over
from a worker that died are recognised one at a time, each recorded before the next: if one of
them takes this worker down too, the others are not held back, and that one ends ``poison``.
Jobs whose deadline had passed when they were taken are not started: they end ``expired``, unread.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from jobs import deadlines, lanes, tracing
from jobs import records as rec
from model.recognise import Bounds, Predictor
from worker.batch import poisoned, recognise_batch
from worker.process import WorkerProcess

log = logging.getLogger(__name__)


def predict_jobs(process: WorkerProcess, job_ids: Sequence[str]) -> None:
    """Start, recognise and record the jobs; raises redis errors (the caller gives the jobs back later).

    With tracing on, the batch is a span linked to each job's request, and each job a span in its
    request's trace (jobs/tracing.py)."""
    contexts = process.records.trace_contexts(job_ids) if tracing.enabled() else {}
    attributes = {"digits.worker": process.name, "digits.batch.jobs": len(job_ids)}
    with tracing.batch_span("predict batch", list(contexts.values()), attributes) as batch:
        recorded = _predict(process, job_ids)
        if contexts:
            tracing.job_spans(
                "predict job", [_job_span(contexts, job, outcome) for job, outcome in recorded], time.time(), batch
            )


def _job_span(contexts: dict[str, str], job: rec.Started, outcome: rec.Outcome) -> tuple[str, float | None, dict]:
    attributes = {"digits.job_id": job.job_id, "digits.lane": job.lane or "", "digits.status": outcome.status}
    return contexts.get(job.job_id, ""), job.started_at, attributes


def _predict(process: WorkerProcess, job_ids: Sequence[str]) -> list[tuple[rec.Started, rec.Outcome]]:
    """Each job this worker took and recorded, with how it ended."""
    settings = process.settings
    found = process.records.start(job_ids, process.name)
    started = {job.job_id: job for job in found}
    recorded: list[tuple[rec.Started, rec.Outcome]] = []
    expired = [rec.Outcome(job.job_id, rec.EXPIRED, error=deadlines.exceeded()) for job in found if job.expired]
    if expired:
        recorded += _record(process, expired, 0, started, None)
    jobs = [job for job in found if job.taken]
    if not jobs:
        return recorded
    bounds = Bounds(
        max_pixels=settings.max_image_pixels,
        max_decoded_bytes=settings.max_decoded_bytes,
        max_digits=settings.max_digits_per_number,
        seconds=settings.preprocess_budget_ms / 1000,
    )
    outcomes = [poisoned(job) for job in jobs if job.poison]
    for job in (job for job in jobs if job.suspect and not job.poison):
        process.records.read_alone(job.job_id)
        model = _model(process, job.version)
        alone = recognise_batch([job], model, bounds)
        recorded += _record(process, alone.outcomes, alone.through_model, started, model)
    fresh = [job for job in jobs if not job.suspect]
    # One model call per version asked for; nearly always one, the active version.
    for version in dict.fromkeys(job.version for job in fresh):
        group = [job for job in fresh if job.version == version]
        model = _model(process, version)
        done = recognise_batch(group, model, bounds, settings.predict_batch_budget_ms / 1000)
        recorded += _record(process, outcomes + done.outcomes, done.through_model, started, model)
        outcomes = []
        if done.left_over:
            lanes.give_back(process.records, [job.job_id for job in done.left_over], taken_by=process.name)
    if outcomes:
        recorded += _record(process, outcomes, 0, started, None)
    return recorded


def _model(process: WorkerProcess, version: int | None):
    return process.models.version(version) if process.models else None


def _record(
    process: WorkerProcess,
    outcomes: list[rec.Outcome],
    through_model: int,
    started: dict[str, rec.Started],
    model: Predictor | None,
) -> list[tuple[rec.Started, rec.Outcome]]:
    for outcome in outcomes:
        if outcome.error:
            log.info("job %s: %s", outcome.job_id, outcome.error["message"], extra={"job_id": outcome.job_id})
    jobs = [started[outcome.job_id] for outcome in outcomes]
    process.records.finish(
        outcomes,
        batch_size=through_model or None,
        clients=[job.client for job in jobs],
        created_at=[job.created_at for job in jobs],
        batches=[job.batch for job in jobs],
        started_at=[job.started_at for job in jobs],
        model_version=model.version if model else None,
    )
    return [(job, outcome) for job, outcome in zip(jobs, outcomes, strict=True)]
