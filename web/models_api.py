"""The JSON API for model versions: list, show, download, activate."""

from __future__ import annotations

import json

from flask import Blueprint, Response, current_app, jsonify, request

from model.formats import SUFFIXES, detect_format
from model.store import parse_version
from web.auth import admin_required, predict_token_if_configured
from web.errors import ApiError
from web.services import services

bp = Blueprint("models_api", __name__, url_prefix="/api/v1/models")


def _version(text: str) -> int:
    number = parse_version(text)
    if number is None:
        raise ApiError(404, "not_found", f"no model version {text[:64]!r}: versions are positive integers")
    return number


@bp.get("")
@predict_token_if_configured
def list_models():
    store = services().store
    return jsonify({"active_version": store.active_version(), "models": store.cards()})


@bp.get("/<version>")
@predict_token_if_configured
def get_model(version: str):
    store = services().store
    card = store.card(_version(version))
    if card is None:
        raise ApiError(404, "not_found", f"no model version {version}")
    return jsonify({**card, "active": store.active_version() == card["version"]})


@bp.get("/<version>/file")
@predict_token_if_configured
def download_model(version: str):
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
@admin_required
def activate_model(version: str):
    number = _version(version)
    store = services().store
    try:
        store.activate(number)
    except KeyError:
        raise ApiError(404, "not_found", f"no model version {number}") from None
    return jsonify({"active_version": number})


@bp.post("")
@admin_required
def upload_model():
    """Store a model file (multipart ``file``: .keras or .skops) with an optional JSON ``card`` as a new version.

    The version is not activated; workers refuse to switch to a file they cannot load.
    """
    upload = request.files.get("file")
    if upload is None:
        raise ApiError(400, "missing_file", "send the model in multipart field 'file'")
    data = upload.read()
    file_format = detect_format(data)
    if file_format is None:
        raise ApiError(415, "unsupported_model", "file is neither a .keras nor a .skops model archive")
    try:
        card = json.loads(request.form.get("card") or "{}")
    except (json.JSONDecodeError, RecursionError):  # nested too deep for the parser: not a card either
        raise ApiError(400, "invalid_card", "card must be a JSON object") from None
    if not isinstance(card, dict):
        raise ApiError(400, "invalid_card", "card must be a JSON object")
    card = {**card, "origin": "uploaded"}
    version = services().store.add(data, card, file_format)
    current_app.logger.info("model version %s uploaded (%s, %d bytes)", version, file_format, len(data))
    return jsonify(services().store.card(version)), 201


@bp.delete("/<version>")
@admin_required
def delete_model(version: str):
    number = _version(version)
    try:
        services().store.delete(number)
    except KeyError:
        raise ApiError(404, "not_found", f"no model version {number}") from None
    except ValueError as exc:
        raise ApiError(409, "active_version", str(exc)) from None
    return "", 204
