"""A training job: the CLI's training code, with progress, cancellation and the model store around it."""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

from jobs import records as rec
from model.catalog import ConfigError, parse_train_config
from model.data import DataError

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 1.0


def run_training_job(serving, job_id: str, params: dict) -> None:
    """Train per ``params``, store the model as a new version, and end the job's record.

    ``serving`` is the process's :class:`worker.serving.Serving` (its Redis, records and store).
    """
    records, store = serving.records, serving.store
    status = records.start([job_id], serving.worker_name)[0]
    if status not in (rec.QUEUED, rec.RUNNING):
        log.info("job %s: not training, it is %s", job_id, status or "gone")
        return
    from model.train import Cancelled, train  # TensorFlow: only inside worker processes

    last = [0.0]

    def progress(update: dict) -> None:
        now = time.monotonic()
        if now - last[0] >= PROGRESS_EVERY_S or update["batch"] == update["batches"]:
            last[0] = now
            records.set_progress(job_id, {**update, "heartbeat": time.time()})

    try:
        config = parse_train_config(params)
        trained = train(config, progress=progress, should_stop=lambda: records.should_stop(job_id))
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.keras"
            trained.network.save(path)
            version = store.add(path.read_bytes(), {**trained.card, "training_job_id": job_id})
        result = {"model_version": version, "test_accuracy": trained.card["test_accuracy"], "card": store.card(version)}
        records.finish([rec.Outcome(job_id, rec.SUCCEEDED, result=result)])
        log.info("job %s: trained version %s, test accuracy %.4f", job_id, version, trained.card["test_accuracy"])
    except Cancelled as exc:
        records.finish([rec.Outcome(job_id, rec.CANCELLED, error=rec.error("cancelled", str(exc)))])
    except (ConfigError, DataError) as exc:
        records.finish([rec.Outcome(job_id, rec.FAILED, error=rec.error("invalid_training", str(exc)))])
    except Exception as exc:
        log.exception("job %s: training failed", job_id)
        records.finish(
            [rec.Outcome(job_id, rec.FAILED, error=rec.error("training_failed", f"{type(exc).__name__}: {exc}"))]
        )
