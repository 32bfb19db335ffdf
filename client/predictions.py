"""The answer for one image, whether it came from the service, the local model, or never left the client."""

from __future__ import annotations

from dataclasses import dataclass, field

from jobs.schemas import SUCCEEDED, ExpiredJob, JobRecord
from model.results import ErrorDetail

# What a prediction takes over from its job's result, field by field (a number's fields included).
RESULT_FIELDS = (
    *("label", "confidence", "probabilities", "model_version", "reason"),
    *("text", "digits", "hint", "hint_reason"),
)


@dataclass(frozen=True)
class Prediction:
    """What became of one input image.

    ``label`` is the digit, or None: then ``error`` ({code, message}) says why the image could
    not be read or its job failed, or (with no error) ``reason`` says why a readable image
    holds no digit (it is blank). An image read as a number has ``text`` (its digits, leading
    zeros kept) and ``digits`` (each one's label, confidence, probabilities, box and input_png)
    instead of a label; ``confidence`` is then the whole number's. ``hint`` is ``read_as_number``
    (``hint_reason`` says why) when an image read as one digit seems to hold several: its label
    is then only one guess; read it as a number (``read="number"``, or ``"auto"``).
    """

    source: str
    label: int | None = None
    confidence: float | None = None
    probabilities: list[float] | None = None
    model_version: int | None = None
    reason: str | None = None
    error: ErrorDetail | None = None
    job_id: str | None = None
    text: str | None = None
    digits: list[dict] | None = None
    hint: str | None = None
    hint_reason: str | None = None
    record: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        """True when the image got a digit (or, read as a number, at least one)."""
        return self.label is not None or bool(self.text)

    @classmethod
    def from_record(cls, source: str, record: JobRecord | ExpiredJob) -> Prediction:
        """From an ended job record as ``GET /api/v1/jobs/<id>`` returns it (or a batch's expired job)."""
        result = record.get("result") or {}
        error = record.get("error")
        if record.get("status") != SUCCEEDED and not error:
            error = {"code": record.get("status", "unknown"), "message": f"the job is {record.get('status')}"}
        answer = {name: result.get(name) for name in RESULT_FIELDS}
        return cls(source=source, error=error, job_id=record.get("id"), record=record, **answer)

    @classmethod
    def failed(cls, source: str, code: str, message: str, job_id: str | None = None) -> Prediction:
        """An image that got no answer: ``code`` and ``message`` say why."""
        record = {"id": job_id, "status": "failed", "result": None, "error": {"code": code, "message": message}}
        return cls(source=source, error=record["error"], job_id=job_id, record=record)

    def to_json(self) -> dict:
        """The full record (the job's, or an equivalent one) with the image's ``path`` first."""
        return {"path": self.source, **self.record}
