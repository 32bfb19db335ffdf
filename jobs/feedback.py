"""Corrections: what people say a finished prediction should have been, kept after the job expires.

One Redis hash per corrected job (``digits:feedback:<job id>``) holds the 28x28 pixels the
network saw, the label given, the label and model version predicted, who gave it and when; the
sorted set ``digits:feedback`` indexes them by time, and one per client what that client gave
(its quota, and what an admin deletes to undo it). Nothing expires by itself: corrections older
than the retention (if one is set) are pruned on every write and read, and the total size is capped.
A share of the corrections, chosen from each job id alone, is held out of training for judging.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import redis

from jobs import keys, scripts

PIXELS = 28 * 28
HELD_OUT_PERCENT = 20  # of the corrections, never trained on: what if-better judges by


@dataclass(frozen=True)
class Correction:
    """One correction: the label given for a job's image, beside what the model said."""

    job_id: str
    label: int
    predicted: int
    model_version: int | None
    created_at: float
    pixels: np.ndarray  # (28, 28) uint8, light ink on dark: what the network saw
    client: str = ""  # the address that gave it ('' for corrections kept before clients were recorded)

    @property
    def corrected(self) -> bool:
        """True if the model was wrong (else the correction confirms it)."""
        return self.label != self.predicted

    @property
    def held_out(self) -> bool:
        return is_held_out(self.job_id)


@dataclass(frozen=True)
class FeedbackLimits:
    """What corrections may take (0: no limit): how long they are kept (FEEDBACK_RETENTION_SECONDS),
    their bytes in all (MAX_FEEDBACK_BYTES) and how many one client keeps (MAX_CORRECTIONS_PER_CLIENT)."""

    retention_s: int = 0
    max_bytes: int = 0
    max_per_client: int = 0


class FeedbackFull(Exception):
    """A correction would take the corrections past MAX_FEEDBACK_BYTES."""


class QuotaReached(Exception):
    """The client already keeps MAX_CORRECTIONS_PER_CLIENT corrections."""


@dataclass(frozen=True)
class Examples:
    """Corrections as arrays: images (N, 28, 28) uint8, labels given and predicted (N,), job ids."""

    images: np.ndarray
    labels: np.ndarray
    predicted: np.ndarray
    job_ids: list[str]

    def __len__(self) -> int:
        return len(self.job_ids)

    def split(self) -> tuple[Examples, Examples]:
        """(the corrections training may use, those held out of it), by :func:`is_held_out`."""
        held = np.array([is_held_out(job_id) for job_id in self.job_ids], dtype=bool)
        return self._where(~held), self._where(held)

    def _where(self, mask: np.ndarray) -> Examples:
        ids = [job_id for job_id, keep in zip(self.job_ids, mask, strict=True) if keep]
        return Examples(self.images[mask], self.labels[mask], self.predicted[mask], ids)


def is_held_out(job_id: str) -> bool:
    """Whether a correction is held out of training: decided by its job id alone, so every
    training job (on any host, whatever else is stored) holds out the same ones."""
    return int(hashlib.sha256(job_id.encode()).hexdigest()[:8], 16) % 100 < HELD_OUT_PERCENT


class FeedbackStore:
    """Reads and writes corrections, within ``limits``."""

    def __init__(self, client: redis.Redis, limits: FeedbackLimits = FeedbackLimits()):
        self.redis = client
        self.limits = limits
        self._add = scripts.AddCorrection(client)
        self._delete = scripts.DeleteCorrections(client)

    def add(
        self, job_id: str, label: int, predicted: int, model_version: int | None, pixels: np.ndarray, client: str
    ) -> bool:
        """Keep ``label`` as the right answer for the job's ``pixels`` (28x28 uint8), given by
        ``client``, replacing any earlier correction of the same job; True if it replaced one.
        Raises :class:`QuotaReached` or :class:`FeedbackFull`, storing nothing, when the client's
        quota or the cap would be passed."""
        self.prune()
        data = np.ascontiguousarray(pixels, dtype=np.uint8).tobytes()
        if len(data) != PIXELS:
            raise ValueError(f"a correction's image must be 28x28, not {np.shape(pixels)}")
        # The correction's hash as it is kept (read back by _decode).
        record = {
            "job_id": job_id,
            "label": str(label),
            "predicted": str(predicted),
            "model_version": "" if model_version is None else str(model_version),
            "created_at": repr(time.time()),
            "pixels": data,
            "client": client,
        }
        size = sum(len(value) for value in record.values()) + 72  # the values and, roughly, the field names
        for _ in range(3):  # another correction of the same job may come in between the read and the script
            earlier = (self.redis.hget(keys.feedback(job_id), "client") or b"").decode()
            answer = self._add(
                record, size=size, cap=self.limits.max_bytes, earlier_client=earlier, quota=self.limits.max_per_client
            )
            if not (isinstance(answer, scripts.Refusal) and answer.limit == "moved"):
                break
        if isinstance(answer, scripts.Refusal):
            used, cap = answer.outstanding, answer.allowed
            if answer.limit == "quota":
                raise QuotaReached(f"{client} keeps {used} corrections; at most {cap} (MAX_CORRECTIONS_PER_CLIENT)")
            if answer.limit == "moved":
                raise FeedbackFull(f"the job {job_id} is being corrected by others at the same time")
            raise FeedbackFull(f"corrections take {used} bytes; at most {cap} (MAX_FEEDBACK_BYTES)")
        return answer

    def get(self, job_id: str) -> Correction | None:
        return _decode(self.redis.hgetall(keys.feedback(job_id)))

    def ids(self, limit: int = 0) -> list[str]:
        """Job ids of the corrections kept, newest first (``limit`` 0: all)."""
        self.prune()
        return [i.decode() for i in self.redis.zrevrange(keys.FEEDBACK, 0, limit - 1 if limit else -1)]

    def many(self, job_ids: Sequence[str]) -> list[Correction]:
        pipe = self.redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hgetall(keys.feedback(job_id))
        return [c for c in (_decode(raw) for raw in pipe.execute()) if c is not None]

    def labels(self) -> list[tuple[int, int]]:
        """(label given, label predicted) of every correction kept; one round trip for all."""
        pipe = self.redis.pipeline(transaction=False)
        for job_id in self.ids():
            pipe.hmget(keys.feedback(job_id), "label", "predicted")
        return [(int(given), int(said)) for given, said in pipe.execute() if given is not None]

    def examples(self) -> Examples:
        """Every correction kept, oldest first, as arrays."""
        return _examples(self.many(self.ids()[::-1]))

    def pages(self, size: int = 1000) -> Iterator[Examples]:
        """The corrections kept when this is called, oldest first, ``size`` at a time (one round
        trip each): what an export reads without holding them all."""
        ids = self.ids()[::-1]
        for start in range(0, len(ids), size):
            yield _examples(self.many(ids[start : start + size]))

    def delete(self, job_ids: Sequence[str]) -> int:
        """Delete these corrections; return how many existed."""
        deleted = 0
        for start in range(0, len(job_ids), 500):
            chunk = job_ids[start : start + 500]
            pipe = self.redis.pipeline(transaction=False)
            for job_id in chunk:
                pipe.hget(keys.feedback(job_id), "client")
            clients = [(client or b"").decode() for client in pipe.execute()]
            deleted += self._delete(job_ids=chunk, clients=clients)
        return deleted

    def of_client(self, client: str) -> list[str]:
        """Job ids of the corrections ``client`` gave, oldest first."""
        return [i.decode() for i in self.redis.zrange(keys.feedback_of_client(client), 0, -1)]

    def delete_client(self, client: str) -> int:
        """Delete every correction ``client`` gave (an admin undoing one client); return how many."""
        deleted = self.delete(self.of_client(client))
        self.redis.delete(keys.feedback_of_client(client))  # ids whose correction another client replaced
        return deleted

    def delete_all(self) -> int:
        return self.delete([i.decode() for i in self.redis.zrange(keys.FEEDBACK, 0, -1)])

    def prune(self) -> int:
        """Delete the corrections older than the retention; return how many."""
        if not self.limits.retention_s:
            return 0
        old = self.redis.zrangebyscore(keys.FEEDBACK, "-inf", time.time() - self.limits.retention_s)
        return self.delete([i.decode() for i in old]) if old else 0

    def bytes_used(self) -> int:
        return int(self.redis.get(keys.FEEDBACK_BYTES) or 0)

    def by_version(self) -> dict[str, dict[str, int]]:
        """Corrections kept per model version: {version: {"corrected": n, "confirmed": m}}."""
        counts: dict[str, dict[str, int]] = {}
        for field, count in self.redis.hgetall(keys.FEEDBACK_BY_VERSION).items():
            version, _, verdict = field.decode().rpartition(":")
            counts.setdefault(version, {"corrected": 0, "confirmed": 0})[verdict] = int(count)
        return counts


def _examples(corrections: Sequence[Correction]) -> Examples:
    images = np.stack([c.pixels for c in corrections]) if corrections else np.zeros((0, 28, 28), np.uint8)
    return Examples(
        images,
        np.array([c.label for c in corrections], dtype=np.uint8),
        np.array([c.predicted for c in corrections], dtype=np.uint8),
        [c.job_id for c in corrections],
    )


def _decode(raw: dict[bytes, bytes]) -> Correction | None:
    if not raw or b"pixels" not in raw:
        return None
    version = raw.get(b"model_version", b"")
    return Correction(
        job_id=raw[b"job_id"].decode(),
        label=int(raw[b"label"]),
        predicted=int(raw[b"predicted"]),
        model_version=int(version) if version else None,
        created_at=float(raw[b"created_at"]),
        pixels=np.frombuffer(raw[b"pixels"], dtype=np.uint8).reshape(28, 28),
        client=raw.get(b"client", b"").decode(),
    )
