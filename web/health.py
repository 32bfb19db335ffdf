"""Liveness and readiness for load balancers and orchestrators."""

from __future__ import annotations

import time

from flask import Blueprint, jsonify

from jobs import keys
from web.services import services

bp = Blueprint("health", __name__)

WORKER_SILENCE_S = 6.0


@bp.get("/healthz")
def healthz():
    """The web process is up (says nothing about Redis or workers)."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():
    """Ready when Redis answers and at least one worker with a loaded model has beaten recently."""
    client = services().redis
    pipe = client.pipeline(transaction=False)
    pipe.zrangebyscore(keys.WORKERS, time.time() - WORKER_SILENCE_S, "+inf")
    pipe.llen(keys.PREDICT_QUEUE)
    pipe.llen(keys.TRAIN_QUEUE)
    workers, predict_depth, train_depth = pipe.execute()
    names = [name.decode() for name in workers]
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.hget(keys.worker(name), "model_version")
    versions = pipe.execute()
    serving = [{"name": n, "model_version": v.decode() if v else None} for n, v in zip(names, versions, strict=True)]
    ready = any(w["model_version"] for w in serving)
    body = {
        "status": "ready" if ready else "no_workers",
        "redis": "ok",
        "workers": serving,
        "queue_depth": {keys.PREDICT_QUEUE: predict_depth, keys.TRAIN_QUEUE: train_depth},
    }
    return jsonify(body), 200 if ready else 503
