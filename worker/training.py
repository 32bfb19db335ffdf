"""A training job: the CLI's training code, with progress, cancellation and the model store around it."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time

import numpy as np
from celery.exceptions import SoftTimeLimitExceeded

from jobs import records as rec
from jobs.feedback import FeedbackLimits, FeedbackStore
from jobs.model_store import StoreFull
from model.mnist import DataError
from model.training.config import KERAS_ARCHITECTURES, ConfigError, parse_training_request
from model.training.judge import Scores, if_better
from worker.checking import check_version
from worker.process import WorkerProcess

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 1.0
BEAT_S = 2.0


def run_training_job(process: WorkerProcess, job_id: str) -> None:
    """Train per the job's parameters, store the model as a new version, maybe activate it, and end the job."""
    records, store = process.records, process.store
    began = time.monotonic()
    (started,) = records.start([job_id], process.name)
    if not started.taken:
        log.info("job %s: not training, it is %s", job_id, started.status or "gone", extra={"job_id": job_id})
        return
    try:
        params = (records.get(job_id) or {}).get("params") or {}
        from model.mnist import load_mnist
        from model.runtimes import tensorflow_setup
        from model.training.train import Cancelled, Corrections, train  # TensorFlow: only where training runs

        tensorflow_setup.configure_threads(process.settings.tf_intra_op_threads, process.settings.tf_inter_op_threads)
    except Exception as exc:  # the time ran out while TensorFlow loaded (seconds; more on a busy machine)?
        if not _caused_by_the_soft_limit(exc):
            raise
        records.finish([_out_of_time(job_id, process.settings.training_time_limit)])
        return

    beating = threading.Event()
    threading.Thread(target=_beat_until, args=(records, job_id, beating), daemon=True, name="job-heartbeat").start()
    last = [0.0]
    latest: list[dict] = []  # the last progress seen, written or not

    def progress(update: dict) -> None:
        now = time.monotonic()
        latest[:] = [update]
        if now - last[0] >= PROGRESS_EVERY_S or update["batch"] == update["batches"] or update.get("stopped"):
            last[0] = now
            records.set_progress(job_id, {**update, "heartbeat": time.time()})

    def stopped_here() -> None:
        """A job that did not finish: its record's progress is where it stopped, with nothing left to wait for."""
        if latest and not latest[0].get("stopped"):
            records.set_progress(job_id, {**latest[0], "eta_s": None, "fraction": None, "stopped": True})

    try:
        config, policy = parse_training_request(params)
        store.room_for_one_more()  # fail now, not after an hour of training
        config, base = _base_network(store, config)
        corrections = _corrections(process)
        trained = train(
            config,
            load_mnist(process.settings.mnist_dir),
            progress=progress,
            should_stop=_stop_asked_or_out_of_time(records, job_id, process.settings.training_time_limit),
            threads=process.settings.training_threads,
            corrections=Corrections(*corrections),
            base=base,
        )
        model_bytes = trained.to_bytes()
        version = store.add(model_bytes, {**trained.card, "training_job_id": job_id}, trained.file_format)
        if trained.file_format == "keras":
            from model.runtimes import litert  # export now, while TensorFlow is loaded anyway

            store.set_litert_file(version, litert.export(model_bytes))
        held = trained.card["held_out_corrections"]
        new = Scores(trained.card["test_accuracy"], held["accuracy"], held["count"])
        activated, why = _maybe_activate(process, version, new, policy, corrections[2:])
        result = {
            "model_version": version,
            "test_accuracy": trained.card["test_accuracy"],
            "held_out_accuracy": held["accuracy"],
            "held_out_count": held["count"],
            "activated": activated,
            "activation": why,
            "card": store.card(version),
        }
        records.finish([rec.Outcome(job_id, rec.SUCCEEDED, result=result)])
        accuracy = trained.card["test_accuracy"]
        log.info("job %s: trained version %s, test accuracy %.4f", job_id, version, accuracy, extra={"job_id": job_id})
    except Cancelled as exc:
        log.info("job %s: %s", job_id, exc, extra={"job_id": job_id})
        stopped_here()
        records.finish([rec.Outcome(job_id, rec.CANCELLED, error=rec.error("cancelled", str(exc)))])
    except (ConfigError, DataError) as exc:
        records.finish([rec.Outcome(job_id, rec.FAILED, error=rec.error("invalid_training", str(exc)))])
    except StoreFull as exc:
        records.finish([rec.Outcome(job_id, rec.FAILED, error=rec.error("model_store_full", str(exc)))])
    except SoftTimeLimitExceeded:
        stopped_here()
        records.finish([_out_of_time(job_id, process.settings.training_time_limit)])
    except Exception as exc:
        log.exception("job %s: training failed", job_id, extra={"job_id": job_id})
        stopped_here()
        if time.monotonic() - began >= process.settings.training_time_limit:
            # Celery's soft limit is a signal: landing inside TensorFlow's input pipeline it comes
            # out as TensorFlow's own error. Past the limit, the limit is the reason.
            records.finish([_out_of_time(job_id, process.settings.training_time_limit)])
        else:
            failure = rec.error("training_failed", f"{type(exc).__name__}: {exc}")
            records.finish([rec.Outcome(job_id, rec.FAILED, error=failure)])
    finally:
        beating.set()
        records.end_beats(job_id)


def _caused_by_the_soft_limit(exc: BaseException | None) -> bool:
    """Whether ``exc`` is Celery's soft time limit, or was raised from it: the limit is a signal, and
    landing in TensorFlow's import it came out as TensorFlow's own TypeError (the job was left running)."""
    while exc is not None:
        if isinstance(exc, SoftTimeLimitExceeded):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _out_of_time(job_id: str, limit_s: float) -> rec.Outcome:
    reason = f"stopped after {limit_s:.0f} s, the limit for one training job (TRAINING_TIME_LIMIT)"
    return rec.Outcome(job_id, rec.FAILED, error=rec.error("time_limit", reason))


def _stop_asked_or_out_of_time(records: rec.JobRecords, job_id: str, limit_s: float):
    """What training asks after every batch: whether the job was asked to stop. Past ``limit_s``
    it raises SoftTimeLimitExceeded itself, as Celery's soft limit would: that signal can land in
    code that swallows it (seen once: a job trained on a minute past its 8 s limit, until the hard
    limit killed the process), a check between batches cannot."""
    deadline = time.monotonic() + limit_s

    def should_stop() -> bool:
        if time.monotonic() > deadline:
            raise SoftTimeLimitExceeded()
        return records.should_stop(job_id)

    return should_stop


def _beat_until(records, job_id: str, stop: threading.Event) -> None:
    """Beat every couple of seconds (also while evaluating and storing) so a dead worker shows."""
    while not stop.is_set():
        try:
            records.beat(job_id)
        except Exception as exc:  # Redis away: the next beat will tell
            log.warning("job %s: heartbeat failed: %s", job_id, exc, extra={"job_id": job_id})
        stop.wait(BEAT_S)


def _base_network(store, config):
    """The config to train (a fine-tuning job takes its base version's architecture) and the base's
    .keras file, or None when training from scratch."""
    if config.base_version is None:
        return config, None
    card, data = store.card(config.base_version), store.file(config.base_version)
    if card is None or data is None:
        raise ConfigError(f"base_version {config.base_version} is not stored (deleted meanwhile?)")
    if card.get("format", "keras") != "keras" or card.get("arch") not in KERAS_ARCHITECTURES:
        raise ConfigError(f"base_version {config.base_version} is not a Keras network of {list(KERAS_ARCHITECTURES)}")
    return dataclasses.replace(config, arch=card["arch"]), data


def _corrections(process: WorkerProcess) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The corrections kept now: (training images, labels, held-out images, labels). The held-out
    ones judge every new version, whether or not the job trains on the rest."""
    client = process.records.redis
    examples = FeedbackStore(client, FeedbackLimits(retention_s=process.settings.feedback_retention_seconds)).examples()
    usable, held = examples.split()
    return usable.images, usable.labels, held.images, held.labels


def _maybe_activate(
    process: WorkerProcess, version: int, new: Scores, policy: str, held: tuple[np.ndarray, np.ndarray]
) -> tuple[bool, str]:
    """Activate the new version if ``policy`` asks for it and it passes its check; and say why (not)."""
    store = process.store
    if policy == "never":
        return False, "the job asked not to activate it"
    if policy == "if-better":
        active = store.active_version()
        better, why = if_better(new, _scores(process, active, held) if active else None, active)
        if not better:
            return False, why
    verdict = check_version(process, version)
    if not verdict["ok"]:
        return False, f"it failed its check: {verdict['reason']}"
    store.activate(version)
    return True, "activated" if policy != "if-better" else f"activated: {why}"


def _scores(process: WorkerProcess, version: int, held: tuple[np.ndarray, np.ndarray]) -> Scores:
    """The active version's MNIST test accuracy (from its card) and its accuracy on the same
    held-out corrections the new version was judged on (measured now)."""
    card = process.store.card(version) or {}
    images, labels = held
    if not len(labels):
        return Scores(card.get("test_accuracy", 0.0))
    from worker.model_holder import load_version

    predictor = load_version(process.store, version, "tensorflow")
    said = predictor.probabilities(images.astype(np.float32) / 255.0).argmax(axis=1)
    return Scores(card.get("test_accuracy", 0.0), round(float((said == labels).mean()), 5), len(labels))
