"""Job records: one Redis hash per job, written at submission and updated by the worker.

A record moves queued -> running -> succeeded | failed | cancelled. The first terminal status
wins (a redelivered job cannot be answered twice), and every finish is announced on
``keys.JOBS_FINISHED_CHANNEL`` so waiting pollers wake at once.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import redis

from jobs import keys

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = "queued", "running", "succeeded", "failed", "cancelled"
TERMINAL = frozenset({SUCCEEDED, FAILED, CANCELLED})
RECENT_JOBS_KEPT = 1000
JOB_ID_PATTERN = re.compile(r"^[0-9a-f]{32}$")

# Writes new queued records, and indexes them as queued, recent, the request's batch and its
# client's pending jobs, in one round trip.
# KEYS: the job keys, then the queued and recent indexes, the batch list and the client's pending
# counter ('' for none). ARGV: now, ttl, recent jobs kept, number of shared fields, then those
# fields' names and values, then per job: id, payload ('' for none).
_CREATE = """
local n = #KEYS - 4
local queued, recent, batch, pending = KEYS[n + 1], KEYS[n + 2], KEYS[n + 3], KEYS[n + 4]
local now, ttl = ARGV[1], tonumber(ARGV[2])
local shared = {}
for i = 5, 4 + 2 * tonumber(ARGV[4]) do shared[#shared + 1] = ARGV[i] end
local first = 5 + 2 * tonumber(ARGV[4])
for i = 1, n do
  local id, payload = ARGV[first + 2 * (i - 1)], ARGV[first + 2 * (i - 1) + 1]
  redis.call('HSET', KEYS[i], 'id', id, unpack(shared))
  redis.call('EXPIRE', KEYS[i], ttl)
  if payload ~= '' then redis.call('SET', KEYS[i] .. ':payload', payload, 'EX', ttl) end
  redis.call('ZADD', queued, now, id)
  redis.call('ZADD', recent, now, id)
  if batch ~= '' then redis.call('RPUSH', batch, id) end
end
redis.call('ZREMRANGEBYRANK', recent, 0, -tonumber(ARGV[3]) - 1)
if batch ~= '' then redis.call('EXPIRE', batch, ttl) end
if pending ~= '' then
  redis.call('INCRBY', pending, n)
  redis.call('EXPIRE', pending, ttl)
end
return n
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

# Marks the given jobs running unless they are missing or already ended; returns the prior statuses.
# KEYS: the job keys, then the queued-jobs index. ARGV: now, worker name, then the job ids.
_START = """
local n = #KEYS - 1
local statuses = {}
for i = 1, n do
  local status = redis.call('HGET', KEYS[i], 'status')
  statuses[i] = status or ''
  if status == 'queued' or status == 'running' then
    redis.call('HSET', KEYS[i], 'status', 'running', 'started_at', ARGV[1], 'worker', ARGV[2])
  end
  redis.call('ZREM', KEYS[n + 1], ARGV[2 + i])
end
return statuses
"""

# Ends each job that has not ended yet, counts it in the metrics, releases its client's pending
# slot, then announces the ones it ended.
# KEYS: the job keys, then the jobs-by-outcome, latency and batch-size metric hashes, and the
# queued-jobs index. ARGV: now, channel, pending-key prefix, latency bucket bounds
# (comma-separated), batch bucket (or ''), batch size, then per job: status, result JSON, error JSON, id.
_FINISH = """
local n = #KEYS - 4
local outcomes, latency, batches, queued = KEYS[n + 1], KEYS[n + 2], KEYS[n + 3], KEYS[n + 4]
local now = tonumber(ARGV[1])
local bounds = {}
for bound in string.gmatch(ARGV[4], '[^,]+') do bounds[#bounds + 1] = bound end
local finished = {}
for i = 1, n do
  local at = 6 + (i - 1) * 4
  local fields = redis.call('HMGET', KEYS[i], 'status', 'type', 'created_at', 'client')
  local status = fields[1]
  if status == 'queued' or status == 'running' then
    redis.call('HSET', KEYS[i], 'status', ARGV[at + 1], 'finished_at', ARGV[1])
    if ARGV[at + 2] ~= '' then redis.call('HSET', KEYS[i], 'result', ARGV[at + 2]) end
    if ARGV[at + 3] ~= '' then redis.call('HSET', KEYS[i], 'error', ARGV[at + 3]) end
    finished[#finished + 1] = ARGV[at + 4]
    redis.call('ZREM', queued, ARGV[at + 4])
    redis.call('DEL', KEYS[i] .. ':payload')
    redis.call('HINCRBY', outcomes, fields[2] .. ':' .. ARGV[at + 1], 1)
    if fields[2] == 'predict' and fields[3] then
      local seconds = now - tonumber(fields[3])
      local bucket = '+Inf'
      for _, bound in ipairs(bounds) do
        if seconds <= tonumber(bound) then bucket = bound break end
      end
      redis.call('HINCRBY', latency, bucket, 1)
      redis.call('HINCRBYFLOAT', latency, 'sum', seconds)
    end
    if fields[4] then
      if redis.call('DECR', ARGV[3] .. fields[4]) <= 0 then redis.call('DEL', ARGV[3] .. fields[4]) end
    end
  end
end
if ARGV[5] ~= '' then
  redis.call('HINCRBY', batches, ARGV[5], 1)
  redis.call('HINCRBY', batches, 'sum', ARGV[6])
end
if #finished > 0 then redis.call('PUBLISH', ARGV[2], table.concat(finished, ' ')) end
return finished
"""

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
    error: dict | None = None


def new_job_id() -> str:
    return uuid.uuid4().hex


def is_job_id(value: str) -> bool:
    """True if ``value`` has the shape of an id this service issues (32 lowercase hex digits)."""
    return bool(JOB_ID_PATTERN.match(value))


def error(code: str, message: str) -> dict:
    return {"code": code, "message": message}


class JobRecords:
    """Reads and writes job records; every method costs one Redis round trip."""

    def __init__(self, client: redis.Redis, ttl_seconds: int = 86400):
        self.redis = client
        self.ttl = ttl_seconds
        self._create = client.register_script(_CREATE)
        self._start = client.register_script(_START)
        self._unfinished = client.register_script(_UNFINISHED)
        self._finish = client.register_script(_FINISH)

    def create(
        self,
        job_type: str,
        count: int = 1,
        fields: dict | None = None,
        batch_id: str | None = None,
        client: str | None = None,
        payloads: Sequence[str] | None = None,
    ) -> list[str]:
        """Write ``count`` new queued records of ``job_type`` and return their ids, in order.

        With ``batch_id``, the ids are also kept, in order, as that batch (see :meth:`batch`).
        With ``client``, they count towards that client's pending jobs until they end.
        ``payloads`` (one per job: what its queue message carries) are kept until the job ends,
        so a job whose message was lost can be queued again (see jobs/recovery.py).
        """
        now = repr(time.time())
        ids = [new_job_id() for _ in range(count)]
        shared = {"type": job_type, "status": QUEUED, "created_at": now}
        if client:
            shared["client"] = client
        for name, value in (fields or {}).items():
            shared[name] = value if isinstance(value, str) else json.dumps(value)
        payloads = list(payloads or ())
        payloads += [""] * (count - len(payloads))
        args = [now, self.ttl, RECENT_JOBS_KEPT, len(shared), *(part for item in shared.items() for part in item)]
        for job_id, payload in zip(ids, payloads, strict=True):
            args += [job_id, payload]
        indexes = [keys.QUEUED_JOBS, keys.RECENT_JOBS, keys.batch(batch_id) if batch_id else ""]
        indexes.append(keys.pending(client) if client else "")
        self._create(keys=[keys.job(i) for i in ids] + indexes, args=args)
        return ids

    def pending(self, client: str) -> int:
        """How many of ``client``'s jobs have not ended yet."""
        return int(self.redis.get(keys.pending(client)) or 0)

    def batch(self, batch_id: str) -> list[str] | None:
        """The job ids submitted together as ``batch_id``, in order; None if unknown or expired."""
        if not is_job_id(batch_id):
            return None
        ids = self.redis.lrange(keys.batch(batch_id), 0, -1)
        return [i.decode() for i in ids] or None

    def unfinished(self, job_ids: Sequence[str]) -> int:
        """How many of the jobs are still queued or running; one short answer however many jobs."""
        return int(self._unfinished(keys=[keys.job(i) for i in job_ids])) if job_ids else 0

    def get(self, job_id: str) -> dict | None:
        """The job as the API shows it, or None if no such job exists (never issued or expired)."""
        if not is_job_id(job_id):
            return None
        return _decode(self.redis.hgetall(keys.job(job_id)))

    def get_many(self, job_ids: Sequence[str]) -> list[dict | None]:
        pipe = self.redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hgetall(keys.job(job_id))
        return [_decode(raw) for raw in pipe.execute()]

    def recent(self, limit: int = 50) -> list[dict]:
        """The newest jobs first (those still kept)."""
        ids = [i.decode() for i in self.redis.zrevrange(keys.RECENT_JOBS, 0, limit - 1)]
        return [job for job in self.get_many(ids) if job]

    def start(self, job_ids: Sequence[str], worker: str) -> list[str | None]:
        """Mark jobs running; return each one's status before (None if the record is gone)."""
        if not job_ids:
            return []
        statuses = self._start(
            keys=[keys.job(i) for i in job_ids] + [keys.QUEUED_JOBS], args=[repr(time.time()), worker, *job_ids]
        )
        return [s.decode() if s else None for s in statuses]

    def finish(self, outcomes: Iterable[Outcome], batch_size: int | None = None) -> list[str]:
        """End the jobs that have not ended yet; return the ids this call ended.

        ``batch_size``, if given, is counted in the batch-size histogram (one model call).
        """
        outcomes = list(outcomes)
        if not outcomes:
            return []
        args: list[str] = [
            repr(time.time()),
            keys.JOBS_FINISHED_CHANNEL,
            keys.pending(""),
            ",".join(LATENCY_BUCKETS),
            bucket_of(batch_size, BATCH_BUCKETS) if batch_size else "",
            str(batch_size or 0),
        ]
        for outcome in outcomes:
            args += [
                outcome.status,
                json.dumps(outcome.result, separators=(",", ":")) if outcome.result is not None else "",
                json.dumps(outcome.error) if outcome.error is not None else "",
                outcome.job_id,
            ]
        metrics = [keys.METRICS_OUTCOMES, keys.METRICS_LATENCY, keys.METRICS_BATCH_SIZE, keys.QUEUED_JOBS]
        ended = self._finish(keys=[keys.job(o.job_id) for o in outcomes] + metrics, args=args)
        return [i.decode() for i in ended]

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
        ended = self.finish(silent)
        if gone or silent:
            self.redis.srem(keys.TRAINING_RUNNING, *gone, *[o.job_id for o in silent])
        return ended

    def set_progress(self, job_id: str, progress: dict) -> None:
        self.redis.hset(keys.job(job_id), "progress", json.dumps(progress))

    def request_cancel(self, job_id: str) -> dict | None:
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


def _iso(epoch: bytes | None) -> str | None:
    if not epoch:
        return None
    return dt.datetime.fromtimestamp(float(epoch), dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _decode(raw: dict[bytes, bytes]) -> dict | None:
    if not raw or b"status" not in raw:
        return None
    fields = {k.decode(): v for k, v in raw.items()}
    record = {
        "id": fields["id"].decode(),
        "type": fields["type"].decode(),
        "status": fields["status"].decode(),
        "created_at": _iso(fields.get("created_at")),
        "started_at": _iso(fields.get("started_at")),
        "finished_at": _iso(fields.get("finished_at")),
        "result": None,
        "error": None,
    }
    for name in ("result", "error", "progress", "params"):
        if name in fields:
            record[name] = json.loads(fields[name])
    if "worker" in fields:
        record["worker"] = fields["worker"].decode()
    if "cancel_requested" in fields and record["status"] == RUNNING:
        record["cancel_requested"] = True
    return record
