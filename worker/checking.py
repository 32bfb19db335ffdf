"""Checking a stored model version before it may be served (model/runtimes/check.py checks, in a
child process held to memory and time limits); the verdict is kept beside the version."""

from __future__ import annotations

import logging

from jobs import records as rec
from model.runtimes.check import CheckLimits, check_bytes
from settings import Settings
from worker.process import WorkerProcess

log = logging.getLogger(__name__)


def check_limits(settings: Settings) -> CheckLimits:
    """The CHECK_* settings, as the check takes them."""
    return CheckLimits(
        min_accuracy=settings.check_min_accuracy,
        max_ms_per_image=settings.check_max_ms_per_image,
        memory_bytes=settings.check_memory_mb * 2**20,
        seconds=settings.check_seconds,
    )


def check_version(process: WorkerProcess, version: int) -> dict:
    """Check ``version``, keep the verdict in the store and return it (``{"ok": ..., "reason": ...}``)."""
    store, settings = process.store, process.settings
    data, card = store.file(version), store.card(version)
    if data is None or card is None:
        return {"ok": False, "reason": f"there is no model version {version}"}
    checked = check_bytes(data, card.get("format", "keras"), check_limits(settings), settings.mnist_dir)
    if checked.litert is not None:  # LiteRT workers serve this export: the one just checked
        store.set_litert_file(version, checked.litert)
    verdict = checked.verdict.to_dict()
    store.set_check(version, verdict)
    log.info("model version %s checked: %s", version, verdict["reason"])
    return verdict


def run_check_job(process: WorkerProcess, job_id: str) -> None:
    """Run a check job: check the version its parameters name and end the job with the verdict."""
    records = process.records
    (started,) = records.start([job_id], process.name)
    if not started.taken:
        return
    version = ((records.get(job_id) or {}).get("params") or {}).get("version")
    try:
        verdict = check_version(process, int(version))
    except Exception as exc:
        log.exception("job %s: checking model version %s failed", job_id, version, extra={"job_id": job_id})
        records.finish(
            [rec.Outcome(job_id, rec.FAILED, error=rec.error("check_failed", f"{type(exc).__name__}: {exc}"))]
        )
        return
    records.finish([rec.Outcome(job_id, rec.SUCCEEDED, result={"version": int(version), **verdict})])
