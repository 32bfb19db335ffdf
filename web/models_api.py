"""The JSON API for model versions: list, show, download, activate."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from model.store import parse_version
from web.auth import token_required
from web.errors import ApiError
from web.services import services

bp = Blueprint("models_api", __name__, url_prefix="/api/v1/models")


def _version(text: str) -> int:
    version = parse_version(text)
    if version is None:
        raise ApiError(404, "not_found", f"no model version {text[:64]!r}: versions are positive integers")
    return version


@bp.get("")
def list_models():
    store = services().store
    return jsonify({"active_version": store.active_version(), "models": store.cards()})


@bp.get("/<text>")
def get_model(text: str):
    store = services().store
    card = store.card(_version(text))
    if card is None:
        raise ApiError(404, "not_found", f"no model version {text}")
    return jsonify({**card, "active": store.active_version() == card["version"]})


@bp.get("/<text>/file")
def download_model(text: str):
    version = _version(text)
    data = services().store.file(version)
    if data is None:
        raise ApiError(404, "not_found", f"no model version {version}")
    return Response(
        data,
        mimetype="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="digits-model-{version}.keras"'},
    )


@bp.post("/<text>/activate")
@token_required
def activate_model(text: str):
    version = _version(text)
    store = services().store
    try:
        store.activate(version)
    except KeyError:
        raise ApiError(404, "not_found", f"no model version {version}") from None
    return jsonify({"active_version": version})
