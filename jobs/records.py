"""Job records: one Redis hash per job, written at submission and updated by the worker.

A record moves queued -> running -> succeeded | failed | cancelled. The first terminal status
wins (a redelivered job cannot be answered twice), and every finish is announced on
``keys.JOBS_FINISHED_CHANNEL`` so waiting pollers wake at once. A prediction's image is stored
once, beside its record, until the job ends; queue messages carry only job ids.

The scripts below touch only the keys they are given in ``KEYS`` (all named in jobs/keys.py).
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import orjson
import redis

from jobs import keys, workers

# The statuses and shapes of records are defined in jobs/schemas.py, once; named here too for the
# callers of this module.
from jobs.schemas import CANCELLED as CANCELLED
from jobs.schemas import FAILED as FAILED
from jobs.schemas import JOB_ID_PATTERN, JobRecord
from jobs.schemas import QUEUED as QUEUED
from jobs.schemas import READ_MODES as READ_MODES
from jobs.schemas import RUNNING as RUNNING
from jobs.schemas import SUCCEEDED as SUCCEEDED
from jobs.schemas import TERMINAL as TERMINAL
from model.results import ErrorDetail

RECENT_JOBS_KEPT = 1000
_JOB_ID = re.compile(JOB_ID_PATTERN)

# Checks a client's outstanding work against the limits, then writes new queued records (and
# their images), indexes them as queued, recent, the request's batch and the client's pending
# jobs and bytes, and, for predictions, puts their ids in a lane, all in one step: concurrent
# submissions cannot overshoot a limit, and no prediction is recorded without its place in a lane.
# KEYS: per job its record and image keys, then the queued and recent indexes, the batch list, the
# client's pending-jobs and pending-bytes counters, the total of queued bytes, and the fast and
# bulk lanes' lists. ARGV: a JSON header {now, ttl, recent_kept, batch, client, limits: {jobs,
# bytes, total_bytes} (0: none), lanes: [fast lane, bulk lane, most jobs pending for the fast lane]
# or false (not queued here), fields}, then per job: id, image bytes ('' for none).
# Returns {'ok', the lane (or '')} or {the limit's name, what is outstanding now, the limit}.
_CREATE = """
local CHUNK = 1000
local n = (#KEYS - 8) / 2
local queued, recent, batch = KEYS[2 * n + 1], KEYS[2 * n + 2], KEYS[2 * n + 3]
local pending, pending_bytes, total_bytes = KEYS[2 * n + 4], KEYS[2 * n + 5], KEYS[2 * n + 6]
local head = cjson.decode(ARGV[1])
local limits = head.limits
local size = 0
for i = 1, n do size = size + #ARGV[2 * i + 1] end
if head.client then
  local jobs_now = tonumber(redis.call('GET', pending) or '0')
  if limits.jobs > 0 and jobs_now + n > limits.jobs then return {'jobs', jobs_now, limits.jobs} end
  local bytes_now = tonumber(redis.call('GET', pending_bytes) or '0')
  if limits.bytes > 0 and size > 0 and bytes_now + size > limits.bytes then
    return {'bytes', bytes_now, limits.bytes}
  end
end
local total_now = tonumber(redis.call('GET', total_bytes) or '0')
if limits.total_bytes > 0 and size > 0 and total_now + size > limits.total_bytes then
  return {'total_bytes', total_now, limits.total_bytes}
end
-- A client with little outstanding goes in the fast lane; one with a backlog, in the bulk lane.
local lane, lane_key = '', false
if head.lanes then
  lane, lane_key = head.lanes[1], KEYS[2 * n + 7]
  if head.client and tonumber(redis.call('GET', pending) or '0') + n > head.lanes[3] then
    lane, lane_key = head.lanes[2], KEYS[2 * n + 8]
  end
end
local shared = {}
if lane_key then shared = {'lane', lane} end
for name, value in pairs(head.fields) do
  shared[#shared + 1] = name
  shared[#shared + 1] = value
end
for i = 1, n do
  local id, image = ARGV[2 * i], ARGV[2 * i + 1]
  redis.call('HSET', KEYS[2 * i - 1], 'id', id, 'bytes', #image, unpack(shared))
  redis.call('EXPIRE', KEYS[2 * i - 1], head.ttl)
  if image ~= '' then redis.call('SET', KEYS[2 * i], image, 'EX', head.ttl) end
end
-- The indexes and lists take the request's ids in a few commands, a chunk at a time (unpack's limit).
for first = 1, n, CHUNK do
  local last = math.min(first + CHUNK - 1, n)
  local ids, scored = {}, {}
  for i = first, last do
    ids[#ids + 1] = ARGV[2 * i]
    scored[#scored + 1] = head.now
    scored[#scored + 1] = ARGV[2 * i]
  end
  redis.call('ZADD', queued, unpack(scored))
  redis.call('ZADD', recent, unpack(scored))
  if head.batch then redis.call('RPUSH', batch, unpack(ids)) end
  if lane_key then redis.call('RPUSH', lane_key, unpack(ids)) end
end
redis.call('ZREMRANGEBYRANK', recent, 0, -head.recent_kept - 1)
if head.batch then redis.call('EXPIRE', batch, head.ttl) end
if head.client then
  redis.call('INCRBY', pending, n)
  redis.call('EXPIRE', pending, head.ttl)
  redis.call('INCRBY', pending_bytes, size)
  redis.call('EXPIRE', pending_bytes, head.ttl)
end
redis.call('INCRBY', total_bytes, size)
redis.call('EXPIRE', total_bytes, head.ttl)
return {'ok', lane}
"""

# How many of the given jobs have not ended (a missing record has ended: it expired). KEYS: the job keys.
_UNFINISHED = """
local n = 0
for i = 1, #KEYS do
  local status = redis.call('HGET', KEYS[i], 'status')
  if status == 'queued' or status == 'running' then n = n + 1 end
end
return n
"""

# Marks the given jobs running and hands over their images: jobs queued, and jobs running on a
# worker that has gone silent (its heartbeat is older than the silence given). A job running on a
# live worker is left to it; a job taken over from a dead worker is a suspect (it may have killed
# it), and one taken over after it was being read alone is poison: it is not handed over again.
# Returns, per job: its prior status, client, lane, image (if handed over), suspect and poison flags.
# KEYS: per job its record and image keys, then the queued and running indexes and the worker
# registry. ARGV: now, worker name, silence (s), then the job ids.
_START = """
local n = (#KEYS - 3) / 2
local queued, running, workers = KEYS[2 * n + 1], KEYS[2 * n + 2], KEYS[2 * n + 3]
local now, me, silence = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local answers, taken = {}, {}
for i = 1, n do
  local record, id = KEYS[2 * i - 1], ARGV[3 + i]
  local fields = redis.call('HMGET', record, 'status', 'client', 'worker', 'alone', 'lane', 'version', 'read')
  local status = fields[1]
  local take, suspect, poison, image = status == 'queued', false, false, false
  if status == 'running' then
    local beat = redis.call('ZSCORE', workers, fields[3] or '')
    if not beat or tonumber(beat) < now - silence then
      take, suspect, poison = true, true, fields[4] == '1'
    end
  end
  if take then
    redis.call('HSET', record, 'status', 'running', 'started_at', ARGV[1], 'worker', me)
    redis.call('HINCRBY', record, 'deliveries', 1)
    if fields[4] then redis.call('HDEL', record, 'alone') end
    taken[#taken + 1] = id
    if not poison then image = redis.call('GET', KEYS[2 * i]) end
  end
  answers[i] = {status or '', fields[2] or '', fields[5] or '', image, take and 1 or 0, suspect and 1 or 0,
                poison and 1 or 0, fields[6] or '', fields[7] or ''}
end
-- The indexes move the taken ids in a few commands, a chunk at a time (unpack's limit).
for first = 1, #taken, 1000 do
  local ids, scored = {}, {}
  for j = first, math.min(first + 999, #taken) do
    ids[#ids + 1] = taken[j]
    scored[#scored + 1] = now
    scored[#scored + 1] = taken[j]
  end
  redis.call('ZREM', queued, unpack(ids))
  redis.call('ZADD', running, unpack(scored))
end
return answers
"""

# Hands jobs this worker took but did not finish back to the queue (status queued again); returns
# the ids to queue again: those it released, and those still queued (taken from their lane, never
# started). KEYS: the job keys, then the queued and running indexes. ARGV: now, worker name, ids.
_RELEASE = """
local n = #KEYS - 2
local queued, running = KEYS[n + 1], KEYS[n + 2]
local released = {}
for i = 1, n do
  local status, worker = unpack(redis.call('HMGET', KEYS[i], 'status', 'worker'))
  if status == 'running' and worker == ARGV[2] then
    redis.call('HSET', KEYS[i], 'status', 'queued')
    redis.call('ZREM', running, ARGV[2 + i])
  end
  if status == 'queued' or (status == 'running' and worker == ARGV[2]) then
    redis.call('ZADD', queued, ARGV[1], ARGV[2 + i])
    released[#released + 1] = ARGV[2 + i]
  end
end
return released
"""

# Ends each job that has not ended yet, counts it in the metrics (and, where a model version read
# a digit in it, that version's predictions), drops its image (unless the job keeps it), releases
# its client's pending job and bytes and the queued bytes, then announces the ones it ended, with
# their records as far as NOTICE_RECORD_BYTES allows (see FinishedNotice).
# KEYS: per job its record and image keys and its client's pending-jobs and pending-bytes
# counters, then the jobs-by-outcome, latency and batch-size metric hashes, the queued-jobs index,
# the total of queued bytes, the running-jobs index and the predictions-by-version hash. ARGV: now,
# channel, latency bucket bounds (comma-separated), batch bucket (or ''), batch size, the most
# record bytes the notice may carry, then per job: status, result JSON, error JSON, id, the model
# version to count it for (or '').
_FINISH = """
local n = (#KEYS - 7) / 4
local outcomes, latency, batches, queued = KEYS[4 * n + 1], KEYS[4 * n + 2], KEYS[4 * n + 3], KEYS[4 * n + 4]
local total_bytes, running, predictions = KEYS[4 * n + 5], KEYS[4 * n + 6], KEYS[4 * n + 7]
local now = tonumber(ARGV[1])
local bounds = {}
for bound in string.gmatch(ARGV[3], '[^,]+') do bounds[#bounds + 1] = {bound, tonumber(bound)} end
local finished, records, room = {}, {}, tonumber(ARGV[6])
-- Counts are summed over the batch and written once each, after the loop.
local by_outcome, by_version, by_bucket, seconds_sum, released, freed = {}, {}, {}, 0, {}, 0
local function add(counts, key, amount) counts[key] = (counts[key] or 0) + amount end
for i = 1, n do
  local record, image, pending, pending_bytes = KEYS[4 * i - 3], KEYS[4 * i - 2], KEYS[4 * i - 1], KEYS[4 * i]
  local at = 6 + (i - 1) * 5
  local fields = redis.call('HMGET', record, 'status', 'type', 'created_at', 'client', 'keep_image', 'bytes')
  local status = fields[1]
  if status == 'queued' or status == 'running' then
    local update = {'status', ARGV[at + 1], 'finished_at', ARGV[1]}
    if ARGV[at + 2] ~= '' then update[#update + 1] = 'result'; update[#update + 1] = ARGV[at + 2] end
    if ARGV[at + 3] ~= '' then update[#update + 1] = 'error'; update[#update + 1] = ARGV[at + 3] end
    redis.call('HSET', record, unpack(update))
    finished[#finished + 1] = ARGV[at + 4]
    redis.call('ZREM', queued, ARGV[at + 4])
    redis.call('ZREM', running, ARGV[at + 4])
    if fields[5] ~= '1' then redis.call('DEL', image) end
    add(by_outcome, fields[2] .. ':' .. ARGV[at + 1], 1)
    if ARGV[at + 5] ~= '' then add(by_version, ARGV[at + 5], 1) end
    if fields[2] == 'predict' and fields[3] then
      local seconds = now - tonumber(fields[3])
      local bucket = '+Inf'
      for _, bound in ipairs(bounds) do
        if seconds <= bound[2] then bucket = bound[1] break end
      end
      add(by_bucket, bucket, 1)
      seconds_sum = seconds_sum + seconds
    end
    local size = tonumber(fields[6] or '0')
    if fields[4] then
      add(released, pending, 1)
      add(released, pending_bytes, size)
    end
    freed = freed + size
    if room > 0 then
      local now_fields = redis.call('HGETALL', record)
      local bytes = 0
      for _, value in ipairs(now_fields) do bytes = bytes + #value end
      if bytes <= room then
        records[ARGV[at + 4]] = now_fields
        room = room - bytes
      else
        room = 0  -- full: the rest are named by id, and not read for nothing
      end
    end
  end
end
for key, count in pairs(by_outcome) do redis.call('HINCRBY', outcomes, key, count) end
for key, count in pairs(by_version) do redis.call('HINCRBY', predictions, key, count) end
for key, count in pairs(by_bucket) do redis.call('HINCRBY', latency, key, count) end
if next(by_bucket) then redis.call('HINCRBYFLOAT', latency, 'sum', seconds_sum) end
for key, amount in pairs(released) do
  if redis.call('DECRBY', key, amount) <= 0 then redis.call('DEL', key) end
end
if freed > 0 and redis.call('DECRBY', total_bytes, freed) <= 0 then redis.call('DEL', total_bytes) end
if ARGV[4] ~= '' then
  redis.call('HINCRBY', batches, ARGV[4], 1)
  redis.call('HINCRBY', batches, 'sum', ARGV[5])
end
if #finished > 0 then
  redis.call('PUBLISH', ARGV[2], table.concat(finished, ' ') .. '\\n' .. cjson.encode(records))
end
return finished
"""

# Record bytes one finished notice carries at most: enough for a request of a few images, so a
# request waiting for them is answered without reading them again; a big batch's notice names
# the rest by id only, so no web process must parse megabytes it has no use for.
NOTICE_RECORD_BYTES = 64 * 1024

# Histogram bounds: seconds from submission to result, and images per model call.
LATENCY_BUCKETS = ("0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "30")
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


def bucket_of(value: float, bounds: Sequence) -> str:
    """The histogram bucket (its upper bound, as text) that ``value`` falls in."""
    return next((str(bound) for bound in bounds if value <= float(bound)), "+Inf")


@dataclass(frozen=True)
class Outcome:
    """How one job ended: ``result`` for succeeded, ``error`` ({code, message}) otherwise."""

    job_id: str
    status: str
    result: dict | None = None
    error: ErrorDetail | None = None


@dataclass(frozen=True)
class FinishedNotice:
    """What :meth:`JobRecords.finish` announces on ``keys.JOBS_FINISHED_CHANNEL``: the ids of the
    jobs it ended, and the records of as many of them as ``NOTICE_RECORD_BYTES`` allowed (the
    record as :meth:`JobRecords.get` shows it: the listener need not read it again)."""

    ids: list[str]
    raw_records: dict

    @classmethod
    def parse(cls, data: bytes) -> FinishedNotice:
        """The notice in a pub/sub message's data (its ids alone when anything else is malformed)."""
        head, _, tail = data.partition(b"\n")
        try:
            raw = orjson.loads(tail) if tail else {}
        except ValueError:
            raw = {}
        return cls(head.decode().split(), raw if isinstance(raw, dict) else {})

    def record(self, job_id: str) -> JobRecord | None:
        """The ended job's record, if the notice carried it."""
        fields = self.raw_records.get(job_id)
        if not isinstance(fields, list):
            return None
        return _decode({k.encode(): v.encode() for k, v in zip(fields[::2], fields[1::2], strict=True)})


@dataclass(frozen=True)
class Started:
    """A job as :meth:`JobRecords.start` found it: its status before (None when the record is
    gone), its client and lane, and whether this call took it. A job taken over from a worker
    that died is a ``suspect`` (read it alone); one taken over while it was being read alone is
    ``poison`` (its image is not handed over: end it). ``image`` is set for the jobs taken;
    ``version`` for jobs that asked for one model version (else the active one reads them);
    ``read`` says what to read in it (one of READ_MODES)."""

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


@dataclass(frozen=True)
class Limits:
    """How much unfinished work :meth:`JobRecords.create` admits (0: no limit): jobs and image
    bytes per client, and image bytes of everyone together."""

    jobs: int = 0
    bytes: int = 0
    total_bytes: int = 0


NO_LIMITS = Limits()


@dataclass(frozen=True)
class Lanes:
    """Where new jobs queue: ``fast`` while their client has at most ``fast_pending`` jobs pending
    (these included), ``bulk`` beyond. Workers serve the fast lane first."""

    fast: str
    bulk: str | None = None
    fast_pending: int = 0

    def __post_init__(self) -> None:
        if self.bulk is None:
            object.__setattr__(self, "bulk", self.fast)


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


def new_job_id() -> str:
    return uuid.uuid4().hex


def is_job_id(value: object) -> bool:
    """True if ``value`` is an id this service issues (a string of 32 lowercase hex digits)."""
    return isinstance(value, str) and bool(_JOB_ID.match(value))


def error(code: str, message: str) -> ErrorDetail:
    return {"code": code, "message": message}


class JobRecords:
    """Reads and writes job records; every method costs one Redis round trip unless it says otherwise."""

    def __init__(self, client: redis.Redis, ttl_seconds: int = 86400):
        self.redis = client
        self.ttl = ttl_seconds
        self._create = client.register_script(_CREATE)
        self._start = client.register_script(_START)
        self._unfinished = client.register_script(_UNFINISHED)
        self._finish = client.register_script(_FINISH)
        self._release = client.register_script(_RELEASE)

    def create(
        self,
        job_type: str,
        count: int = 1,
        fields: dict | None = None,
        batch_id: str | None = None,
        client: str | None = None,
        images: Sequence[bytes] | None = None,
        limits: Limits = NO_LIMITS,
        lanes: Lanes | None = None,
        ids: Sequence[str] | None = None,
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
        pending (see :class:`Lanes`); without, the caller queues them.
        """
        now = time.time()
        ids = list(ids) if ids is not None else [new_job_id() for _ in range(count)]
        count = len(ids)
        shared = {"type": job_type, "status": QUEUED, "created_at": repr(now)}
        if client:
            shared["client"] = client
        for name, value in (fields or {}).items():
            shared[name] = value if isinstance(value, str) else orjson.dumps(value).decode()
        head = {
            "now": now,
            "ttl": self.ttl,
            "recent_kept": RECENT_JOBS_KEPT,
            "batch": bool(batch_id),
            "client": bool(client),
            "limits": {"jobs": limits.jobs, "bytes": limits.bytes, "total_bytes": limits.total_bytes},
            "lanes": [lanes.fast, lanes.bulk, lanes.fast_pending] if lanes else False,
            "fields": shared,
        }
        images = list(images or ())
        images += [b""] * (count - len(images))
        args: list = [orjson.dumps(head)]
        job_keys = []
        for job_id, image in zip(ids, images, strict=True):
            args += [job_id, image]
            job_keys += [keys.job(job_id), keys.job_image(job_id)]
        counters = [keys.pending(client or ""), keys.pending_bytes(client or ""), keys.QUEUED_BYTES]
        indexes = [keys.QUEUED_JOBS, keys.RECENT_JOBS, keys.batch(batch_id or ""), *counters]
        indexes += [keys.lane(lanes.fast), keys.lane(lanes.bulk)] if lanes else ["", ""]
        answer = self._create(keys=job_keys + indexes, args=args)
        if answer[0] != b"ok":
            raise OverLimit(answer[0].decode(), int(answer[1]), int(answer[2]))
        return Created(ids, answer[1].decode())

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

    def unfinished(self, job_ids: Sequence[str]) -> int:
        """How many of the jobs are still queued or running; one short answer however many jobs."""
        return int(self._unfinished(keys=[keys.job(i) for i in job_ids])) if job_ids else 0

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

    def kept_image(self, job_id: str) -> bytes | None:
        """The image of a job that keeps it (form uploads, for their page), else None."""
        if not is_job_id(job_id):
            return None
        pipe = self.redis.pipeline(transaction=False)
        pipe.hget(keys.job(job_id), "keep_image")
        pipe.get(keys.job_image(job_id))
        keep, image = pipe.execute()
        return image if keep == b"1" else None

    def keep_images(self, job_ids: Sequence[str]) -> list[bool]:
        """For each job, whether its image is kept for its page."""
        pipe = self.redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hget(keys.job(job_id), "keep_image")
            pipe.exists(keys.job_image(job_id))
        answers = pipe.execute()
        return [keep == b"1" and bool(kept) for keep, kept in zip(answers[::2], answers[1::2], strict=True)]

    def start(self, job_ids: Sequence[str], worker: str, silence_s: float = workers.SILENCE_S) -> list[Started]:
        """Mark jobs running as ``worker``'s and hand over their images; see :class:`Started`.

        Jobs queued are taken, and so are jobs running on a worker silent for ``silence_s``
        (it died: see :func:`jobs.workers.live`); a job running on a live worker is not.
        """
        if not job_ids:
            return []
        job_keys = [key for job_id in job_ids for key in (keys.job(job_id), keys.job_image(job_id))]
        job_keys += [keys.QUEUED_JOBS, keys.RUNNING_JOBS, keys.WORKERS]
        answers = self._start(keys=job_keys, args=[repr(time.time()), worker, silence_s, *job_ids])
        return [
            Started(
                job_id,
                status.decode() or None,
                client.decode() or None,
                lane.decode() or None,
                image or None,
                bool(taken),
                bool(suspect),
                bool(poison),
                int(version) if version else None,
                read.decode() or READ_MODES[0],
            )
            for job_id, (status, client, lane, image, taken, suspect, poison, version, read) in zip(
                job_ids, answers, strict=True
            )
        ]

    def release(self, job_ids: Sequence[str], worker: str) -> list[str]:
        """Give jobs ``worker`` took but did not finish back to their queue (status queued);
        return the ids to queue again: those released, and those that were never started."""
        if not job_ids:
            return []
        job_keys = [keys.job(job_id) for job_id in job_ids] + [keys.QUEUED_JOBS, keys.RUNNING_JOBS]
        return [i.decode() for i in self._release(keys=job_keys, args=[repr(time.time()), worker, *job_ids])]

    def read_alone(self, job_id: str) -> None:
        """Note that the job is being read alone now: if its worker dies meanwhile, it is poison."""
        self.redis.hset(keys.job(job_id), "alone", "1")

    def lanes(self, job_ids: Sequence[str]) -> list[str | None]:
        """Each job's lane (the queue its messages go to)."""
        pipe = self.redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hget(keys.job(job_id), "lane")
        return [lane.decode() if lane else None for lane in pipe.execute()]

    def running_on_dead_workers(self, silence_s: float, resend_every_s: float) -> list[str]:
        """Prediction jobs running on workers silent for ``silence_s`` whose message was not sent
        again in the last ``resend_every_s``; each is marked sent now (a few round trips)."""
        now = time.time()
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
        self, outcomes: Iterable[Outcome], batch_size: int | None = None, clients: Sequence[str | None] | None = None
    ) -> list[str]:
        """End the jobs that have not ended yet; return the ids this call ended.

        ``batch_size``, if given, is counted in the batch-size histogram (one model call).
        ``clients`` (one per outcome, as :meth:`start` told them) spares a round trip to look them up.
        """
        outcomes = list(outcomes)
        if not outcomes:
            return []
        if clients is None:
            clients = self._clients([o.job_id for o in outcomes])
        args: list[str] = [
            repr(time.time()),
            keys.JOBS_FINISHED_CHANNEL,
            ",".join(LATENCY_BUCKETS),
            bucket_of(batch_size, BATCH_BUCKETS) if batch_size else "",
            str(batch_size or 0),
            str(NOTICE_RECORD_BYTES),
        ]
        job_keys = []
        for outcome, client in zip(outcomes, clients, strict=True):
            args += [
                outcome.status,
                orjson.dumps(outcome.result) if outcome.result is not None else "",
                orjson.dumps(outcome.error) if outcome.error is not None else "",
                outcome.job_id,
                _counted_version(outcome),
            ]
            job_keys += [keys.job(outcome.job_id), keys.job_image(outcome.job_id)]
            job_keys += [keys.pending(client or ""), keys.pending_bytes(client or "")]
        metrics = [keys.METRICS_OUTCOMES, keys.METRICS_LATENCY, keys.METRICS_BATCH_SIZE, keys.QUEUED_JOBS]
        metrics += [keys.QUEUED_BYTES, keys.RUNNING_JOBS, keys.METRICS_PREDICTIONS]
        ended = self._finish(keys=job_keys + metrics, args=args)
        return [i.decode() for i in ended]

    def _clients(self, job_ids: Sequence[str]) -> list[str | None]:
        pipe = self.redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hget(keys.job(job_id), "client")
        return [client.decode() if client else None for client in pipe.execute()]

    def queued_before(self, moment: float) -> list[str]:
        """Ids of the jobs not yet started that were (last) sent to a queue before ``moment`` (epoch seconds)."""
        return [i.decode() for i in self.redis.zrangebyscore(keys.QUEUED_JOBS, "-inf", moment)]

    def mark_sent(self, job_id: str) -> None:
        """Note that the job's message was sent (again) now."""
        self.redis.zadd(keys.QUEUED_JOBS, {job_id: time.time()})

    def forget_queued(self, job_id: str) -> None:
        """Stop tracking a job as queued (it ended or expired)."""
        self.redis.zrem(keys.QUEUED_JOBS, job_id)

    def beat(self, job_id: str) -> None:
        """A long job's sign of life (see :meth:`fail_silent_training`)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(keys.job(job_id), "heartbeat", repr(time.time()))
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
        now = time.time()
        for job_id, (status, heartbeat, worker) in zip(job_ids, pipe.execute(), strict=True):
            if status != RUNNING.encode():
                gone.append(job_id)
            elif heartbeat is None or now - float(heartbeat) > silence_s:
                worker_name = worker.decode() if worker else "its worker"
                reason = f"{worker_name} stopped answering for over {silence_s:.0f} s (killed or lost)"
                silent.append(Outcome(job_id, FAILED, error=error("worker_lost", reason)))
        ended = self.finish(silent, clients=[None] * len(silent))
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


def _counted_version(outcome: Outcome) -> str:
    """The model version a prediction counts for in /metrics (corrections are counted against
    it): the one that read a digit in it; '' for anything else."""
    result = outcome.result
    if not result or result.get("label") is None or result.get("model_version") is None:
        return ""
    return str(result["model_version"])


@functools.lru_cache(maxsize=4096)  # the jobs of a batch share their times: most are looked up
def _iso(epoch: bytes | None) -> str | None:
    if not epoch:
        return None
    return dt.datetime.fromtimestamp(float(epoch), dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _decode(raw: dict[bytes, bytes]) -> JobRecord | None:
    """The record as the API shows it (jobs/schemas.py) from its Redis hash; None for no record."""
    if not raw or b"status" not in raw:
        return None
    fields = {k.decode(): v for k, v in raw.items()}
    record: JobRecord = {
        "id": fields["id"].decode(),
        "type": fields["type"].decode(),
        "status": fields["status"].decode(),
        "created_at": _iso(fields.get("created_at")),
        "started_at": _iso(fields.get("started_at")),
        "finished_at": _iso(fields.get("finished_at")),
        "result": None,
        "error": None,
    }
    if record["type"] == "predict":
        record["read"] = fields["read"].decode() if "read" in fields else READ_MODES[0]
    for name in ("result", "error", "progress", "params"):
        if name in fields:
            record[name] = orjson.loads(fields[name])
    if "worker" in fields:
        record["worker"] = fields["worker"].decode()
    if "cancel_requested" in fields and record["status"] == RUNNING:
        record["cancel_requested"] = True
    return record
