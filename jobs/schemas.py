"""The job record as every reader sees it, written once: its statuses, its fields, its results and
errors, and a batch of them.

jobs/records.py decodes records into these shapes, the web answers with them, and the ``digits``
client and the bench read them; the OpenAPI document (web/openapi.py) is generated from them.
Pure: pydantic and typing only, so that the client imports it without Flask, Redis or the model.
The records stay plain dicts (TypedDicts cost nothing at run time): a batch of 256 is answered
as fast as before.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired

from pydantic import Field

# pydantic reads TypedDicts from typing_extensions on Python < 3.12
from typing_extensions import TypedDict

from model.results import DigitResult, ErrorDetail, NumberResult

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = "queued", "running", "succeeded", "failed", "cancelled"
# A job whose deadline passed before a worker started it (jobs/deadlines.py) ends expired, unread;
# a batch's job whose record is gone (it outlived JOB_TTL_SECONDS) shows the same status.
EXPIRED = "expired"
Status = Literal["queued", "running", "succeeded", "failed", "cancelled", "expired"]
TERMINAL = frozenset({SUCCEEDED, FAILED, CANCELLED, EXPIRED})
JobType = Literal["predict", "train", "check"]
# What a prediction job reads: one digit (the default), every digit of a handwritten number, or
# ``auto``: the number when the number reader finds several digits in the image, else the digit.
READ_MODES = ("digit", "number", "auto")
ReadMode = Literal["digit", "number", "auto"]

JOB_ID_PATTERN = "^[0-9a-f]{32}$"
JobId = Annotated[str, Field(pattern=JOB_ID_PATTERN, description="32 lowercase hex digits")]
Timestamp = Annotated[str | None, Field(json_schema_extra={"format": "date-time"})]


class ModelCard(TypedDict):
    """A stored model version: architecture, hyper-parameters, test accuracy, confusion matrix,
    history... (what training wrote, or an upload's own notes), and what the store adds."""

    version: Annotated[int, Field(ge=1)]
    format: str
    file_bytes: int
    file_sha256: str
    stored_at: str


class TrainingResult(TypedDict):
    """What a training job made: the new version, how it scored, and whether it was activated."""

    model_version: int
    test_accuracy: float
    activated: bool
    card: ModelCard
    held_out_accuracy: NotRequired[Annotated[float | None, Field(description="on the held-out corrections")]]
    held_out_count: NotRequired[Annotated[int, Field(ge=0)]]
    activation: NotRequired[Annotated[str, Field(description="why it was or was not activated")]]


class CheckResult(TypedDict):
    """A model check's verdict: whether the version may be served, why, and what was measured."""

    version: int
    ok: bool
    reason: str
    accuracy: float | None
    ms_per_image: float | None
    checked_at: float


class JobRecord(TypedDict):
    """A job as the API shows it: queued -> running -> succeeded | failed | cancelled, or queued ->
    expired (its deadline passed before a worker started it). ``result`` is set when it
    succeeded, ``error`` when it did not."""

    id: JobId
    type: JobType
    status: Status
    created_at: Timestamp
    started_at: Timestamp
    finished_at: Timestamp
    result: DigitResult | NumberResult | TrainingResult | CheckResult | None
    error: ErrorDetail | None
    read: NotRequired[Annotated[ReadMode, Field(description="prediction jobs: what the job reads")]]
    worker: NotRequired[Annotated[str, Field(description="the worker that took it (host, pid): admin only")]]
    deadline: NotRequired[
        Annotated[Timestamp, Field(description="predictions with a timeout: not started by then, it ends expired")]
    ]
    params: NotRequired[Annotated[dict[str, Any], Field(description="training and check jobs: the parameters")]]
    progress: NotRequired[Annotated[dict[str, Any], Field(description="training jobs: epoch, batch, ETA, history")]]
    cancel_requested: NotRequired[Literal[True]]


class ExpiredJob(TypedDict):
    """A job of a batch whose record has expired (outlived JOB_TTL_SECONDS): its id alone."""

    id: JobId
    status: Literal["expired"]


class Batch(TypedDict):
    """All jobs of one submission, in order, with how many are in each status."""

    id: JobId
    total: int
    counts: dict[str, int]
    done: Annotated[bool, Field(description="every job has ended (or expired)")]
    jobs: Annotated[list[JobRecord | ExpiredJob], Field(description="in submission order")]


def batch(batch_id: str, job_ids: list[str], records: list[JobRecord | None]) -> Batch:
    """The batch of ``job_ids`` (in order) from their ``records`` (None: expired)."""
    counts: dict[str, int] = {}
    jobs: list[JobRecord | ExpiredJob] = []
    done = True
    for job_id, record in zip(job_ids, records, strict=True):
        if record is None:
            jobs.append({"id": job_id, "status": EXPIRED})
            status = EXPIRED
        else:
            jobs.append(record)
            status = record["status"]
            done = done and status in TERMINAL
        counts[status] = counts.get(status, 0) + 1
    return {"id": batch_id, "total": len(job_ids), "counts": counts, "done": done, "jobs": jobs}


def has_ended(record: JobRecord | None) -> bool:
    """Whether a job has ended; a missing record has (it expired)."""
    return record is None or record["status"] in TERMINAL
