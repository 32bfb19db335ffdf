"""Turning validated requests into jobs, each recorded and queued in one step (jobs/records.py): a job
per image for the job API, one tensor job (jobs/tensors.py) per Open Inference Protocol request."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass

from flask import g, url_for
from pydantic import TypeAdapter
from werkzeug.datastructures import FileStorage

from jobs import deadlines, keys, tracing
from jobs import records as rec
from jobs.schemas import READ_MODES, JobRecord, ReadMode
from web.clients import client_address
from web.errors import ApiError
from web.images import ImageLimits, check_image
from web.schemas import PRIORITY, TIMEOUT_MS, JobLink, RefusedImage, whole_number_text
from web.services import services, settings
from web.validation import Refusals, validated
from web.waiting import Watch

_READ = TypeAdapter(ReadMode)
_TIMEOUT_MS = TypeAdapter(whole_number_text(TIMEOUT_MS))
_PRIORITY = TypeAdapter(whole_number_text(PRIORITY))


def image_limits() -> ImageLimits:
    config = settings()
    return ImageLimits(
        config.max_image_bytes, config.max_image_pixels, config.max_images_per_request, config.max_decoded_bytes
    )


def check_images(images: list[tuple[str, bytes | ApiError]]) -> None:
    """Raise :class:`ApiError` naming every unacceptable image, each with its reason; ``images`` are
    (name, bytes), or (name, the refusal) for one refused while it was read."""
    allowed = image_limits()
    if not images:
        raise ApiError(400, "missing_image", "no image: send multipart field 'image' or JSON {\"images\": [...]}")
    if len(images) > allowed.max_images:
        raise ApiError(
            413, "too_many_images", f"{len(images)} images, over the limit of {allowed.max_images} per request"
        )
    refused: list[tuple[int, str, ApiError]] = []
    for index, (name, data) in enumerate(images):
        try:
            if isinstance(data, ApiError):
                raise data
            check_image(data, allowed, name)
        except ApiError as exc:
            refused.append((index, name, exc))
    if refused:
        raise refused_images(refused, len(images))


def refused_images(refused: list[tuple[int, str, ApiError]], total: int) -> ApiError:
    """The refusal of a submission with bad images: the first one's status and code (as when it is
    the only one), a message naming each, and ``images``: each one's index, name, status, code and
    message, so that a client can send the others again without them."""
    first = refused[0][2]
    listed: list[RefusedImage] = [
        {"index": index, "name": name, "status": exc.status, "code": exc.code, "message": exc.message}
        for index, name, exc in refused
    ]
    if len(refused) == 1:
        message = first.message
    else:
        message = f"{len(refused)} of {total} images are refused: " + "; ".join(exc.message for _, _, exc in refused)
    return ApiError(first.status, first.code, message, images=listed)


def read_field(source: Mapping) -> ReadMode | None:
    """The ``read`` a form or query string gives, checked (400 ``invalid_read``); None when it has none."""
    return validated(_READ, source["read"], Refusals("invalid_read"), "read") if "read" in source else None


def read_mode(*given: ReadMode | None) -> ReadMode:
    """What a submission asks its jobs to read: the ``read`` given (by the form or the JSON body,
    and the query; each already checked), ``digit`` when none is; 400 when two disagree."""
    values = {value for value in given if value is not None}
    if len(values) > 1:
        allowed = ", ".join(READ_MODES)
        raise ApiError(400, "invalid_read", f"read is given twice, with different values; give one of {allowed}")
    return values.pop() if values else READ_MODES[0]


_NUMBER_FIELDS = {"timeout_ms": (_TIMEOUT_MS, "invalid_timeout"), "priority": (_PRIORITY, "invalid_priority")}


def number_field(source: Mapping, name: str) -> int | None:
    """A form's ``timeout_ms`` or ``priority``, checked (400 ``invalid_timeout``,
    ``invalid_priority``); None when it has none."""
    if name not in source:
        return None
    adapter, code = _NUMBER_FIELDS[name]
    return validated(adapter, source[name], Refusals(code), name)


def given_once(name: str, *given: int | None) -> int | None:
    """A submission's ``timeout_ms`` or ``priority``: the one given (by the form or the JSON body,
    and the query; each already checked), None when none is; 400 when two disagree."""
    values = {value for value in given if value is not None}
    if len(values) > 1:
        code = _NUMBER_FIELDS[name][1]
        raise ApiError(400, code, f"{name} is given twice, with different values; give it once")
    return values.pop() if values else None


@dataclass(frozen=True)
class Submitted:
    """A submission's batch id and job ids, in order, and, when it was waited for and every job
    ended in time, their records (else None)."""

    batch_id: str
    job_ids: list[str]
    records: list[JobRecord | None] | None = None


def submit_predictions(
    images: list[tuple[str, bytes]],
    keep_images: bool = False,
    version: int | None = None,
    checked: bool = False,
    read: ReadMode = READ_MODES[0],
    wait: float = 0,
    timeout_ms: int | None = None,
    priority: int = 0,
) -> Submitted:
    """Validate all images (all or none are accepted: a refusal names every bad one), create one
    job per image, queued in its lane, and with ``wait`` hold the request until every job has
    ended or ``wait`` seconds pass (as far as this client may wait now: see web/waiting.py).

    With ``keep_images`` each image is kept as long as its record (for the job pages of form uploads);
    with ``version`` that model version reads them, not the active one; ``checked`` images were
    validated by the caller (digits in MNIST form, which are not image files). ``read`` (from
    :func:`read_mode`) goes on every record: one digit per image, or a number. ``timeout_ms`` is
    the request's own deadline (the job API's field, /v2's ``parameters.timeout``, a gRPC call's
    deadline), None when it gives none; the server's default and maximum apply (jobs/deadlines.py).
    ``priority`` chooses the lane within the client's bounds (jobs/records.py, Lanes).
    """
    if not checked:
        check_images(images)
    svc = services()
    config = svc.settings
    refuse_new_work_near_full()
    client = client_address()
    batch_id, *job_ids = rec.new_job_ids(1 + len(images))
    fields = {"read": read}
    if keep_images and config.keep_uploads:
        fields["keep_image"] = "1"
    if version is not None:
        fields["version"] = str(version)
    _continue_trace(fields)
    limits, lanes = _limits_and_lanes(priority)
    # Watched before they exist: nothing is read until they have ended, and then only the records
    # their finished notices did not carry.
    with svc.waiter.watching(job_ids, client) if wait > 0 else contextlib.nullcontext() as watch:
        try:
            svc.records.create(
                "predict",
                fields=fields,
                batch_id=batch_id,
                client=client,
                images=[data for _, data in images],
                limits=limits,
                lanes=lanes,
                ids=job_ids,
                timeout_ms=deadlines.timeout_ms(timeout_ms, config.default_timeout_ms, config.max_timeout_ms),
            )
        except rec.OverLimit as exc:
            raise over_limit(exc, len(images), sum(len(data) for _, data in images)) from None
        # Named on the request's one access-log line (web/request_log.py), not on a line of their own.
        g.batch_id, g.job_ids = batch_id, job_ids
        if watch is None:
            return Submitted(batch_id, job_ids)
        records = watch.until(wait, lambda: _records_once_ended(watch, job_ids), _read)
    return Submitted(batch_id, job_ids, records)


def submit_tensor(
    kind: str,
    payload: bytes,
    count: int,
    version: int | None,
    wait: float,
    timeout_ms: int | None = None,
    priority: int = 0,
) -> tuple[str, JobRecord | None]:
    """Create one tensor job of ``count`` images (``payload`` as jobs/tensors.py packs ``kind``),
    held to the same limits and lanes as ``count`` single images, and hold the request until it has
    ended or ``wait`` seconds pass (as far as this client may wait now: see web/waiting.py). Its id,
    and its record once it has ended (None: not in time, or its record expired). ``timeout_ms`` and
    ``priority`` are the job's deadline and lane, as for :func:`submit_predictions`."""
    svc = services()
    config = svc.settings
    refuse_new_work_near_full()
    client = client_address()
    job_id = rec.new_job_id()
    fields = {"read": READ_MODES[0], "tensor": kind}
    if version is not None:
        fields["version"] = str(version)
    _continue_trace(fields)
    limits, lanes = _limits_and_lanes(priority)
    with svc.waiter.watching([job_id], client) as watch:
        try:
            svc.records.create(
                "predict",
                fields=fields,
                client=client,
                images=[payload],
                limits=limits,
                lanes=lanes,
                ids=[job_id],
                images_per_job=count,
                listed=False,  # nobody polls it: it is not among the jobs listed
                timeout_ms=deadlines.timeout_ms(timeout_ms, config.default_timeout_ms, config.max_timeout_ms),
            )
        except rec.OverLimit as exc:
            raise over_limit(exc, count, len(payload)) from None
        g.job_ids = [job_id]
        if watch is None:
            return job_id, None
        records = watch.until(wait, lambda: _records_once_ended(watch, [job_id]), _read)
    return job_id, records[0] if records else None


def _records_once_ended(watch: Watch, job_ids: list[str]) -> list[JobRecord | None] | None:
    records = services().records
    return watch.records_once_ended(job_ids, records.get_many, records.unfinished)


def _read(records: list[JobRecord | None] | None) -> bool:
    return records is not None


def _continue_trace(fields: dict[str, str]) -> None:
    """Put this request's trace context on the jobs' records: the worker continues its trace."""
    if trace_context := tracing.current_context():
        fields[tracing.TRACE_FIELD] = trace_context


def _limits_and_lanes(priority: int) -> tuple[rec.PendingLimits, rec.Lanes]:
    """The limits on a client's pending work, and the lanes ``priority`` chooses among."""
    config = settings()
    limits = rec.PendingLimits(
        config.max_pending_per_client, config.max_pending_bytes_per_client, config.max_queued_bytes
    )
    return limits, rec.Lanes(keys.PREDICT_QUEUE, keys.BULK_QUEUE, config.interactive_pending, priority)


def refuse_new_work_near_full() -> None:
    """503 ``store_busy`` while Redis is above its high-water mark (REDIS_HIGH_WATER of maxmemory):
    the room left is for the work already accepted, which must start and finish."""
    if over := services().memory.over_high_water():
        used, mark = over
        message = (
            f"the job store is nearly full ({used >> 20} MiB used, new work stops at {mark >> 20} MiB); retry shortly"
        )
        raise ApiError(503, "store_busy", message, {"Retry-After": "2"})


def batch_ended_within(batch_id: str, seconds: float) -> bool:
    """Hold the request until every job of the batch has ended or ``seconds`` pass (as far as this
    client may wait now: see web/waiting.py), reading its one counter, never its jobs; whether all have ended."""
    svc = services()
    left = svc.waiter.wait_batch(batch_id, seconds, lambda: svc.records.batch_unfinished(batch_id), client_address())
    return left == 0


def over_limit(exc: rec.OverLimit, count: int, size: int) -> ApiError:
    """The answer to a submission that would go over a limit on unfinished work: 429 when it is
    this client's own, 503 when the queue as a whole is full; both say when to try again."""
    if exc.limit == "jobs":
        message = f"{exc.outstanding} of your jobs are still pending; at most {exc.allowed} may wait at once"
        return ApiError(429, "too_many_pending", message, {"Retry-After": "1"})
    if exc.limit == "bytes":
        message = (
            f"your pending jobs hold {exc.outstanding} bytes of images and these {count} add {size}; "
            f"at most {exc.allowed} may wait at once"
        )
        return ApiError(429, "too_many_pending_bytes", message, {"Retry-After": "1"})
    message = f"the queue is full ({exc.outstanding} bytes of images waiting, at most {exc.allowed}); retry shortly"
    return ApiError(503, "queue_full", message, {"Retry-After": "2"})


def job_links(job_ids: list[str]) -> list[JobLink]:
    # The route is made once, not per job (5 us each): ids are hex digits, which url_for leaves as they are.
    prefix = url_for("api.get_job", job_id="-")[:-1]
    return [{"job_id": job_id, "status_url": prefix + job_id} for job_id in job_ids]


def read_uploads(uploads: list[tuple[str, FileStorage]]) -> list[tuple[str, bytes | ApiError]]:
    """(name, bytes) of each uploaded file, given with its name; one over MAX_IMAGE_BYTES is refused
    unread (it may be on disk): (name, its refusal), for :func:`check_images` to name with the others."""
    limit = settings().max_image_bytes
    read = []
    for name, upload in uploads:
        stream = upload.stream
        size = stream.seek(0, os.SEEK_END)
        stream.seek(0)
        if size > limit:
            read.append((name, ApiError(413, "too_large", f"{name} is {size} bytes, over the limit of {limit}")))
        else:
            read.append((name, stream.read()))
    return read
