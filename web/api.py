"""The JSON API for jobs: submit predictions and training, poll and cancel jobs."""

from __future__ import annotations

import logging
import re
from collections import Counter

from flask import Blueprint, jsonify, request, url_for

from jobs import queue
from jobs import records as rec
from jobs.model_store import StoreFull
from jobs.records import TERMINAL
from model.training.config import NOT_REQUESTED, ConfigError, parse_training_request
from web.auth import admin_required, predict_token_if_configured
from web.errors import ApiError
from web.images import decode_base64_image
from web.services import services, settings
from web.submit import all_ended_within, job_links, read_mode, read_upload, submit_predictions

bp = Blueprint("api", __name__, url_prefix="/api/v1")
# The budget every training job counts against (in place of a client address: they share one queue).
TRAINING = "training-jobs"
log = logging.getLogger(__name__)
_DECIMAL = re.compile(r"([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?")

DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT = 50, 200


@bp.post("/predictions")
@predict_token_if_configured
def create_predictions():
    """One job per image, in order: multipart field ``image`` (repeatable) or JSON ``{"images": [...]}``;
    ``read`` (multipart field, JSON key or query) says what each job reads: a digit or a number.

    ``?wait=S`` holds the request until every job has ended or S seconds pass: 200 with the
    batch's records (as ``GET /batches/<id>`` answers) when all have ended, else 202 as without it.
    """
    wait = _wait_seconds()
    if request.mimetype == "application/json":
        body = _json_body()
        read = read_mode(body, request.args)
        images = body.get("images")
        if not isinstance(images, list):
            raise ApiError(400, "invalid_request", 'JSON body must be {"images": ["<base64>", ...]}')
        limit = settings().max_images_per_request
        if len(images) > limit:
            raise ApiError(413, "too_many_images", f"{len(images)} images, over the limit of {limit} per request")
        max_bytes = settings().max_image_bytes
        named = [(f"images[{i}]", decode_base64_image(value, i, max_bytes)) for i, value in enumerate(images)]
    elif request.mimetype == "multipart/form-data":
        read = read_mode(request.form, request.args)
        files = request.files.getlist("image")
        if not files:
            raise ApiError(400, "missing_image", "no file in multipart field 'image'")
        named = [read_upload(f"image {f.filename or i}"[:200], f) for i, f in enumerate(files)]
    else:
        raise ApiError(
            415,
            "unsupported_media_type",
            "send multipart/form-data (field 'image') or application/json ({\"images\": [...]})",
        )
    submitted = submit_predictions(named, read=read, wait=wait)
    batch_id, job_ids = submitted.batch_id, submitted.job_ids
    if submitted.records is not None:
        return jsonify(_batch(batch_id, job_ids, submitted.records))
    return jsonify(
        {"batch_id": batch_id, "batch_url": url_for("api.get_batch", batch_id=batch_id), "jobs": job_links(job_ids)}
    ), 202


@bp.get("/batches/<batch_id>")
@predict_token_if_configured
def get_batch(batch_id: str):
    """All jobs of one submission, in order; ``?wait=S`` holds the request until all have ended."""
    svc = services()
    job_ids = svc.records.batch(batch_id)
    if job_ids is None:
        raise ApiError(404, "not_found", f"no batch {batch_id[:64]!r}: never issued, or expired")
    all_ended_within(job_ids, _wait_seconds())
    return jsonify(_batch(batch_id, job_ids))


def _batch(batch_id: str, job_ids: list[str], jobs: list[dict | None] | None = None) -> dict:
    """The records of one submission's jobs (``jobs``, or read now), in order, with counts per status."""
    jobs = services().records.get_many(job_ids) if jobs is None else jobs
    return {
        "id": batch_id,
        "total": len(job_ids),
        "counts": dict(Counter(job["status"] if job else "expired" for job in jobs)),
        "done": all(job is None or job["status"] in TERMINAL for job in jobs),
        "jobs": [job or {"id": job_id, "status": "expired"} for job, job_id in zip(jobs, job_ids, strict=True)],
    }


@bp.get("/jobs")
@predict_token_if_configured
def list_jobs():
    """The most recent jobs still kept, newest first: ``?limit=N`` (1-200, default 50)."""
    raw = request.args.get("limit", str(DEFAULT_LIST_LIMIT))
    if not (raw.isdigit() and 1 <= int(raw) <= MAX_LIST_LIMIT):
        raise ApiError(400, "invalid_limit", f"limit must be a whole number from 1 to {MAX_LIST_LIMIT}")
    return jsonify({"jobs": services().records.recent(int(raw))})


@bp.get("/jobs/<job_id>")
@predict_token_if_configured
def get_job(job_id: str):
    """The job's record; ``?wait=S`` holds the request until the job ends or S seconds pass."""
    wait = _wait_seconds()
    svc = services()
    record = svc.waiter.wait(job_id, wait, lambda: svc.records.get(job_id), _client())
    if record is None:
        raise ApiError(404, "not_found", f"no job {job_id[:64]!r}: never issued, or expired")
    return jsonify(record)


@bp.delete("/jobs/<job_id>")
@bp.post("/jobs/<job_id>/cancel")
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
@admin_required
def create_training_job():
    """Queue a training job: ``{"arch", "epochs", "batch_size", "learning_rate", "augment", "train_limit",
    "include_feedback", "base_version", "activate"}``."""
    try:
        config, activate = parse_training_request(_json_body())
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
    limit = rec.Limits(jobs=svc.settings.max_queued_training)
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


def _client() -> str:
    return request.remote_addr or "unknown"


def _json_body() -> dict:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    return body


def _wait_seconds() -> float:
    raw = request.args.get("wait")
    if raw is None:
        return 0.0
    limit = settings().max_wait_seconds
    # A plain decimal number: float() alone would also take "1_0", " 5" and other scripts' digits.
    wait = float(raw) if _DECIMAL.fullmatch(raw) else -1.0
    if not 0 <= wait <= limit:
        raise ApiError(400, "invalid_wait", f"wait must be a number of seconds from 0 to {limit}")
    return wait
