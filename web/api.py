"""The JSON API for jobs: submit predictions and training, poll and cancel jobs."""

from __future__ import annotations

import logging

from flask import Blueprint, current_app, jsonify, request, url_for

from jobs import queue
from jobs import records as rec
from jobs.model_store import StoreFull
from jobs.schemas import Batch, JobRecord, batch
from model.training.config import NOT_REQUESTED, ConfigError, TrainingRequest, parse_training_request
from web.auth import admin_required, is_admin, predict_token_if_configured
from web.clients import client_address
from web.errors import ApiError
from web.images import decode_base64_image
from web.openapi import Answer, documented, link
from web.privacy import all_shown, shown
from web.schemas import (
    Deleted,
    JobList,
    JobListQuery,
    PredictionsAccepted,
    TrainingAccepted,
    predictions_form,
    predictions_json,
    predictions_query,
    wait_query,
)
from web.services import services, settings
from web.submit import (
    batch_ended_within,
    given_once,
    job_links,
    number_field,
    read_field,
    read_mode,
    read_uploads,
    submit_predictions,
)
from web.validation import query, validated

bp = Blueprint("api", __name__, url_prefix="/api/v1")
# The budget every training job counts against (in place of a client address: they share one queue).
TRAINING = "training-jobs"
log = logging.getLogger(__name__)


@bp.post("/predictions")
@documented(
    "createPredictions",
    {
        200: Answer(Batch, "with ?wait=: every job has ended; their records"),
        202: Answer(PredictionsAccepted, "jobs queued"),
    },
    (400, 413, 415, 429, 503),
    query=lambda settings: predictions_query(settings.max_wait_seconds),
    body={
        "multipart/form-data": lambda settings: predictions_form(settings.max_images_per_request),
        "application/json": lambda settings: predictions_json(settings.max_images_per_request),
    },
    links={202: {"firstJob": link("getJob", job_id="jobs/0/job_id"), "batch": link("getBatch", batch_id="batch_id")}},
)
@predict_token_if_configured
def create_predictions():
    """Submit images: one prediction job each, in order; all are accepted or none.

    One job per image, in order: multipart field ``image`` (repeatable) or JSON ``{"images": [...]}``;
    ``read`` (a form field, JSON key or query parameter) says what each image holds: one digit, or
    one handwritten number (a number with more digits than the service's limit fails alone, error
    code too_many_digits). ``timeout_ms`` (likewise) is the jobs' deadline: a job no worker has
    started that many ms after submission ends expired, unread. ``priority`` 1 puts the jobs in
    the fast lane ahead of your own backlog (at most INTERACTIVE_PENDING of your jobs there at
    once), 2 or more in the bulk lane. ``?wait=S`` holds the request
    until every job has ended (200, with the batch's records as ``GET /batches/{batch_id}``
    answers) or S seconds pass (202, as without it).
    """
    config = settings()
    asked = query(predictions_query(config.max_wait_seconds))
    if request.mimetype == "application/json":
        body = validated(predictions_json(config.max_images_per_request), request.get_data(), json=True)
        read = read_mode(body.read if "read" in body.model_fields_set else None, asked.read)
        timeout_ms = given_once("timeout_ms", body.timeout_ms, asked.timeout_ms)
        priority = given_once("priority", body.priority, asked.priority)
        max_bytes = config.max_image_bytes
        named = [(f"images[{i}]", decode_base64_image(value, i, max_bytes)) for i, value in enumerate(body.images)]
    elif request.mimetype == "multipart/form-data":
        read = read_mode(read_field(request.form), asked.read)
        timeout_ms = given_once("timeout_ms", number_field(request.form, "timeout_ms"), asked.timeout_ms)
        priority = given_once("priority", number_field(request.form, "priority"), asked.priority)
        files = request.files.getlist("image")
        if not files:
            raise ApiError(400, "missing_image", "no file in multipart field 'image'")
        named = read_uploads([(f"image {f.filename or i}"[:200], f) for i, f in enumerate(files)])
    else:
        raise ApiError(
            415,
            "unsupported_media_type",
            "send multipart/form-data (field 'image') or application/json ({\"images\": [...]})",
        )
    submitted = submit_predictions(named, read=read, wait=asked.wait, timeout_ms=timeout_ms, priority=priority or 0)
    batch_id, job_ids = submitted.batch_id, submitted.job_ids
    if submitted.records is not None:
        return jsonify(batch(batch_id, job_ids, all_shown(submitted.records)))
    return jsonify(
        {"batch_id": batch_id, "batch_url": url_for("api.get_batch", batch_id=batch_id), "jobs": job_links(job_ids)}
    ), 202


@bp.get("/batches/<batch_id>")
@documented(
    "getBatch", {200: Answer(Batch, "the batch")}, (400, 404, 503), query=lambda s: wait_query(s.max_wait_seconds)
)
@predict_token_if_configured
def get_batch(batch_id: str):
    """All jobs of one submission, in order; ``?wait=S`` holds the request until all have ended."""
    wait = query(wait_query(settings().max_wait_seconds)).wait
    svc, admin = services(), is_admin()
    if (kept := svc.finished_batches.get(batch_id, admin)) is not None:  # ended jobs do not change
        return current_app.response_class(kept, mimetype="application/json")
    records = svc.records
    missing = ApiError(404, "not_found", f"no batch {batch_id[:64]!r}: never issued, or expired")
    if not records.batch_exists(batch_id):  # its ids are read once, when the answer is due
        raise missing
    # Many requests waiting on one batch end at once; those after the first find its answer kept.
    if batch_ended_within(batch_id, wait) and (kept := svc.finished_batches.get(batch_id, admin)) is not None:
        return current_app.response_class(kept, mimetype="application/json")
    job_ids = records.batch(batch_id)
    if job_ids is None:
        raise missing
    answer: Batch = batch(batch_id, job_ids, all_shown(records.get_many(job_ids), admin))
    response = jsonify(answer)
    if answer["done"]:
        svc.finished_batches.keep(batch_id, admin, response.get_data())
    return response


@bp.get("/jobs")
@documented("listJobs", {200: Answer(JobList, "recent jobs")}, (400, 503), query=JobListQuery)
@admin_required
def list_jobs():
    """The most recent jobs still kept, every client's, newest first: ``?limit=N`` (1-200, default 50).

    The admin's: a client reads its own jobs by the ids it was given (they are unguessable)."""
    return jsonify({"jobs": services().records.recent(query(JobListQuery).limit)})


@bp.get("/jobs/<job_id>")
@documented(
    "getJob", {200: Answer(JobRecord, "the job")}, (400, 404, 503), query=lambda s: wait_query(s.max_wait_seconds)
)
@predict_token_if_configured
def get_job(job_id: str):
    """A job's record; ``?wait=S`` holds the request until the job ends or S seconds pass."""
    svc = services()
    wait = query(wait_query(svc.settings.max_wait_seconds)).wait
    record: JobRecord | None = svc.waiter.wait(job_id, wait, lambda: svc.records.get(job_id), client_address())
    if record is None:
        raise ApiError(404, "not_found", f"no job {job_id[:64]!r}: never issued, or expired")
    return jsonify(shown(record))


@bp.post("/admin/purge-finished")
@documented("purgeFinishedJobs", {200: Answer(Deleted, "how many ended jobs' records were deleted")}, (503,))
@admin_required
def purge_finished():
    """Delete every ended job's record (and kept upload) now, to free Redis; unfinished jobs stay."""
    deleted = services().records.forget_finished()
    log.info("purged %d ended jobs", deleted)
    return jsonify({"deleted": deleted})


@bp.delete("/jobs/<job_id>")
@bp.post("/jobs/<job_id>/cancel")
@documented(
    {"DELETE": "cancelJob", "POST": "cancelJobByPost"},
    {202: Answer(JobRecord, "the job after the request")},
    (404, 503),
)
@admin_required
def cancel_job(job_id: str):
    """Cancel a queued job at once, or ask a running training job to stop after its current batch."""
    svc = services()
    if svc.records.get(job_id) is None:
        raise ApiError(404, "not_found", f"no job {job_id[:64]!r}")
    record = svc.records.request_cancel(job_id)
    log.info("cancellation requested; the job is %s", record["status"], extra={"job_id": job_id})
    return jsonify(record), 202


@bp.post("/training-jobs")
@documented(
    "createTrainingJob",
    {202: Answer(TrainingAccepted, "training job queued")},
    (400, 409, 413, 503),
    body={"application/json": TrainingRequest},
    links={202: {"job": link("getJob", job_id="job_id"), "cancel": link("cancelJob", job_id="job_id")}},
)
@admin_required
def create_training_job():
    """Queue a training job; the trained model is stored as a new version.

    ``{"recipe", "arch", "epochs", "batch_size", "learning_rate", "augment", "train_limit",
    "include_feedback", "base_version", "activate"}``, each optional.
    """
    body = request.get_json(silent=True)  # the standard library's parser: numbers of any size are refused as JSON
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    try:
        config, activate = parse_training_request(body)
    except ConfigError as exc:
        raise ApiError(400, "invalid_parameters", str(exc)) from None
    svc = services()
    if config.base_version is not None:
        base = svc.store.card(config.base_version)
        if base is None or base.get("format", "keras") != "keras":
            why = "is not stored" if base is None else f"is a {base.get('format')} model, not a Keras network"
            raise ApiError(400, "invalid_parameters", f"base_version {config.base_version} {why}")
    try:
        svc.store.room_for_one_more()
    except StoreFull as exc:
        raise ApiError(409, "model_store_full", str(exc)) from None
    params = {k: v for k, v in config.to_dict().items() if k not in NOT_REQUESTED}
    params["activate"] = activate
    limit = rec.PendingLimits(jobs=svc.settings.max_queued_training)
    try:
        # Training jobs count against one shared budget: at most MAX_QUEUED_TRAINING unfinished.
        (job_id,) = svc.records.create("train", fields={"params": params}, client=TRAINING, limits=limit).ids
    except rec.OverLimit as exc:
        message = f"{exc.outstanding} training jobs are queued or running; at most {exc.allowed} may be at once"
        raise ApiError(429, "too_many_training_jobs", message, {"Retry-After": "30"}) from None
    queue.enqueue_training(svc.celery, job_id)
    log.info("accepted training job (%s, %s epochs)", params["arch"], params["epochs"], extra={"job_id": job_id})
    return jsonify(
        {"job_id": job_id, "status_url": url_for("api.get_job", job_id=job_id), **svc.records.get(job_id)}
    ), 202
