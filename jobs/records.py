"""Job records: one Redis hash per job, written at submission and updated by the worker.

A record moves queued -> running -> succeeded | failed | cancelled, or from queued to expired
(its deadline passed before a worker started it: jobs/deadlines.py). The first terminal status
wins (a redelivered job cannot be answered twice), and every finish is announced on
``keys.JOBS_FINISHED_CHANNEL`` so waiting pollers wake at once. A prediction's image is stored
once, beside its record, until the job ends; queue messages carry only job ids.

The steps that must be atomic are Redis Lua scripts in jobs/scripts/ (create, start, release,
finish); which histogram bucket a job or a model call falls in is decided here, and the finish
script counts it there if it ends the job.
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime as dt
import functools
import os
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import orjson
import redis

from jobs import clock, keys, scripts, tracing, workers
from jobs.replicas import ReplicaAck

# The statuses and shapes of records are defined in jobs/schemas.py, once; named here too for the
# callers of this module.
from jobs.schemas import CANCELLED as CANCELLED
from jobs.schemas import EXPIRED as EXPIRED
from jobs.schemas import FAILED as FAILED
from jobs.schemas import JOB_ID_PATTERN, JobRecord
from jobs.schemas import QUEUED as QUEUED
from jobs.schemas import READ_MODES as READ_MODES
from jobs.schemas import RUNNING as RUNNING
from jobs.schemas import SUCCEEDED as SUCCEEDED
from jobs.schemas import TERMINAL as TERMINAL

# What create_jobs.lua applies, defined beside its wrapper; named here for the callers of create.
from jobs.scripts import Lanes as Lanes
from jobs.scripts import PendingLimits as PendingLimits
from model.results import ErrorDetail

RECENT_JOBS_KEPT = 1000
# A process trims the recent index once it has listed this many jobs since it last did: the index
# holds at most RECENT_JOBS_KEPT plus fewer than this a process, and a single image's request is
# spared the command.
RECENT_TRIM_EVERY = 16
_JOB_ID = re.compile(JOB_ID_PATTERN)

# Record bytes one finished notice carries at most: enough for a request of a few images, so a
# request waiting for them is answered without reading them again; a big batch's notice names
# the rest by id only, so no web process must parse megabytes it has no use for.
NOTICE_RECORD_BYTES = 64 * 1024

# Histogram bounds: seconds from submission to result, and images per model call.
LATENCY_BUCKETS = ("0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "30")
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
# Seconds a job waits in its lane before a worker takes it: from a millisecond (an idle worker
# blocked on the lane) to a minute (a backlog an autoscaler should have seen).
QUEUE_WAIT_BUCKETS = ("0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5")
QUEUE_WAIT_BUCKETS += ("10", "30", "60")
# Seconds from a worker taking a job to its end: a batch's preprocessing, model call and record.
SERVICE_TIME_BUCKETS = ("0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5")


def bucket_of(value: float, bounds: Sequence) -> str:
    """The histogram bucket (its upper bound, as text) that ``value`` falls in."""
    index = bisect.bisect_left(_as_numbers(tuple(bounds)), value)
    return str(bounds[index]) if index < len(bounds) else "+Inf"


@functools.cache
def _as_numbers(bounds: tuple) -> tuple[float, ...]:
    return tuple(float(bound) for bound in bounds)


class Outcome(NamedTuple):  # one per job: a NamedTuple costs half a frozen dataclass
    """How one job ended: ``result`` for succeeded, ``error`` ({code, message}) otherwise."""

    job_id: str
    status: str
    result: dict | None = None
    error: ErrorDetail | None = None


@dataclass(frozen=True)
class FinishedNotice:
    """What :meth:`JobRecords.finish` announces on ``keys.JOBS_FINISHED_CHANNEL``: the ids of the
    jobs it ended, the batches they belong to with how many jobs each has left unfinished (so a
    wait on a batch learns it has ended without reading anything, whatever its size), and the
    records of as many of them as ``NOTICE_RECORD_BYTES`` allowed (the record as
    :meth:`JobRecords.get` shows it: the listener need not read it again).

    On the wire: the ids, space-separated; a line break; ``<batch id>:<jobs left>``,
    space-separated; a line break; the records as a JSON object of id -> [field, value, ...]."""

    ids: list[str]
    raw_records: dict
    batches: dict[str, int] = dataclasses.field(default_factory=dict)

    @classmethod
    def parse(cls, data: bytes) -> FinishedNotice:
        """The notice in a pub/sub message's data (its ids alone when anything else is malformed)."""
        head, _, rest = data.partition(b"\n")
        batches, _, tail = rest.partition(b"\n")
        try:
            raw = orjson.loads(tail) if tail else {}
        except ValueError:
            raw = {}
        left = {}
        for item in batches.decode(errors="replace").split():
            batch_id, _, count = item.partition(":")
            if count.isdigit():
                left[batch_id] = int(count)
        return cls(head.decode().split(), raw if isinstance(raw, dict) else {}, left)

    def record(self, job_id: str) -> JobRecord | None:
        """The ended job's record, if the notice carried it."""
        fields = self.raw_records.get(job_id)
        if not isinstance(fields, list):
            return None
        return _decode({k.encode(): v.encode() for k, v in zip(fields[::2], fields[1::2], strict=True)})


class Started(NamedTuple):  # not a frozen dataclass: made for every job a worker takes, 5x the cost
    """A job as :meth:`JobRecords.start` found it: its status before (None when the record is
    gone), its client and lane, and whether this call took it. A job taken over from a worker
    that died is a ``suspect`` (read it alone); one taken over while it was being read alone is
    ``poison`` (its image is not handed over: end it). ``image`` is set for the jobs taken;
    ``version`` for jobs that asked for one model version (else the active one reads them);
    ``read`` says what to read in it (one of READ_MODES); ``created_at`` is when it was
    submitted and ``started_at`` when this call took it (epoch seconds); ``batch`` the request it
    came in (None: none); ``tensor`` names the input of a tensor job, whose ``image`` is then its
    whole tensor (jobs/tensors.py). An ``expired`` job was queued past its deadline: it was not
    taken and its image not read; the caller ends it."""

    job_id: str
    status: str | None
    client: str | None = None
    lane: str | None = None
    image: bytes | None = None
    taken: bool = False
    suspect: bool = False
    poison: bool = False
    version: int | None = None
    read: str = READ_MODES[0]
    created_at: float | None = None
    batch: str | None = None
    started_at: float | None = None
    tensor: str | None = None
    expired: bool = False


NO_LIMITS = PendingLimits()


@dataclass(frozen=True)
class FinishedLimits:
    """How many ended jobs' records are kept (0: no limit), in all and per client; beyond, the
    oldest are forgotten as new ones end (MAX_FINISHED_JOBS, MAX_FINISHED_PER_CLIENT)."""

    jobs: int = 0
    per_client: int = 0


# Records one finish forgets at most (the rest go with the next): a finish's cost stays bounded.
MOST_FORGOTTEN_AT_ONCE = 2000
# How often a process's finishes forget the finished index's entries older than a record's life
# (their records are gone): once in a while is enough, and spares every finish the command.
FINISHED_TRIM_EVERY_S = 10.0
# A process counts the finished indexes each time it has ended this share of the smaller limit.
FINISHED_COUNT_SHARE = 100


@dataclass(frozen=True)
class Created:
    """New jobs: their ids in order, and the lane (queue) they went to."""

    ids: list[str]
    lane: str


class OverLimit(Exception):
    """New jobs would go over a limit: ``limit`` is ``jobs``, ``bytes`` (per client) or ``total_bytes``."""

    def __init__(self, limit: str, outstanding: int, allowed: int):
        super().__init__(f"{limit}: {outstanding} outstanding, at most {allowed}")
        self.limit, self.outstanding, self.allowed = limit, outstanding, allowed


def new_job_ids(count: int) -> list[str]:
    """``count`` new job ids, each 128 random bits as 32 lowercase hex digits, from one system call
    (uuid4, a call an id, cost a 256-image request 0.5 ms)."""
    digits = os.urandom(16 * count).hex()
    return [digits[start : start + 32] for start in range(0, 32 * count, 32)]


def new_job_id() -> str:
    return new_job_ids(1)[0]


def is_job_id(value: object) -> bool:
    """True if ``value`` is an id this service issues (a string of 32 lowercase hex digits)."""
    return isinstance(value, str) and bool(_JOB_ID.match(value))


def error(code: str, message: str) -> ErrorDetail:
    return {"code": code, "message": message}


class JobRecords:
    """Reads and writes job records; every method costs one Redis round trip unless it says otherwise."""

    def __init__(
        self,
        client: redis.Redis,
        ttl_seconds: int = 86400,
        replica_ack: ReplicaAck | None = None,
        finished_limits: FinishedLimits = FinishedLimits(),
    ):
        """With ``replica_ack``, :meth:`create` returns only once a replica has the new records, when it
        says so (see jobs/replicas.py); without, it never waits (workers: they accept no work).
        ``finished_limits``: how many ended jobs :meth:`finish` keeps."""
        self.redis = client
        self.ttl = ttl_seconds
        self.replica_ack = replica_ack
        self.finished_limits = finished_limits
        self._trimmed_at = 0.0  # when this process's finish last trimmed the finished index
        # Jobs listed since this process last trimmed the recent index (its first create trims).
        self._listed_untrimmed = RECENT_TRIM_EVERY
        # The finished indexes are counted (and the oldest forgotten beyond the limits) once this
        # process has ended a hundredth of the smaller limit since it last counted: each limit is
        # passed by at most that much a process, and a finish of a few jobs is spared the counting.
        smaller = min(limit for limit in (finished_limits.jobs, finished_limits.per_client, 10**9) if limit)
        self._count_every = max(1, smaller // FINISHED_COUNT_SHARE)
        self._ended_uncounted = self._count_every  # ended since the last count (the first finish counts)
        self._forget = scripts.ForgetFinished(client)
        self._create = scripts.CreateJobs(client)
        self._start = scripts.StartJobs(client)
        self._unfinished = scripts.CountUnfinished(client)
        self._finish = scripts.FinishJobs(client)
        self._release = scripts.ReleaseJobs(client)

    def create(
        self,
        job_type: str,
        count: int = 1,
        fields: dict | None = None,
        batch_id: str | None = None,
        client: str | None = None,
        images: Sequence[bytes] | None = None,
        limits: PendingLimits = NO_LIMITS,
        lanes: Lanes | None = None,
        ids: Sequence[str] | None = None,
        images_per_job: int = 1,
        listed: bool = True,
        timeout_ms: int = 0,
    ) -> Created:
        """Write ``count`` new queued records of ``job_type`` and return their ids, in order
        (``ids`` if given, else new ones).

        With ``batch_id``, the ids are also kept, in order, as that batch (see :meth:`batch`).
        With ``client``, they count towards that client's pending jobs and bytes until they end.
        ``images`` (one per job) are stored beside the records until the jobs end, for the
        worker to read (and, for a job whose ``fields`` say ``keep_image``, for as long as the record).
        Raises :class:`OverLimit`, writing nothing, if the jobs would take the client (or everyone)
        over ``limits``; the check and the writes are one atomic step. With ``lanes`` the jobs
        are queued in the same step, in a lane that follows from how many jobs the client has
        pending (see :class:`Lanes`); without, the caller queues them. A job holding
        ``images_per_job`` images (a tensor job, jobs/tensors.py) counts as that many in the
        limits, the lanes and its client's pending jobs. Unless ``listed``, the jobs are not among
        the :meth:`recent` (a tensor job is nobody's to look at). With ``timeout_ms`` the jobs get
        a deadline that far ahead (jobs/deadlines.py): a worker that takes one later ends it expired.
        Raises :class:`~jobs.replicas.NotReplicated` when a replica should have acknowledged the
        new records and none did in time (they are written, on the primary only).
        """
        ids = list(ids) if ids is not None else new_job_ids(count)
        count = len(ids)
        shared = {"type": job_type, "status": QUEUED, "created_at": repr(time.time())}
        if client:
            shared["client"] = client
        if batch_id:
            shared["batch"] = batch_id  # the finish script counts the batch's jobs down
        for name, value in (fields or {}).items():
            shared[name] = value if isinstance(value, str) else orjson.dumps(value).decode()
        images = list(images or ())
        images += [b""] * (count - len(images))
        wait_ms = self.replica_ack.timeout_ms if self.replica_ack and self.replica_ack.wanted() else None
        if listed:
            self._listed_untrimmed += count
        trim_recent = listed and self._listed_untrimmed >= RECENT_TRIM_EVERY
        answer, acknowledged = self._create(
            ttl=self.ttl,
            recent_kept=RECENT_JOBS_KEPT if trim_recent else 0,
            fields=shared,
            job_ids=ids,
            images=images,
            limits=limits,
            lanes=lanes,
            images_per_job=images_per_job,
            listed=listed,
            timeout_ms=timeout_ms,
            replica_wait_ms=wait_ms,
        )
        if isinstance(answer, scripts.Refusal):
            if listed:
                self._listed_untrimmed -= count  # nothing was listed
            raise OverLimit(*answer)
        if trim_recent:
            self._listed_untrimmed = 0
        if acknowledged is not None:
            self.replica_ack.check(acknowledged)
        return Created(ids, answer)

    def pending(self, client: str) -> int:
        """How many of ``client``'s jobs have not ended yet."""
        return int(self.redis.get(keys.pending(client)) or 0)

    def pending_bytes(self, client: str) -> int:
        """How many image bytes ``client``'s unfinished jobs hold in Redis."""
        return int(self.redis.get(keys.pending_bytes(client)) or 0)

    def queued_bytes(self) -> int:
        """How many image bytes everyone's unfinished jobs hold in Redis."""
        return int(self.redis.get(keys.QUEUED_BYTES) or 0)

    def batch(self, batch_id: str) -> list[str] | None:
        """The job ids submitted together as ``batch_id``, in order; None if unknown or expired."""
        if not is_job_id(batch_id):
            return None
        ids = self.redis.lrange(keys.batch(batch_id), 0, -1)
        return [i.decode() for i in ids] or None

    def batch_exists(self, batch_id: str) -> bool:
        """Whether ``batch_id`` is a batch still kept (one key looked up, its ids not read)."""
        return is_job_id(batch_id) and bool(self.redis.exists(keys.batch(batch_id)))

    def batch_unfinished(self, batch_id: str) -> int:
        """How many of the batch's jobs have not ended (0 when all have, or it expired): one key read."""
        return int(self.redis.get(keys.batch_unfinished(batch_id)) or 0)

    def unfinished(self, job_ids: Sequence[str]) -> int:
        """How many of the jobs are still queued or running; one short answer however many jobs."""
        return self._unfinished(job_ids=job_ids) if job_ids else 0

    def get(self, job_id: str) -> JobRecord | None:
        """The job as the API shows it, or None if no such job exists (never issued or expired)."""
        if not is_job_id(job_id):
            return None
        return _decode(self.redis.hgetall(keys.job(job_id)))

    def get_many(self, job_ids: Sequence[str]) -> list[JobRecord | None]:
        """Each job's record, in order (None where there is none); one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hgetall(keys.job(job_id))
        return [_decode(raw) for raw in pipe.execute()]

    def recent(self, limit: int = 50) -> list[JobRecord]:
        """The newest jobs first (those still kept)."""
        ids = [i.decode() for i in self.redis.zrevrange(keys.RECENT_JOBS, 0, limit - 1)]
        return [job for job in self.get_many(ids) if job]

    def kept_image(self, job_id: str, client: str | None) -> bytes | None:
        """The image of a job that keeps it (form uploads, for their page) if ``client`` submitted
        the job (None: whoever did), else None."""
        if not is_job_id(job_id):
            return None
        pipe = self.redis.pipeline(transaction=False)
        pipe.hmget(keys.job(job_id), "keep_image", "client")
        pipe.get(keys.job_image(job_id))
        (keep, owner), image = pipe.execute()
        return image if keep == b"1" and _owned(owner, client) else None

    def keep_images(self, job_ids: Sequence[str], client: str | None) -> list[bool]:
        """For each job, whether its image is kept for its page and ``client`` (None: anyone) may see it."""
        pipe = self.redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hmget(keys.job(job_id), "keep_image", "client")
            pipe.exists(keys.job_image(job_id))
        answers = pipe.execute()
        return [
            keep == b"1" and _owned(owner, client) and bool(kept)
            for (keep, owner), kept in zip(answers[::2], answers[1::2], strict=True)
        ]

    def start(self, job_ids: Sequence[str], worker: str, silence_s: float = workers.SILENCE_S) -> list[Started]:
        """Mark jobs running as ``worker``'s and hand over their images; see :class:`Started`.

        Jobs queued are taken, and so are jobs running on a worker silent for ``silence_s``
        (it died: see :func:`jobs.workers.live`); a job running on a live worker is not.
        """
        if not job_ids:
            return []
        found = self._start(worker=worker, silence_s=silence_s, job_ids=job_ids)
        return [
            Started(
                job_id,
                job.status,
                job.client,
                job.lane,
                job.image,
                job.taken,
                job.suspect,
                job.poison,
                job.version,
                job.read or READ_MODES[0],
                job.created_at,
                job.batch,
                job.started_at,
                job.tensor,
                job.expired,
            )
            for job_id, job in zip(job_ids, found, strict=True)
        ]

    def release(self, job_ids: Sequence[str], worker: str) -> list[str]:
        """Give jobs ``worker`` took but did not finish back to their queue (status queued);
        return the ids to queue again: those released, and those that were never started."""
        if not job_ids:
            return []
        return self._release(worker=worker, job_ids=job_ids)

    def read_alone(self, job_id: str) -> None:
        """Note that the job is being read alone now: if its worker dies meanwhile, it is poison."""
        self.redis.hset(keys.job(job_id), "alone", "1")

    def trace_contexts(self, job_ids: Sequence[str]) -> dict[str, str]:
        """Each job's request trace context (jobs/tracing.py), for the jobs that carry one."""
        pipe = self.redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hget(keys.job(job_id), tracing.TRACE_FIELD)
        return {job_id: text.decode() for job_id, text in zip(job_ids, pipe.execute(), strict=True) if text}

    def lanes(self, job_ids: Sequence[str]) -> list[str | None]:
        """Each job's lane (the queue its messages go to)."""
        pipe = self.redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hget(keys.job(job_id), "lane")
        return [lane.decode() if lane else None for lane in pipe.execute()]

    def lane_entries(self, job_ids: Sequence[str]) -> list[tuple[str | None, str]]:
        """Each job's lane and its entry there (which counts the images a tensor job holds)."""
        pipe = self.redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hmget(keys.job(job_id), "lane", "images")
        return [
            (lane.decode() if lane else None, keys.lane_entry(job_id, int(images or 1)))
            for job_id, (lane, images) in zip(job_ids, pipe.execute(), strict=True)
        ]

    def running_on_dead_workers(self, silence_s: float, resend_every_s: float) -> list[str]:
        """Prediction jobs running on workers silent for ``silence_s`` whose message was not sent
        again in the last ``resend_every_s``; each is marked sent now (a few round trips). Times
        are Redis's (jobs/clock.py), as the heartbeats are."""
        now = clock.now(self.redis)
        running = [i.decode() for i in self.redis.zrangebyscore(keys.RUNNING_JOBS, "-inf", now - resend_every_s)]
        if not running:
            return []
        live = {name.decode() for name in self.redis.zrangebyscore(keys.WORKERS, now - silence_s, "+inf")}
        pipe = self.redis.pipeline(transaction=False)
        for job_id in running:
            pipe.hmget(keys.job(job_id), "status", "worker", "type")
        orphans = []
        for job_id, (status, worker, job_type) in zip(running, pipe.execute(), strict=True):
            if status != RUNNING.encode() or job_type != b"predict":
                # Ended (or expired) without its index; other kinds have their own ways to end.
                self.redis.zrem(keys.RUNNING_JOBS, job_id)
            elif (worker or b"").decode() not in live:
                orphans.append(job_id)
        if orphans:
            self.redis.zadd(keys.RUNNING_JOBS, dict.fromkeys(orphans, now))
        return orphans

    def finish(
        self,
        outcomes: Iterable[Outcome],
        batch_size: int | None = None,
        clients: Sequence[str | None] | None = None,
        created_at: Sequence[float | None] | None = None,
        batches: Sequence[str | None] | None = None,
        started_at: Sequence[float | None] | None = None,
        model_version: int | None = None,
    ) -> list[str]:
        """End the jobs that have not ended yet; return the ids this call ended.

        ``batch_size``, if given, is counted in the batch-size histogram (one model call of
        ``model_version``, if given). ``clients``, ``created_at`` and ``batches`` (one per
        outcome, as :meth:`start` told them) spare a round trip to look them up; a prediction's
        latency is counted from its ``created_at``. With ``started_at`` too (a worker's jobs),
        each job's wait in its lane and its service time are counted, and it counts in the
        statistics of the version that read it (``model_version`` for a job without a result).
        """
        outcomes = list(outcomes)
        if not outcomes:
            return []
        if clients is None or created_at is None or batches is None:  # what was given stands
            found = self._clients_and_creation([o.job_id for o in outcomes])
            clients, created_at, batches = (
                given if given is not None else looked_up
                for given, looked_up in zip((clients, created_at, batches), found, strict=True)
            )
        now = time.time()
        # The jobs of one request share their creation time: each bucket is looked up once.
        latencies = {
            at: scripts.Latency(bucket_of(now - at, LATENCY_BUCKETS), now - at)
            for at in set(created_at)
            if at is not None
        }
        started_at = started_at if started_at is not None else [None] * len(outcomes)
        finishing = []
        # The jobs of a batch share when they started and the batch's timings, and those of one
        # request when they were created: how each was served is worked out once per distinct case.
        served_as: dict[tuple, scripts.Served | None] = {}
        for outcome, client, created, batch, started in zip(
            outcomes, clients, created_at, batches, started_at, strict=True
        ):
            version, predictions = _counted_predictions(outcome)
            result = outcome.result or {}
            timings = result.get("timings") or {}
            case = (
                created,
                started,
                timings.get("preprocess_ms"),
                timings.get("predict_ms"),
                result.get("model_version"),
            )
            if case not in served_as:
                served_as[case] = served(outcome, created, started, now, model_version)
            finishing.append(
                scripts.Finishing(
                    outcome.job_id,
                    client,
                    batch,
                    outcome.status,
                    orjson.dumps(outcome.result) if outcome.result is not None else None,
                    orjson.dumps(outcome.error) if outcome.error is not None else None,
                    version,
                    latencies.get(created),  # None: when it was created is not known
                    predictions,
                    served_as[case],
                    outcome.error["code"] if outcome.error else "",
                )
            )
        bounded = bool(self.finished_limits.jobs or self.finished_limits.per_client)
        count = bounded and self._ended_uncounted + len(outcomes) >= self._count_every
        trim = now - self._trimmed_at >= FINISHED_TRIM_EVERY_S
        ended = self._finish(
            now=now,
            channel=keys.JOBS_FINISHED_CHANNEL,
            room=NOTICE_RECORD_BYTES,
            batch_bucket=bucket_of(batch_size, BATCH_BUCKETS) if batch_size else None,
            batch_images=batch_size or 0,
            jobs=finishing,
            ttl=self.ttl,
            batch_version="" if model_version is None else str(model_version),
            trim=trim,
            count=count,
        )
        if trim:
            self._trimmed_at = now
        self._ended_uncounted = 0 if count else self._ended_uncounted + len(ended.ids)
        if ended.ids and count:
            self._forget_over(ended.held or 0, ended.held_by_client or {})
        return ended.ids

    def expire(self, job_ids: Sequence[str], why: ErrorDetail) -> list[str]:
        """End the jobs that have not ended yet as expired: whoever wanted them has given up (a job
        not started yet is then never read); return the ids this call ended."""
        return self.finish(Outcome(job_id, EXPIRED, error=why) for job_id in job_ids)

    def forget_beyond_limits(self, clients: Iterable[str] = ()) -> int:
        """Forget the oldest ended jobs beyond :attr:`finished_limits`, in all and for each of
        ``clients``; how many records were deleted (at most MOST_FORGOTTEN_AT_ONCE a call)."""
        clients = sorted(clients)
        pipe = self.redis.pipeline(transaction=False)
        pipe.zcard(keys.FINISHED_JOBS)
        for client in clients:
            pipe.zcard(keys.finished_by_client(client))
        total, *per_client = pipe.execute()
        return self._forget_over(total, dict(zip(clients, per_client, strict=True)))

    def _forget_over(self, total: int, per_client: dict[str, int]) -> int:
        """Forget the oldest ended jobs beyond :attr:`finished_limits`, given how many the finished
        index holds in all (``total``) and for each client of ``per_client``; a round trip only when
        some index is over its limit."""
        limits = self.finished_limits
        sources = []
        if limits.per_client:
            sources += [(keys.finished_by_client(client), n - limits.per_client) for client, n in per_client.items()]
        if limits.jobs:
            sources.append((keys.FINISHED_JOBS, total - limits.jobs))
        sources = [(key, over) for key, over in sources if over > 0]
        if not sources:
            return 0
        pipe = self.redis.pipeline(transaction=False)
        for key, over in sources:
            pipe.zrange(key, 0, min(over, MOST_FORGOTTEN_AT_ONCE) - 1)
        victims = list(dict.fromkeys(i.decode() for ids in pipe.execute() for i in ids))[:MOST_FORGOTTEN_AT_ONCE]
        return self._forget_jobs(victims) if victims else 0

    def forget_finished(self) -> int:
        """Delete every ended job's record now (an admin's purge); how many were deleted."""
        deleted = 0
        while ids := [i.decode() for i in self.redis.zrange(keys.FINISHED_JOBS, 0, MOST_FORGOTTEN_AT_ONCE - 1)]:
            deleted += self._forget_jobs(ids)
        return deleted

    def _forget_jobs(self, job_ids: list[str]) -> int:
        pipe = self.redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hmget(keys.job(job_id), "client", "batch")
        owners = [(c.decode() if c else None, b.decode() if b else None) for c, b in pipe.execute()]
        return self._forget(jobs=[(job_id, *owner) for job_id, owner in zip(job_ids, owners, strict=True)])

    def _clients_and_creation(
        self, job_ids: Sequence[str]
    ) -> tuple[list[str | None], list[float | None], list[str | None]]:
        """Each job's client, creation time and batch."""
        pipe = self.redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hmget(keys.job(job_id), "client", "created_at", "batch")
        found = pipe.execute()
        clients = [client.decode() if client else None for client, _, _ in found]
        batches = [batch.decode() if batch else None for _, _, batch in found]
        return clients, [float(created) if created else None for _, created, _ in found], batches

    def queued_longer_than(self, seconds: float) -> list[str]:
        """Ids of the jobs not yet started that were (last) sent to a queue over ``seconds`` ago (by Redis's clock)."""
        moment = clock.now(self.redis) - seconds
        return [i.decode() for i in self.redis.zrangebyscore(keys.QUEUED_JOBS, "-inf", moment)]

    def mark_sent(self, job_id: str) -> None:
        """Note that the job's message was sent (again) now (by Redis's clock)."""
        self.redis.zadd(keys.QUEUED_JOBS, {job_id: clock.now(self.redis)})

    def forget_queued(self, job_id: str) -> None:
        """Stop tracking a job as queued (it ended or expired)."""
        self.redis.zrem(keys.QUEUED_JOBS, job_id)

    def beat(self, job_id: str) -> None:
        """A long job's sign of life (see :meth:`fail_silent_training`), by Redis's clock."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(keys.job(job_id), "heartbeat", repr(clock.now(self.redis)))
        pipe.sadd(keys.TRAINING_RUNNING, job_id)
        pipe.execute()

    def end_beats(self, job_id: str) -> None:
        self.redis.srem(keys.TRAINING_RUNNING, job_id)

    def fail_silent_training(self, silence_s: float) -> list[str]:
        """Fail the running training jobs whose worker has not beaten for ``silence_s`` seconds
        (killed, or its host gone); return their ids. Any worker may call this."""
        job_ids = [i.decode() for i in self.redis.smembers(keys.TRAINING_RUNNING)]
        pipe = self.redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hmget(keys.job(job_id), "status", "heartbeat", "worker")
        silent, gone = [], []
        now = clock.now(self.redis)  # the heartbeats are Redis's time too
        for job_id, (status, heartbeat, worker) in zip(job_ids, pipe.execute(), strict=True):
            if status != RUNNING.encode():
                gone.append(job_id)
            elif heartbeat is None or now - float(heartbeat) > silence_s:
                worker_name = worker.decode() if worker else "its worker"
                reason = f"{worker_name} stopped answering for over {silence_s:.0f} s (killed or lost)"
                silent.append(Outcome(job_id, FAILED, error=error("worker_lost", reason)))
        ended = self.finish(silent)  # their client (the training budget) is looked up, to be released
        if gone or silent:
            self.redis.srem(keys.TRAINING_RUNNING, *gone, *[o.job_id for o in silent])
        return ended

    def set_progress(self, job_id: str, progress: dict) -> None:
        self.redis.hset(keys.job(job_id), "progress", orjson.dumps(progress))

    def request_cancel(self, job_id: str) -> JobRecord | None:
        """Cancel a queued job at once; ask a running one to stop. Returns the record after."""
        status = self.redis.hget(keys.job(job_id), "status")
        if status == QUEUED.encode():
            self.finish([Outcome(job_id, CANCELLED, error=error("cancelled", "cancelled before it ran"))])
        elif status == RUNNING.encode():
            self.redis.hset(keys.job(job_id), "cancel_requested", "1")
        return self.get(job_id)

    def should_stop(self, job_id: str) -> bool:
        """True once a running job has been asked to stop, or has ended (or expired) meanwhile."""
        status, cancel = self.redis.hmget(keys.job(job_id), "status", "cancel_requested")
        return cancel == b"1" or status is None or status.decode() in TERMINAL


def served(
    outcome: Outcome, created: float | None, started: float | None, now: float, model_version: int | None
) -> scripts.Served | None:
    """How a job a worker started spent its time until ``now``, split as Triton's statistics
    are: queued (created to started), preprocessing, the model call, and the rest (recording).
    The batch's timings are each image's share of preprocessing and the whole model call, which
    every job of the batch waited for, as Triton counts a batched execution for each request."""
    if created is None or started is None:
        return None
    queue_ns = max(0, int((started - created) * 1e9))
    service_ns = max(0, int((now - started) * 1e9))
    timings = (outcome.result or {}).get("timings") or {}
    input_ns = min(service_ns, int(timings.get("preprocess_ms", 0) * 1e6))
    infer_ns = min(service_ns - input_ns, int(timings.get("predict_ms", 0) * 1e6))
    version = (outcome.result or {}).get("model_version")
    version = model_version if version is None else version
    return scripts.Served(
        bucket_of(queue_ns / 1e9, QUEUE_WAIT_BUCKETS),
        bucket_of(service_ns / 1e9, SERVICE_TIME_BUCKETS),
        "" if version is None else str(version),
        queue_ns,
        input_ns,
        infer_ns,
        service_ns - input_ns - infer_ns,
    )


def _owned(owner: bytes | None, client: str | None) -> bool:
    return client is None or (owner is not None and owner.decode() == client)


def _counted_predictions(outcome: Outcome) -> tuple[str, int]:
    """The model version a job's predictions count for in /metrics (corrections are counted against
    it), the one that read a digit in it ('' for anything else), and how many digits it read: one,
    or a tensor job's labelled images (jobs/tensors.py)."""
    result = outcome.result
    if not result or result.get("label") is None or result.get("model_version") is None:
        return "", 1
    labels = result["label"]
    return str(result["model_version"]), sum(label >= 0 for label in labels) if isinstance(labels, list) else 1


@functools.lru_cache(maxsize=4096)  # the jobs of a batch share their times: most are looked up
def _iso(epoch: bytes | None) -> str | None:
    if not epoch:
        return None
    return dt.datetime.fromtimestamp(float(epoch), dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _decode(raw: dict[bytes, bytes]) -> JobRecord | None:
    """The record as the API shows it (jobs/schemas.py) from its Redis hash; None for no record."""
    if not raw or b"status" not in raw:
        return None
    get = raw.get
    record: JobRecord = {
        "id": raw[b"id"].decode(),
        "type": raw[b"type"].decode(),
        "status": raw[b"status"].decode(),
        "created_at": _iso(get(b"created_at")),
        "started_at": _iso(get(b"started_at")),
        "finished_at": _iso(get(b"finished_at")),
        "result": None,
        "error": None,
    }
    if record["type"] == "predict":
        record["read"] = raw[b"read"].decode() if b"read" in raw else READ_MODES[0]
    for name, key in _JSON_FIELDS:
        if key in raw:
            record[name] = orjson.loads(raw[key])
    if b"worker" in raw:
        record["worker"] = raw[b"worker"].decode()
    if b"deadline" in raw:
        record["deadline"] = _iso(raw[b"deadline"])
    if b"cancel_requested" in raw and record["status"] == RUNNING:
        record["cancel_requested"] = True
    return record


_JSON_FIELDS = tuple((name, name.encode()) for name in ("result", "error", "progress", "params"))
