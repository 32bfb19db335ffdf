"""Turning validated requests into jobs: record first, then enqueue, so no queued job lacks a record."""

from __future__ import annotations

import base64
import logging
import os

from flask import current_app, g, request, url_for
from werkzeug.datastructures import FileStorage

from jobs import queue
from jobs import records as rec
from web.errors import ApiError
from web.images import Limits, check_image
from web.services import services

log = logging.getLogger(__name__)


def limits() -> Limits:
    config = current_app.config
    return Limits(config["MAX_IMAGE_BYTES"], config["MAX_IMAGE_PIXELS"], config["MAX_IMAGES_PER_REQUEST"])


def check_images(images: list[tuple[str, bytes]]) -> None:
    """Raise :class:`ApiError` for the first unacceptable image; ``images`` are (name, bytes)."""
    allowed = limits()
    if not images:
        raise ApiError(400, "missing_image", "no image: send multipart field 'image' or JSON {\"images\": [...]}")
    if len(images) > allowed.max_images:
        raise ApiError(
            413, "too_many_images", f"{len(images)} images, over the limit of {allowed.max_images} per request"
        )
    for name, data in images:
        check_image(data, allowed, name)


def submit_predictions(images: list[tuple[str, bytes]]) -> tuple[str, list[str]]:
    """Validate all images (all or none are accepted), create one job per image, enqueue them.

    Returns the batch id (the request's jobs, together) and the job ids in order.
    """
    check_images(images)
    svc = services()
    client = request.remote_addr or "unknown"
    limit = current_app.config["MAX_PENDING_PER_CLIENT"]
    pending = svc.records.pending(client)
    if pending + len(images) > limit:
        raise ApiError(
            429,
            "too_many_pending",
            f"{pending} of your jobs are still pending; at most {limit} may wait at once",
            {"Retry-After": "1"},
        )
    batch_id = rec.new_job_id()
    payloads = [base64.b64encode(data).decode() for _, data in images]
    job_ids = svc.records.create("predict", len(images), batch_id=batch_id, client=client, payloads=payloads)
    items = list(zip(job_ids, payloads, strict=True))
    try:
        queue.enqueue_predictions(svc.celery, items, current_app.config["PREDICT_MESSAGE_IMAGES"])
    except Exception:
        # Recorded but not queued: end the records so nobody waits forever, then report 503.
        log.exception("enqueueing %d jobs failed", len(job_ids), extra={"batch_id": batch_id, "job_ids": job_ids})
        failure = rec.error("not_queued", "the job could not be queued")
        svc.records.finish(rec.Outcome(job_id, rec.FAILED, error=failure) for job_id in job_ids)
        raise
    # Named on the request's one access-log line (web/request_log.py), not on a line of their own.
    g.batch_id, g.job_ids = batch_id, job_ids
    return batch_id, job_ids


def job_links(job_ids: list[str]) -> list[dict]:
    return [{"job_id": job_id, "status_url": url_for("api.get_job", job_id=job_id)} for job_id in job_ids]


def read_upload(name: str, upload: FileStorage) -> tuple[str, bytes]:
    """(name, bytes) of one uploaded file; one over MAX_IMAGE_BYTES is refused unread (it may be on disk)."""
    limit = current_app.config["MAX_IMAGE_BYTES"]
    upload.stream.seek(0, os.SEEK_END)
    size = upload.stream.tell()
    upload.stream.seek(0)
    if size > limit:
        raise ApiError(413, "too_large", f"{name} is {size} bytes, over the limit of {limit}")
    return name, upload.read()
