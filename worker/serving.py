"""Per-process prediction: the loaded model, kept current, and the batch -> job records path.

Each worker process holds one :class:`Predictor`. Before each batch it makes sure that is the
active version: a pub/sub notice marks it stale at once, and a periodic check covers notices
missed while disconnected. A batch already in hand finishes on the model it started with.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import threading
import time
from dataclasses import dataclass

import numpy as np

from jobs import keys
from jobs import records as rec
from jobs.queue import connect, job_ttl_seconds, visibility_timeout_s
from jobs.recovery import requeue_lost
from model import store as model_store
from model.backends import backend_from_env, load_predictor
from model.preprocess import NotADigit, NotAnImage, preprocess, to_png

log = logging.getLogger(__name__)

VERSION_CHECK_S = 5.0
HEARTBEAT_S = 2.0
# A training job whose worker is silent this long is failed (its worker was killed or lost).
TRAINING_SILENCE_S = float(os.environ.get("TRAINING_STALE_SECONDS", "60"))


@dataclass
class PreparedImage:
    job_id: str
    pixels: np.ndarray | None = None
    outcome: rec.Outcome | None = None  # set when the image fails before the model


class Serving:
    """One per worker process: Redis clients, the model store and the active model."""

    def __init__(self, worker_name: str):
        self.backend = backend_from_env()
        if self.backend == "tensorflow":
            from model import runtime

            runtime.configure_threads()
        self.worker_name = worker_name
        self.redis = connect()
        self.records = rec.JobRecords(self.redis, job_ttl_seconds())
        self.store = model_store.ModelStore(self.redis)
        self.predictor = None
        self._loading = threading.Lock()
        self.max_pixels = int(os.environ.get("MAX_IMAGE_PIXELS", "40000000"))
        self.refresh_model()
        threading.Thread(target=self._listen_for_activation, daemon=True, name="model-activation").start()
        threading.Thread(target=self._beat, daemon=True, name="heartbeat").start()

    def refresh_model(self) -> None:
        """Load the active version if it is not the one in hand, then swap it in.

        Runs in the background (on an activation notice, and every few seconds in case a notice
        was missed), so a batch in hand finishes on the model it started with.
        """
        with self._loading:
            active = self.store.ensure_seeded()
            if self.predictor is not None and self.predictor.version == active:
                return
            started = time.perf_counter()
            try:
                predictor = load_predictor(self.store, active, self.backend)
            except Exception:
                # A broken version must not take the worker down: keep serving what we have.
                serving = getattr(self.predictor, "version", None)
                log.exception("cannot load model version %s; still serving %s", active, serving)
                return
            self.predictor = predictor
            seconds = time.perf_counter() - started
            log.info("serving model version %s on %s (loaded in %.2f s)", active, self.backend, seconds)

    def _listen_for_activation(self) -> None:
        while True:
            try:
                pubsub = connect(socket_timeout=None).pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(model_store.ACTIVATED_CHANNEL)
                self.refresh_model()  # anything may have happened while we were not listening
                for _ in pubsub.listen():
                    self.refresh_model()
            except Exception as exc:  # Redis gone: retry; the heartbeat's periodic check covers us
                log.warning("model activation listener: %s; retrying", exc)
                time.sleep(1)

    def _beat(self) -> None:
        """Tell Redis every few seconds that this process is alive and which model it serves."""
        last_check = time.time()
        while True:
            try:
                now = time.time()
                pipe = self.redis.pipeline(transaction=False)
                pipe.hset(
                    keys.worker(self.worker_name),
                    mapping={
                        "pid": os.getpid(),
                        "model_version": self.predictor.version if self.predictor else "",
                        "rss_bytes": _resident_bytes(),
                        "backend": self.backend,
                        "heartbeat": repr(now),
                    },
                )
                pipe.expire(keys.worker(self.worker_name), int(HEARTBEAT_S * 3))
                pipe.zadd(keys.WORKERS, {self.worker_name: now})
                pipe.zremrangebyscore(keys.WORKERS, 0, now - HEARTBEAT_S * 3)
                pipe.execute()
                if now - last_check >= VERSION_CHECK_S:
                    last_check = now
                    self.refresh_model()
                    for job_id in self.records.fail_silent_training(TRAINING_SILENCE_S):
                        log.warning("job %s: training worker lost; job failed", job_id, extra={"job_id": job_id})
                    requeue_lost(self.redis, self._producer(), older_than_s=2 * visibility_timeout_s())
            except Exception as exc:
                log.warning("heartbeat: %s", exc)
            time.sleep(HEARTBEAT_S)

    def _producer(self):
        from worker import app  # here, not at import: worker imports this module

        return app

    def predict_jobs(self, items: list[tuple[str, str]]) -> None:
        """Run one batch of (job id, base64 image) through preprocessing and one model call.

        Every job ends in its own record, written in one round trip; a bad image fails alone.
        """
        job_ids = [job_id for job_id, _ in items]
        statuses = self.records.start(job_ids, self.worker_name)
        prepared = []
        started = time.perf_counter()
        for (job_id, encoded), status in zip(items, statuses, strict=True):
            if status in (rec.QUEUED, rec.RUNNING):  # skip jobs ended already or expired
                prepared.append(self._prepare(job_id, encoded))
        preprocess_ms = (time.perf_counter() - started) * 1000 / max(1, len(prepared))
        ready = [p for p in prepared if p.outcome is None]
        outcomes = [p.outcome for p in prepared if p.outcome is not None]
        if ready:
            if self.predictor is None:
                self.refresh_model()  # the load at start failed: try again before giving up
            predictor = self.predictor
            if predictor is None:
                failure = rec.error("model_unavailable", "no model could be loaded; see the worker's log")
                outcomes += [rec.Outcome(p.job_id, rec.FAILED, error=failure) for p in ready]
                ready = []
        if ready:
            started = time.perf_counter()
            probabilities = predictor.probabilities(np.stack([p.pixels for p in ready]))
            predict_ms = (time.perf_counter() - started) * 1000
            timings = {
                "preprocess_ms": round(preprocess_ms, 3),
                "predict_ms": round(predict_ms, 3),
                "batch_size": len(ready),
            }
            rounded = np.round(probabilities.astype(np.float64), 6).tolist()  # one call for the whole batch
            for image, probs in zip(ready, rounded, strict=True):
                outcomes.append(
                    rec.Outcome(image.job_id, rec.SUCCEEDED, result=_result(image, probs, predictor.version, timings))
                )
        self.records.finish(outcomes, batch_size=len(ready) or None)
        log.debug("batch of %d jobs done", len(items), extra={"job_ids": job_ids})

    def _prepare(self, job_id: str, encoded: str) -> PreparedImage:
        try:
            data = base64.b64decode(encoded, validate=True)
            return PreparedImage(job_id, pixels=preprocess(data, self.max_pixels))
        except (binascii.Error, TypeError) as exc:
            error = rec.error("invalid_base64", f"image is not valid base64: {exc}")
        except NotAnImage as exc:
            log.info("job %s: not an image: %s", job_id, exc, extra={"job_id": job_id})
            error = rec.error("invalid_image", str(exc))
        except NotADigit as exc:
            result = {"label": None, "reason": str(exc), "probabilities": None, "model_version": None}
            return PreparedImage(job_id, outcome=rec.Outcome(job_id, rec.SUCCEEDED, result=result))
        except Exception as exc:  # any other decoder failure must fail this job only
            log.exception("job %s: preprocessing failed", job_id, extra={"job_id": job_id})
            error = rec.error("preprocessing_failed", f"{type(exc).__name__}: {exc}")
        return PreparedImage(job_id, outcome=rec.Outcome(job_id, rec.FAILED, error=error))


def _result(image: PreparedImage, probabilities: list[float], version: int | None, timings: dict) -> dict:
    label = max(range(len(probabilities)), key=probabilities.__getitem__)
    return {
        "label": label,
        "confidence": probabilities[label],
        "probabilities": probabilities,
        "model_version": version,
        "input_png": base64.b64encode(to_png(image.pixels)).decode(),
        "timings": timings,
    }


def _resident_bytes() -> int:
    """This process's resident memory (Linux), 0 where unknown."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


_serving: Serving | None = None
_lock = threading.Lock()


def get_serving(worker_name: str = "") -> Serving:
    """This process's :class:`Serving`, created (model loaded and warmed up) on first use."""
    global _serving
    with _lock:
        if _serving is None:
            _serving = Serving(worker_name or f"{os.uname().nodename}:{os.getpid()}")
        return _serving
