"""The JSON API for model versions: list, show, download, activate."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request

from jobs import queue, workers
from jobs.model_store import StoreFull, parse_version
from jobs.replicas import NotReplicated
from model.runtimes.formats import SUFFIXES, detect_format
from web.auth import admin_required, predict_token_if_configured
from web.clients import client_address
from web.errors import ApiError
from web.openapi import Answer, Raw, documented, link
from web.schemas import CARD_NOTES, Activated, ModelList, ModelShown, ModelStored, ModelUpload
from web.services import services
from web.validation import Refusals, validated

bp = Blueprint("models_api", __name__, url_prefix="/api/v1/models")


def _version(text: str) -> int:
    number = parse_version(text)
    if number is None:
        raise ApiError(404, "not_found", f"no model version {text[:64]!r}: versions are positive integers")
    return number


@bp.get("")
@documented("listModels", {200: Answer(ModelList, "the versions")}, (503,))
@predict_token_if_configured
def list_models():
    """Every model version with its card and the verdict of its check (its cost per image: the
    Models page compares each version with the active one), and the active one."""
    store = services().store
    cards = store.cards()
    verdicts = store.checks([card["version"] for card in cards])
    models = [{**card, "check": verdict} for card, verdict in zip(cards, verdicts, strict=True)]
    return jsonify({"active_version": store.active_version(), "models": models})


@bp.get("/<version>")
@documented("getModel", {200: Answer(ModelShown, "the card, and whether it is the active version")}, (404, 503))
@predict_token_if_configured
def get_model(version: str):
    """One version's card."""
    store = services().store
    card = store.card(_version(version))
    if card is None:
        raise ApiError(404, "not_found", f"no model version {version}")
    return jsonify({**card, "active": store.active_version() == card["version"]})


@bp.get("/<version>/file")
@documented("getModelFile", {200: Raw("application/octet-stream", "the .keras or .skops file")}, (404, 503))
@predict_token_if_configured
def download_model(version: str):
    """The model file."""
    number = _version(version)
    store = services().store
    data, card = store.file(number), store.card(number)
    if data is None or card is None:
        raise ApiError(404, "not_found", f"no model version {number}")
    suffix = SUFFIXES.get(card.get("format", "keras"), "")
    return Response(
        data,
        mimetype="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="digits-model-{number}{suffix}"'},
    )


@bp.post("/<version>/activate")
@documented("activateModel", {200: Answer(Activated, "activated")}, (404, 409, 503))
@admin_required
def activate_model(version: str):
    """Make this version the one every worker serves (within seconds, no restart).

    Once it has passed its check (run now if it never was).
    """
    number = _version(version)
    store = services().store
    if store.card(number) is None:
        raise ApiError(404, "not_found", f"no model version {number}")
    verdict = checked(number)
    if not verdict["ok"]:
        raise ApiError(409, "model_refused", f"version {number} may not be served: {verdict['reason']}")
    try:
        store.activate(number)
    except KeyError:
        raise ApiError(404, "not_found", f"no model version {number}") from None
    return jsonify({"active_version": number})


def checked(version: int) -> dict:
    """The verdict of ``version``'s check: the one kept, or a new check run by a worker (waited for
    up to ``CHECK_SECONDS`` and ten more; 503 if no worker answers in time)."""
    svc = services()
    verdict = svc.store.check(version)
    if verdict is not None:
        return verdict
    if not any(worker.predicts for worker in workers.live(svc.redis)):
        message = f"version {version} must be checked before it is served, and no worker is there to check it"
        raise ApiError(503, "check_unavailable", message, {"Retry-After": "30"})
    (job_id,) = svc.records.create("check", fields={"params": {"version": version}}).ids
    queue.enqueue_check(svc.celery, job_id)
    wait = svc.settings.check_seconds + 10
    job = svc.waiter.wait(job_id, wait, lambda: svc.records.get(job_id), client_address())
    if job and job["status"] == "succeeded":
        return job["result"]
    if job and job["status"] == "failed":
        raise ApiError(503, "check_failed", f"checking version {version} failed: {job['error']['message']}")
    raise ApiError(
        503, "check_unavailable", f"no worker checked version {version} within {wait:.0f} s", {"Retry-After": "30"}
    )


@bp.post("")
@documented(
    "uploadModel",
    {201: Answer(ModelStored, "stored")},
    (400, 409, 413, 415, 503),
    body={"multipart/form-data": ModelUpload},
    links={201: {"card": link("getModel", version="version")}},
)
@admin_required
def upload_model():
    """Upload a .keras or .skops model as a new version (not activated).

    Multipart ``file`` (.keras or .skops) with an optional JSON ``card`` of notes.

    The version is checked first (model/check.py, on a worker: it loads, answers (N, 10) finite
    rows that sum to 1, reads MNIST test digits well enough, fast enough); one that fails is not
    kept and the answer is 409 with the reason. It is not activated.
    """
    upload = request.files.get("file")
    if upload is None:
        raise ApiError(400, "missing_file", "send the model in multipart field 'file'")
    data = upload.read()
    limit = services().settings.max_model_bytes
    if len(data) > limit:
        raise ApiError(413, "model_too_large", f"the model file is {len(data)} bytes, over the limit of {limit}")
    file_format = detect_format(data)
    if file_format is None:
        raise ApiError(415, "unsupported_model", "file is neither a .keras nor a .skops model archive")
    notes = validated(CARD_NOTES, request.form.get("card") or "{}", Refusals("invalid_card"), "card", json=True)
    card = {**notes, "origin": "uploaded"}
    store = services().store
    try:
        version = store.add(data, card, file_format)
    except StoreFull as exc:
        raise ApiError(409, "model_store_full", str(exc)) from None
    try:
        verdict = checked(version)
    except (ApiError, NotReplicated):  # not kept unchecked: the client will send it again
        store.delete(version)
        raise
    if not verdict["ok"]:
        store.delete(version)
        raise ApiError(409, "model_refused", f"the model was not stored: {verdict['reason']}")
    current_app.logger.info("model version %s uploaded (%s, %d bytes)", version, file_format, len(data))
    return jsonify({**store.card(version), "check": verdict}), 201


@bp.delete("/<version>")
@documented("deleteModel", {204: None}, (404, 409, 503))
@admin_required
def delete_model(version: str):
    """Delete a version (not the active one)."""
    number = _version(version)
    try:
        services().store.delete(number)
    except KeyError:
        raise ApiError(404, "not_found", f"no model version {number}") from None
    except ValueError as exc:
        raise ApiError(409, "active_version", str(exc)) from None
    return "", 204
