"""The service's Redis Lua scripts, one file each beside this module, and one wrapper per script.

A script is a step that must be atomic: it reads and writes several keys in one go. Each .lua file
starts with a header naming every KEYS and ARGV entry and what it returns; its wrapper here is the
only code that knows that order, so callers pass named, typed arguments and get Python values back.

Every script is called the same way:

- KEYS: the script's fixed keys first, in its header's order, then each item's keys (a job, a
  lane, a correction) in a group of fixed size. Every key a script touches is in KEYS: none is
  built inside a script (Redis Cluster routes a script by its KEYS, and Redis requires it).
- ARGV[1]: a JSON object of the script's named values (times travel as text, stored as given).
- ARGV[2...]: each item's values in a group of fixed size, raw: image bytes and result JSON are
  not escaped. Flat groups, not JSON arrays: for a 256-job finish, decoding the arrays cost Redis
  about twice the CPU (1010 vs 490 us a call) and encoding them the caller 5-8x (196 vs 25 us).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, NamedTuple

import orjson
import redis

from jobs import keys


@functools.cache
def source(name: str) -> str:
    """The text of ``<name>.lua`` in this package (read once per process)."""
    return resources.files(__package__).joinpath(f"{name}.lua").read_text()


class Script:
    """One script registered with one client (sent by its SHA1, loaded again if Redis lost it)."""

    name: str  # the .lua file's stem

    def __init__(self, client: redis.Redis):
        self._script = client.register_script(source(self.name))

    def _run(
        self,
        script_keys: list[str],
        named: dict,
        values: Sequence[str | bytes] = (),
        replica_wait_ms: int | None = None,
    ) -> Any:
        """The script's answer; with ``replica_wait_ms``, ``(answer, replicas that acknowledged
        it)`` after ``WAIT 1 <ms>`` on the same connection (WAIT counts only what its own
        connection wrote)."""
        args = [orjson.dumps(named), *values]
        if replica_wait_ms is None:
            return self._script(keys=script_keys, args=args)
        for _ in range(2):
            # EVALSHA directly: a pipeline running a Script first asks SCRIPT EXISTS, a round trip
            # that costs twice what WAIT itself does on loopback.
            pipe = self._script.registered_client.pipeline(transaction=False)
            pipe.evalsha(self._script.sha, len(script_keys), *script_keys, *args)
            pipe.wait(1, replica_wait_ms)
            answer, acknowledged = pipe.execute(raise_on_error=False)
            if not isinstance(answer, redis.exceptions.NoScriptError):
                break
            # Not in this server's cache (a new primary after a failover, or a restart): load it, send again.
            self._script.registered_client.script_load(self._script.script)
        for reply in (answer, acknowledged):
            if isinstance(reply, Exception):
                raise reply
        return answer, acknowledged


class Refusal(NamedTuple):
    """A script wrote nothing: ``limit`` would be passed (``outstanding`` now, ``allowed`` at most)."""

    limit: str
    outstanding: int
    allowed: int


def _refusal(answer: list) -> Refusal:
    return Refusal(answer[0].decode(), int(answer[1]), int(answer[2]))


@dataclass(frozen=True)
class PendingLimits:
    """How much unfinished work create_jobs.lua admits (0: no limit): jobs and image bytes per
    client, and image bytes of everyone together (the script's ``limits``, field for field)."""

    jobs: int = 0
    bytes: int = 0
    total_bytes: int = 0


@dataclass(frozen=True)
class Lanes:
    """Where create_jobs.lua queues new jobs (the script's ``lanes``, field for field): ``fast``
    while their client has at most ``fast_pending`` jobs pending (these included), ``bulk`` beyond.
    Workers serve the fast lane first.

    A ``priority`` (Triton's: 0 none, 1 the highest) overrides that within bounds: 1 puts the jobs
    in the fast lane ahead of the client's own backlog, as long as the client's jobs in the fast
    lane (these included) stay within ``fast_pending``, so a client cannot move a backlog ahead of
    everyone's single images; 2 and beyond put them in the bulk lane. The limits on pending jobs
    and bytes apply whatever the priority. Both counts are of images: a tensor job counts its own."""

    fast: str
    bulk: str | None = None
    fast_pending: int = 0
    priority: int = 0

    def __post_init__(self) -> None:
        if self.bulk is None:
            object.__setattr__(self, "bulk", self.fast)


class CreateJobs(Script):
    """create_jobs.lua: record and index new queued jobs, within limits, in a lane if given."""

    name = "create_jobs"

    def __call__(
        self,
        *,
        ttl: int,
        recent_kept: int,
        fields: dict[str, str],
        job_ids: Sequence[str],
        images: Sequence[bytes],
        limits: PendingLimits,
        lanes: Lanes | None,
        images_per_job: int = 1,
        listed: bool = True,
        timeout_ms: int = 0,
        replica_wait_ms: int | None = None,
    ) -> tuple[str | Refusal, int | None]:
        """The lane the jobs went to ('' for none), or the limit they would pass (nothing written);
        and, with ``replica_wait_ms``, how many replicas acknowledged the new records in that time
        (else None). ``fields`` are written in every record; its ``created_at`` (epoch seconds as
        text), ``client`` and ``batch`` (if any) are the jobs' too: they count towards that
        client's pending work and are kept, in order, as that batch. Without ``lanes`` the jobs go
        in no lane. Each job holds ``images_per_job``
        images; unless ``listed`` they are not among the recent. ``timeout_ms`` (0: none) gives
        each job a deadline that far ahead in Redis's clock."""
        batch_id, client = fields.get("batch", ""), fields.get("client", "")
        script_keys = [
            keys.QUEUED_JOBS,
            keys.RECENT_JOBS,
            keys.batch(batch_id),
            keys.pending(client),
            keys.pending_bytes(client),
            keys.QUEUED_BYTES,
            keys.lane(lanes.fast) if lanes else "",
            keys.lane(lanes.bulk) if lanes else "",
            keys.batch_unfinished(batch_id),
            keys.pending_fast(client),
        ]
        values: list[str | bytes] = []
        for job_id, image in zip(job_ids, images, strict=True):
            script_keys += [keys.job(job_id), keys.job_image(job_id)]
            values += [job_id, image]
        named = {
            "ttl": ttl,
            "recent_kept": recent_kept,
            "listed": listed,
            "images": images_per_job,
            "limits": limits,  # orjson writes a dataclass as its fields
            "lanes": lanes or False,
            "fields": fields,
            "timeout_ms": timeout_ms,
        }
        answer, acknowledged = self._run(script_keys, named, values, replica_wait_ms), None
        if replica_wait_ms is not None:
            answer, acknowledged = answer
        return (answer[1].decode() if answer[0] == b"ok" else _refusal(answer)), acknowledged


class Found(NamedTuple):
    """A job as start_jobs.lua found it (None: the record had no such field)."""

    status: str | None
    client: str | None
    lane: str | None
    image: bytes | None
    taken: bool
    suspect: bool
    poison: bool
    version: int | None
    read: str | None
    created_at: float | None
    batch: str | None
    started_at: float | None  # Redis's clock, for the jobs taken
    tensor: str | None
    expired: bool


class StartJobs(Script):
    """start_jobs.lua: mark jobs running as this worker's, taking over those of silent workers."""

    name = "start_jobs"

    def __call__(self, *, worker: str, silence_s: float, job_ids: Sequence[str]) -> list[Found]:
        """Per job, what was found (and whether it was taken)."""
        script_keys = [keys.QUEUED_JOBS, keys.RUNNING_JOBS, keys.WORKERS]
        for job_id in job_ids:
            script_keys += [keys.job(job_id), keys.job_image(job_id)]
        answers = self._run(script_keys, {"worker": worker, "silence": silence_s}, job_ids)
        return [
            Found(
                status.decode() or None,
                client.decode() or None,
                lane.decode() or None,
                image or None,
                bool(taken),
                bool(suspect),
                bool(poison),
                int(version) if version else None,
                read.decode() or None,
                float(created) if created else None,
                batch.decode() or None,
                float(took) if taken else None,
                tensor.decode() or None,
                bool(expired),
            )
            for (
                status,
                client,
                lane,
                image,
                taken,
                suspect,
                poison,
                version,
                read,
                created,
                batch,
                took,
                tensor,
                expired,
            ) in answers
        ]


class ReleaseJobs(Script):
    """release_jobs.lua: give jobs a worker took but did not finish back to the queue."""

    name = "release_jobs"

    def __call__(self, *, worker: str, job_ids: Sequence[str]) -> list[str]:
        """The ids to queue again: those released, and those never started."""
        script_keys = [keys.QUEUED_JOBS, keys.RUNNING_JOBS, *(keys.job(job_id) for job_id in job_ids)]
        return [i.decode() for i in self._run(script_keys, {"worker": worker}, job_ids)]


class BeatWorker(Script):
    """beat_worker.lua: a worker is alive now, by Redis's clock; forget the silent ones."""

    name = "beat_worker"

    def __call__(self, *, name: str, silence_s: float, fields: dict[str, str]) -> float:
        """The heartbeat's time (Redis's, epoch seconds)."""
        named = {"name": name, "silence": silence_s, "fields": fields}
        return float(self._run([keys.WORKERS, keys.worker(name)], named))


class LiveWorkers(Script):
    """live_workers.lua: the names of the workers that beat within the silence, by Redis's clock."""

    name = "live_workers"

    def __call__(self, *, silence_s: float) -> list[str]:
        return [name.decode() for name in self._run([keys.WORKERS], {"silence": silence_s})]


class CountUnfinished(Script):
    """count_unfinished.lua: how many jobs have not ended."""

    name = "count_unfinished"

    def __call__(self, *, job_ids: Sequence[str]) -> int:
        return int(self._run([keys.job(job_id) for job_id in job_ids], {}))


class Latency(NamedTuple):
    """A prediction's seconds from submission to result, and the histogram bucket they fall in."""

    bucket: str
    seconds: float


class Served(NamedTuple):
    """How a prediction a worker started spent its time: the histogram buckets of its wait in the
    lane and of its service (taken to ended), the model version whose statistics count it ('':
    none) and the nanoseconds of each part, as Triton's statistics extension splits them."""

    wait_bucket: str
    service_bucket: str
    version: str
    queue_ns: int
    input_ns: int
    infer_ns: int
    output_ns: int


class Finishing(NamedTuple):
    """One job to end: how (``result`` / ``error`` as JSON), whose it is, the batch it belongs to,
    the model version to count its predictions for (``predictions`` of them), its latency and how
    it was served (None: not counted), and the reason it failed (its error code)."""

    job_id: str
    client: str | None
    batch: str | None
    status: str
    result: bytes | None
    error: bytes | None
    counted_version: str | None
    latency: Latency | None
    predictions: int = 1
    served: Served | None = None
    reason: str = ""


class Ended(NamedTuple):
    """What finish_jobs.lua did: the ids of the jobs it ended and, when asked, how many ended jobs
    the finished index holds and each client's index (of the clients of the jobs ended)."""

    ids: list[str]
    held: int | None = None
    held_by_client: dict[str, int] | None = None


class FinishJobs(Script):
    """finish_jobs.lua: end the jobs not ended yet, count them, release what they held, announce them."""

    name = "finish_jobs"

    def __call__(
        self,
        *,
        now: float,
        channel: str,
        room: int,
        batch_bucket: str | None,
        batch_images: int,
        jobs: Sequence[Finishing],
        ttl: int,
        batch_version: str = "",
        trim: bool = True,
        count: bool = False,
    ) -> Ended:
        """The jobs this call ended, announced on ``channel`` with records of up to ``room``
        bytes. With ``batch_bucket``, a model call of ``batch_images`` is counted (and an
        execution of ``batch_version``, if given). ``ttl``: how long records live (a client's
        index of ended jobs lives as long after its last); with ``trim`` the finished index
        forgets its entries older than that; with ``count`` the answer says how many jobs the
        finished indexes hold."""
        script_keys = [keys.METRICS_OUTCOMES, keys.METRICS_PREDICTIONS, keys.METRICS_LATENCY, keys.METRICS_BATCH_SIZE]
        script_keys += [keys.QUEUED_JOBS, keys.RUNNING_JOBS, keys.QUEUED_BYTES, keys.FINISHED_JOBS]
        script_keys += [keys.METRICS_FAILURES, keys.METRICS_EXPIRED, keys.METRICS_QUEUE_WAIT]
        script_keys += [keys.METRICS_SERVICE_TIME, keys.METRICS_MODEL_STATS]
        values: list[str | bytes] = []
        # A batch's jobs share a few clients, batches, latencies and ways they were served: each
        # one's keys and values are made once.
        client_keys: dict[str, list[str]] = {}
        batch_keys: dict[str, str] = {}
        latency_values: dict[Latency | None, list[str]] = {None: ["", ""]}
        served_values: dict[Served | None, list[str]] = {None: [""] * len(Served._fields)}
        for job in jobs:
            job_id, client, batch = job.job_id, job.client or "", job.batch or ""
            if client not in client_keys:
                client_keys[client] = [keys.pending(client), keys.pending_bytes(client)]
                client_keys[client] += [keys.finished_by_client(client), keys.pending_fast(client)]
            if batch not in batch_keys:
                batch_keys[batch] = keys.batch_unfinished(batch)
            if job.latency not in latency_values:
                latency_values[job.latency] = [job.latency.bucket, repr(job.latency.seconds)]
            if job.served not in served_values:
                served_values[job.served] = [str(part) for part in job.served]
            pending, pending_bytes, finished_by_client, pending_fast = client_keys[client]
            script_keys += [keys.job(job_id), keys.job_image(job_id), pending, pending_bytes]
            script_keys += [batch_keys[batch], finished_by_client, pending_fast]
            values += [job.status, job.result or b"", job.error or b"", job_id, job.counted_version or ""]
            values += latency_values[job.latency]
            values.append("" if job.predictions == 1 else str(job.predictions))
            values.append(job.reason)
            values += served_values[job.served]
        batch = {"bucket": batch_bucket, "images": batch_images, "version": batch_version} if batch_bucket else False
        named = {"now": repr(now), "channel": channel, "room": room, "batch": batch, "ttl": ttl}
        named |= {"fast_lane": keys.PREDICT_QUEUE, "trim": trim, "count": count}
        answer = self._run(script_keys, named, values)
        if not count:
            return Ended([i.decode() for i in answer])
        ids, held, by_client = answer
        return Ended([i.decode() for i in ids], int(held), {c.decode(): int(n) for c, n in by_client})


class ForgetFinished(Script):
    """forget_finished.lua: delete ended jobs and what is kept for them."""

    name = "forget_finished"

    def __call__(self, *, jobs: Sequence[tuple[str, str | None, str | None]]) -> int:
        """How many records it deleted, of ``jobs`` given as (id, client, batch)."""
        script_keys = [keys.FINISHED_JOBS]
        for job_id, client, batch in jobs:
            script_keys += [keys.job(job_id), keys.job_image(job_id), keys.finished_by_client(client or "")]
            script_keys += [keys.batch(batch or ""), keys.batch_unfinished(batch or "")]
        return int(self._run(script_keys, {}, [job_id for job_id, _, _ in jobs]))


class TakeFromLanes(Script):
    """take_from_lanes.lua: lane entries of up to a batch of images, the first lane's first: one list per lane."""

    name = "take_from_lanes"

    def __call__(self, *, lanes: Sequence[str], most: int) -> list[list[str]]:
        groups = self._run([keys.lane(lane) for lane in lanes], {"most": most})
        return [[entry.decode() for entry in group] for group in groups]


class AddCorrection(Script):
    """add_correction.lua: keep a correction (replacing the job's earlier one), within the quota and the cap."""

    name = "add_correction"

    def __call__(
        self, record: Mapping[str, str | bytes], *, size: int, cap: int, earlier_client: str, quota: int
    ) -> bool | Refusal:
        """Keep ``record``, the correction's hash as jobs/feedback.py writes it (its ``pixels``
        bytes, every other field text), counting ``size`` bytes. True if it replaced one, False if
        it is the job's first; or the limit it would pass (``quota``, ``full``), or ``moved`` when
        the earlier correction is not ``earlier_client``'s."""
        job_id, client = record["job_id"], record["client"]
        script_keys = [keys.feedback(job_id), keys.FEEDBACK, keys.FEEDBACK_BYTES, keys.FEEDBACK_BY_VERSION]
        script_keys += [keys.METRICS_FEEDBACK, keys.feedback_of_client(client), keys.feedback_of_client(earlier_client)]
        named = {name: value for name, value in record.items() if name != "pixels"}
        named |= {"size": size, "cap": cap, "earlier_client": earlier_client, "quota": quota}
        answer = self._run(script_keys, named, [record["pixels"]])
        return bool(int(answer[1])) if answer[0] == b"ok" else _refusal(answer)


class DeleteCorrections(Script):
    """delete_corrections.lua: delete corrections and their share of the counts."""

    name = "delete_corrections"

    def __call__(self, *, job_ids: Sequence[str], clients: Sequence[str]) -> int:
        """How many of them existed; ``clients``: who gave each (its index loses the job)."""
        script_keys = [keys.FEEDBACK, keys.FEEDBACK_BYTES, keys.FEEDBACK_BY_VERSION]
        for job_id, client in zip(job_ids, clients, strict=True):
            script_keys += [keys.feedback(job_id), keys.feedback_of_client(client)]
        return int(self._run(script_keys, {}, job_ids))
