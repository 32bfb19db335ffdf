"""``DigitsClient``: the service's API as Python calls, with chunking, long-polling and retries built in."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from urllib.parse import quote

from client.errors import Interrupted, RequestRefused
from client.images import ImageInput, LoadedImage, RequestLimits, chunks, iter_images
from client.predictions import Prediction
from client.transport import Transport
from jobs.schemas import TERMINAL, Batch, ExpiredJob, JobRecord

DEFAULT_URL = "http://127.0.0.1:8000"
MAX_WAIT_S = 30.0  # the API's longest ?wait= unless the server says less
DEFAULT_MAX_IMAGES = 1000  # the server's default MAX_IMAGES_PER_REQUEST; a lower limit is learnt from its 413
DEFAULT_MAX_BYTES = 20 * 1024 * 1024 - 256 * 1024  # under the server's default 20 MiB body, with room to spare
IMAGE_REJECTIONS = frozenset({400, 413, 415})  # statuses by which the server refuses a request for one bad image
REQUEST_LIMITS = frozenset({"too_many_images"})
IMAGE_LIMITS = frozenset({"too_large", "too_many_pixels"})
REQUEST_ERRORS = frozenset({"invalid_read", "invalid_timeout"})  # refusals of the request itself, whatever its images

ProgressCallback = Callable[[JobRecord], None]


class DigitsClient:
    """A client of one Digits service.

    ``token`` is sent with every call: the server's admin token for training, cancelling and
    activating, or its predict token where predictions need one. Every call times out after
    ``timeout`` seconds without an answer, and a 503/429 is retried, honouring ``Retry-After``,
    for up to ``retry_for`` seconds.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        retry_for: float = 60.0,
        max_images_per_request: int = DEFAULT_MAX_IMAGES,
        max_request_bytes: int = DEFAULT_MAX_BYTES,
    ):
        self.url = url.rstrip("/")
        self.limits = RequestLimits(max_images_per_request, max_request_bytes)
        self._max_wait = MAX_WAIT_S
        self._http = Transport(self.url, token, timeout=timeout, retry_for=retry_for)

    # Predictions

    def predict(
        self,
        images: Iterable[ImageInput] | ImageInput,
        *,
        read: str = "digit",
        timeout: float = 300.0,
        deadline_ms: int | None = None,
    ) -> list[Prediction]:
        """One :class:`Prediction` per image, in input order.

        ``images`` are paths, bytes or PIL images (a single one is taken as a list of one). With
        ``read="number"`` each image is read as a whole handwritten number (the prediction's
        ``text`` and ``digits``), else as one digit (its ``label``). They go in as few requests as
        the server allows; an image that cannot be read, or that the server refuses, gets its own
        error and the others are still answered. Jobs not ended within ``timeout`` seconds get a
        ``timeout`` error naming the job, which goes on. On Ctrl-C, raises :class:`Interrupted`
        with the ids of the jobs left running. A ``read`` the server does not know raises
        :class:`RequestRefused` (``invalid_read``). With ``deadline_ms``, an image no worker has
        begun reading that many ms after it was sent is never read: its prediction has the error
        ``deadline_exceeded`` (its job ended ``expired``).
        """
        if isinstance(images, str | bytes | bytearray | os.PathLike) or hasattr(images, "mode"):
            images = [images]
        sources: list[str] = []
        accepted: dict[int, str] = {}  # input index -> job id
        batches: list[tuple[str, list[int]]] = []  # each accepted request: its batch id, input indexes
        answers: dict[int, Prediction] = {}  # input index -> its answer, once known
        deadline = time.monotonic() + timeout
        fields = {"read": read} | ({"timeout_ms": str(deadline_ms)} if deadline_ms is not None else {})
        try:
            sending = chunks(self._sendable(images, sources, answers), self.limits)
            chunk = next(sending, None)
            while chunk is not None:
                following = next(sending, None)
                # The last request waits for its answers itself: one round trip when all fit in one.
                wait = 0.0 if following else min(self._max_wait, timeout)
                self._submit(chunk, accepted, batches, answers, fields, wait)
                chunk = following
            self._collect(sources, accepted, batches, answers, deadline)
        except KeyboardInterrupt:
            raise Interrupted([job_id for index, job_id in accepted.items() if index not in answers]) from None
        return [answers[index] for index in range(len(sources))]

    @staticmethod
    def _sendable(images: Iterable[ImageInput], sources: list[str], answers: dict) -> Iterator[LoadedImage]:
        """Read the inputs one by one, noting each source; those that cannot be sent are answered at once."""
        for image in iter_images(images):
            sources.append(image.source)
            if image.error:
                answers[image.index] = Prediction.failed(image.source, **image.error)
            else:
                yield image

    @property
    def max_images_per_request(self) -> int:
        """Images per request: the limit given, or the server's when it turned out lower."""
        return self.limits.max_images

    def _submit(
        self,
        chunk: list[LoadedImage],
        accepted: dict[int, str],
        batches: list[tuple[str, list[int]]],
        answers: dict[int, Prediction],
        fields: dict[str, str],
        wait: float = 0.0,
    ) -> None:
        """POST one chunk; record each image's job id in ``accepted`` or its refusal in ``answers``
        (or, when the server answered within ``wait`` seconds, the image's :class:`Prediction`).

        The server takes a request whole or not at all, and its refusal names every bad image
        (``error.images``): those get their errors and the others are sent again. A server that
        names none has the chunk split and sent again until the image it refuses is alone. When
        the server's limits turn out lower than ours, the chunk is cut to them.
        """
        pending = [chunk]
        while pending:
            chunk = pending.pop()
            try:
                batch_id, jobs, ended = self._post_images(chunk, fields, wait)
            except RequestRefused as exc:
                if exc.status not in IMAGE_REJECTIONS or exc.code in REQUEST_ERRORS:
                    raise
                named = {image["index"]: image for image in exc.images if 0 <= image["index"] < len(chunk)}
                if named:
                    for position, image in enumerate(chunk):
                        if position in named:
                            refusal = named[position]
                            answers[image.index] = Prediction.failed(
                                image.source, str(refusal.get("code")), str(refusal.get("message"))
                            )
                    rest = [image for position, image in enumerate(chunk) if position not in named]
                    if rest:
                        pending.append(rest)
                elif len(chunk) == 1:
                    answers[chunk[0].index] = Prediction.failed(chunk[0].source, exc.code, exc.message)
                elif exc.status == 413 and exc.code not in IMAGE_LIMITS:
                    self._learn_request_limit(exc, chunk)
                    pending += list(chunks(chunk, self.limits))[::-1]
                else:
                    half = len(chunk) // 2
                    pending += [chunk[half:], chunk[:half]]
                continue
            for image, job in zip(chunk, jobs, strict=True):
                accepted[image.index] = job.get("job_id") or job["id"]
                if ended:
                    answers[image.index] = Prediction.from_record(image.source, job)
            if not ended:
                batches.append((batch_id, [image.index for image in chunk]))

    def _post_images(
        self, chunk: list[LoadedImage], fields: dict[str, str], wait: float
    ) -> tuple[str | None, list[dict] | list[JobRecord | ExpiredJob], bool]:
        """(batch id, jobs, whether they have all ended): the jobs' records when they have, within
        ``wait`` seconds, else their ids and links. ``fields`` go in the query (read, timeout_ms)."""
        files = [("image", (image.filename, image.data, "application/octet-stream")) for image in chunk]
        params = fields | ({"wait": f"{wait:.1f}"} if wait >= 0.1 else {})
        try:
            answer = self._http.request("POST", "/api/v1/predictions", params=params, files=files, extra_read_s=wait)
        except RequestRefused as exc:
            if exc.code == "invalid_wait" and self._learn_max_wait(exc, wait):
                return self._post_images(chunk, fields, min(wait, self._max_wait))
            raise
        jobs = answer["jobs"]
        if len(jobs) != len(chunk):
            raise RequestRefused(502, "bad_answer", f"sent {len(chunk)} images, got {len(jobs)} jobs back")
        ended = bool(answer.get("done"))
        return answer.get("batch_id") or answer.get("id"), jobs, ended

    def _learn_max_wait(self, exc: RequestRefused, wait: float) -> bool:
        """Lower the longest wait asked for to the server's, from its 400; whether it was lower."""
        stated = re.search(r"from 0 to (\d+)", exc.message)
        if stated and float(stated.group(1)) < wait:
            self._max_wait = float(stated.group(1))
            return True
        return False

    def _learn_request_limit(self, exc: RequestRefused, chunk: list[LoadedImage]) -> None:
        """Shrink the chunk limits after a 413 for the request as a whole (too many images, too many bytes)."""
        if exc.code in REQUEST_LIMITS:
            stated = re.search(r"(?:limit of|at most) (\d+)", exc.message)
            limit = int(stated.group(1)) if stated else len(chunk) // 2
            self.limits.max_images = max(1, min(limit, len(chunk) - 1))
        else:
            sent = sum(len(image.data or b"") for image in chunk)
            self.limits.max_bytes = max(1, sent // 2)

    def _collect(
        self,
        sources: list[str],
        accepted: dict[int, str],
        batches: list[tuple[str, list[int]]],
        answers: dict,
        deadline: float,
    ) -> None:
        """Long-poll each accepted request's batch and put each job's :class:`Prediction` in ``answers``."""
        for batch_id, indexes in batches:
            try:
                records = self._wait_batch(batch_id, indexes, accepted, deadline)
            except RequestRefused as exc:
                for index in indexes:
                    answers[index] = Prediction.failed(sources[index], exc.code, exc.message, accepted[index])
                continue
            for index, record in zip(indexes, records, strict=True):
                job_id = accepted[index]
                if record["status"] in TERMINAL:
                    answers[index] = Prediction.from_record(sources[index], record)
                else:
                    message = f"still {record['status']} when the client stopped waiting; job {job_id} goes on"
                    answers[index] = Prediction.failed(sources[index], "timeout", message, job_id)

    def _wait_batch(
        self, batch_id: str | None, indexes: list[int], accepted: dict[int, str], deadline: float
    ) -> list[JobRecord] | list[JobRecord | ExpiredJob]:
        """The records of one request's jobs, once all have ended or ``deadline`` has passed."""
        if batch_id is None:  # a server without batches: poll the jobs one by one
            return [self.wait(accepted[i], timeout=max(0.0, deadline - time.monotonic())) for i in indexes]
        path = f"/api/v1/batches/{quote(batch_id, safe='')}"
        while True:
            wait = min(self._max_wait, max(0.0, deadline - time.monotonic()))
            params = {"wait": f"{wait:.1f}"} if wait >= 0.1 else None
            batch: Batch = self._http.request("GET", path, params=params, extra_read_s=wait, retry_connection=True)
            if batch["done"] or wait < 0.1:
                return batch["jobs"]

    # Jobs

    def job(self, job_id: str, wait: float = 0) -> JobRecord:
        """The job's record; with ``wait`` (seconds) the server holds the answer until the job ends or time passes."""
        wait = min(max(wait, 0.0), self._max_wait)
        params = {"wait": f"{wait:.1f}"} if wait >= 0.1 else None
        path = f"/api/v1/jobs/{quote(job_id, safe='')}"
        try:
            return self._http.request("GET", path, params=params, extra_read_s=wait, retry_connection=True)
        except RequestRefused as exc:
            if exc.code == "invalid_wait" and self._learn_max_wait(exc, wait):
                return self.job(job_id, self._max_wait)  # this server allows shorter waits than the default
            raise

    def wait(self, job_id: str, timeout: float | None = None, on_progress: ProgressCallback | None = None) -> JobRecord:
        """Long-poll until the job ends or ``timeout`` seconds pass; return its last record.

        With ``on_progress``, polls about once a second and hands it every record seen (training
        progress lives in ``record["progress"]``). On Ctrl-C raises :class:`Interrupted`; the job goes on.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        step = 1.0 if on_progress else self._max_wait
        try:
            while True:
                remaining = step if deadline is None else deadline - time.monotonic()
                record = self.job(job_id, wait=min(step, remaining))
                if on_progress:
                    on_progress(record)
                if record["status"] in TERMINAL or remaining <= 0:
                    return record
        except Interrupted:
            raise
        except KeyboardInterrupt:
            raise Interrupted([job_id]) from None

    def cancel(self, job_id: str) -> JobRecord:
        """Cancel a queued job, or ask a running training job to stop; returns the record after (needs the token)."""
        return self._http.request("DELETE", f"/api/v1/jobs/{quote(job_id, safe='')}")

    # Corrections

    def correct(self, job_id: str, label: int) -> dict:
        """Say that the prediction job ``job_id`` shows digit ``label`` (0-9); an earlier correction of
        the same job is replaced. Returns the correction as kept (``corrected``: the model was wrong)."""
        path = f"/api/v1/jobs/{quote(job_id, safe='')}/feedback"
        # Sending it twice keeps one correction (the second replaces the first): safe to retry.
        return self._http.request("POST", path, json={"label": label}, retry_connection=True)

    def feedback(self, limit: int = 100) -> dict:
        """The corrections, newest first, with counts per digit and the confusion table (given x predicted)."""
        return self._http.request("GET", f"/api/v1/feedback?limit={int(limit)}")

    # Training and models

    def train(
        self,
        *,
        recipe: str | None = None,
        arch: str | None = None,
        epochs: int | None = None,
        batch_size: int | None = None,
        learning_rate: float | None = None,
        augment: bool | None = None,
        train_limit: int | None = None,
        include_feedback: bool | None = None,
        base_version: int | None = None,
        activate: str | None = None,
        wait: bool = False,
        on_progress: ProgressCallback | None = None,
        timeout: float | None = None,
    ) -> dict:
        """Submit a training job (needs the token); parameters left None take the server's defaults.

        ``recipe`` is "fast" (the default: about 99.2 %) or "strong" (the best model, several
        times longer; how long depends on the machine: docs/model.md); ``epochs`` and the rest override what it sets.

        ``include_feedback`` trains on the corrections too; ``base_version`` fine-tunes that stored
        version (the server then picks a short default for ``epochs``).

        Returns the job's record as submitted (with ``job_id``), or with ``wait`` the record once
        it ends (``result`` then holds ``model_version``, ``test_accuracy`` and the ``card``).
        """
        given = {
            "recipe": recipe,
            "arch": arch,
            "epochs": epochs,
            "batch_size": batch_size,
            "learning_rate": learning_rate,
            "augment": augment,
            "train_limit": train_limit,
            "include_feedback": include_feedback,
            "base_version": base_version,
            "activate": activate,
        }
        submitted = self._http.request(
            "POST", "/api/v1/training-jobs", json={k: v for k, v in given.items() if v is not None}
        )
        if not wait:
            return submitted
        return self.wait(submitted["job_id"], timeout=timeout, on_progress=on_progress)

    def models(self) -> dict:
        """``{"active_version": n, "models": [card, ...]}``."""
        return self._http.request("GET", "/api/v1/models")

    def model(self, version: int) -> dict:
        """One version's card, with ``active``."""
        return self._http.request("GET", f"/api/v1/models/{int(version)}")

    def activate(self, version: int) -> dict:
        """Make ``version`` the one the workers serve (needs the token); returns ``{"active_version": n}``."""
        return self._http.request("POST", f"/api/v1/models/{int(version)}/activate")
