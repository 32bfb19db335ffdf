"""The JSON API for corrections: say what a prediction should have been, list, export and delete them."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import io
import logging

import numpy as np
from flask import Blueprint, Response, jsonify, request
from PIL import Image, UnidentifiedImageError
from werkzeug.routing import BaseConverter

from jobs.feedback import Correction as StoredCorrection
from jobs.feedback import FeedbackFull, FeedbackStore, QuotaReached
from jobs.records import SUCCEEDED
from model.images.preprocess import to_png
from web import feedback_export
from web.auth import admin_required, is_admin, predict_token_if_configured, predict_token_if_one_exists
from web.clients import client_address
from web.errors import ApiError
from web.openapi import Answer, Raw, documented
from web.schemas import (
    CorrectionAnswer,
    CorrectionKept,
    Deleted,
    ExportQuery,
    FeedbackBody,
    FeedbackList,
    FeedbackListQuery,
)
from web.services import services
from web.validation import query, validated

bp = Blueprint("feedback_api", __name__, url_prefix="/api/v1")


class JobIdConverter(BaseConverter):
    """A job id in a path: so that /feedback/export is never taken for the correction of job "export"."""

    regex = "[0-9a-f]{32}"


# Registered before the routes below are (a blueprint runs these in order when it is registered).
bp.record_once(lambda state: state.app.url_map.converters.setdefault("job_id", JobIdConverter))
log = logging.getLogger(__name__)

# Until a client's corrections are deleted or pruned, more are refused; an hour before asking again.
QUOTA_RETRY_S = 3600


def _feedback() -> FeedbackStore:
    return services().feedback


@bp.post("/jobs/<job_id>/feedback")
@documented(
    "giveFeedback",
    {201: Answer(CorrectionKept, "kept")},
    (400, 404, 409, 413, 429, 503, 507),
    body={"application/json": FeedbackBody},
)
@predict_token_if_one_exists
def give_feedback(job_id: str):
    """Say which digit a succeeded prediction should have been (again: replaces it).

    ``{"label": 0-9}``: the right digit for a succeeded prediction job (201). The client's address
    is kept with it; a client keeps at most MAX_CORRECTIONS_PER_CLIENT (429 correction_quota).
    """
    label = validated(FeedbackBody, request.get_data() if request.is_json else b"", json=True).label
    record = services().records.get(job_id)
    if record is None:
        raise ApiError(404, "not_found", f"no job {job_id[:64]!r}: never issued, or expired")
    if record["type"] != "predict":
        raise ApiError(409, "not_a_prediction", f"job {job_id} is a {record['type']} job, not a prediction")
    if record["status"] != SUCCEEDED:
        raise ApiError(409, "job_not_succeeded", f"job {job_id} is {record['status']}, not succeeded")
    if record.get("read") == "number":
        raise ApiError(409, "not_a_digit", f"job {job_id} read a number; corrections are of single digits")
    result = record.get("result") or {}
    if result.get("label") is None or not result.get("input_png"):
        raise ApiError(409, "no_digit_read", f"job {job_id} read no digit ({result.get('reason', 'no label')})")
    pixels = _pixels(result["input_png"])
    try:
        replaced = _feedback().add(
            job_id, label, int(result["label"]), result.get("model_version"), pixels, client_address()
        )
    except QuotaReached as exc:
        raise ApiError(429, "correction_quota", str(exc), {"Retry-After": str(QUOTA_RETRY_S)}) from None
    except FeedbackFull as exc:
        raise ApiError(507, "feedback_store_full", str(exc)) from None
    log.info("correction: %s for predicted %s", label, result["label"], extra={"job_id": job_id})
    kept: CorrectionKept = {**_shown(_feedback().get(job_id)), "replaced": replaced}
    return jsonify(kept), 201


@bp.get("/feedback")
@documented("listFeedback", {200: Answer(FeedbackList, "the corrections")}, (400, 503), query=FeedbackListQuery)
@predict_token_if_configured
def list_feedback():
    """The corrections, newest first, with counts per digit and a confusion table over all of them."""
    limit = query(FeedbackListQuery).limit
    store = _feedback()
    pairs = store.labels()
    confusion = np.zeros((10, 10), dtype=int)
    for given, predicted in pairs:
        confusion[given, predicted] += 1
    recent = store.many(store.ids(limit))
    answer: FeedbackList = {
        "total": len(pairs),
        "corrected": int(len(pairs) - np.trace(confusion)),
        "bytes": store.bytes_used(),
        "counts": {str(digit): int(n) for digit, n in enumerate(confusion.sum(axis=1))},
        "confusion": confusion.tolist(),
        "by_model_version": store.by_version(),
        "corrections": [_shown(c, with_client=is_admin()) for c in recent],
    }
    return jsonify(answer)


@bp.get("/feedback/export")
@documented("exportFeedback", {200: Raw("application/x-tar", "a tar archive")}, (400, 503), query=ExportQuery)
@predict_token_if_configured
def export_feedback():
    """The corrections in MNIST's IDX format: a tar of gzip files, oldest first.

    feedback-images-idx3-ubyte.gz (N x 28 x 28), feedback-labels-idx1-ubyte.gz (the digits given)
    and feedback-predicted-idx1-ubyte.gz (the digits predicted), in the same order. ``?split=all``
    (default), ``train`` (what training may use) or ``held_out`` (what judges it).
    """
    split = query(ExportQuery).split
    pages = _feedback().pages()
    if split != "all":
        pages = (page.split()[split == "held_out"] for page in pages)
    return Response(
        feedback_export.archive(pages),
        mimetype="application/x-tar",
        headers={"Content-Disposition": f'attachment; filename="digits-feedback-{split}.tar"'},
    )


@bp.delete("/feedback/<job_id:job_id>")
@documented("deleteFeedback", {204: None}, (404, 503))
@admin_required
def delete_feedback(job_id: str):
    """Delete the correction of one job."""
    if not _feedback().delete([job_id]):
        raise ApiError(404, "not_found", f"no correction of job {job_id[:64]!r}")
    return "", 204


@bp.delete("/feedback/clients/<client>")
@documented("deleteClientFeedback", {200: Answer(Deleted, "how many were deleted")}, (503,))
@admin_required
def delete_client_feedback(client: str):
    """Delete every correction one client (address, as the corrections list shows it) gave."""
    return jsonify({"deleted": _feedback().delete_client(client[:256])})


@bp.delete("/feedback")
@documented("deleteAllFeedback", {200: Answer(Deleted, "how many were deleted")}, (503,))
@admin_required
def delete_all_feedback():
    """Delete every correction."""
    return jsonify({"deleted": _feedback().delete_all()})


def _pixels(png_base64: str) -> np.ndarray:
    """The 28x28 uint8 image a job's result carries (as the network saw it)."""
    try:
        with Image.open(io.BytesIO(base64.b64decode(png_base64, validate=True))) as image:
            pixels = np.asarray(image.convert("L"), dtype=np.uint8)
    except (binascii.Error, UnidentifiedImageError, OSError) as exc:
        raise ApiError(409, "no_digit_read", f"the job's stored image cannot be read ({exc})") from None
    if pixels.shape != (28, 28):
        raise ApiError(409, "no_digit_read", f"the job's stored image is {pixels.shape}, not 28x28")
    return pixels


def _shown(correction: StoredCorrection | None, with_client: bool = False) -> CorrectionAnswer:
    if correction is None:  # deleted meanwhile
        return {}  # type: ignore[typeddict-item]
    shown: CorrectionAnswer = {
        "job_id": correction.job_id,
        "label": correction.label,
        "predicted": correction.predicted,
        "model_version": correction.model_version,
        "corrected": correction.corrected,
        "held_out": correction.held_out,
        "created_at": dt.datetime.fromtimestamp(correction.created_at, dt.UTC).isoformat(timespec="milliseconds"),
        "image_png": base64.b64encode(to_png(correction.pixels / 255.0)).decode(),
    }
    if with_client:  # who gave it: the admin's to know (to delete one client's corrections)
        shown["client"] = correction.client
    return shown
