"""Liveness and readiness for load balancers and orchestrators."""

from __future__ import annotations

from flask import Blueprint, jsonify

from jobs import keys, workers
from web.auth import is_admin
from web.openapi import Answer, documented
from web.schemas import Draining, ErrorBody, Liveness, Readiness
from web.services import services

bp = Blueprint("health", __name__)


@bp.get("/healthz")
@documented("healthz", {200: Answer(Liveness, "alive")})
def healthz():
    """Liveness: the web process answers (says nothing of Redis or workers)."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
@documented(
    "readyz",
    {
        200: Answer(Readiness, "ready"),
        503: Answer(
            Readiness | Draining | ErrorBody,
            "no live worker (Readiness), this process going away (Draining), or Redis unreachable (an error)",
        ),
    },
)
def readyz():
    """Readiness: Redis answers and a worker with a loaded model is alive.

    Ready when Redis answers and at least one live worker serves predictions with a loaded model
    (training-only workers are listed but are no prediction capacity). A worker that cannot serve
    the active version says why in ``problem``, and which version it serves instead. Worker names
    (host and pid) are shown with the admin token only. ``unserved_lanes`` names the prediction
    lanes no such worker takes jobs from (workers started with ``-Q predict`` alone leave the bulk
    lane unserved): their jobs wait until they expire. From SIGTERM on, 503 ``draining`` at once:
    the process is going away (web/draining.py)."""
    if services().drain.draining:
        return jsonify({"status": "draining"}), 503
    client = services().redis
    live = workers.live(client)
    pipe = client.pipeline(transaction=False)
    for name in keys.QUEUES:
        pipe.llen(keys.queue_key(name))
    depths = dict(zip(keys.QUEUES, pipe.execute(), strict=True))
    named = is_admin()
    serving = [
        ({"name": w.name} if named else {})
        | {"model_version": None if w.model_version is None else str(w.model_version)}
        | ({"problem": w.problem} if w.problem else {})
        for w in live
    ]
    ready = any(w.predicts for w in live)
    body = {
        "status": "ready" if ready else "no_workers",
        "redis": "ok",
        "workers": serving,
        "queue_depth": depths,
        "unserved_lanes": workers.unserved_lanes(live),
    }
    return jsonify(body), 200 if ready else 503
