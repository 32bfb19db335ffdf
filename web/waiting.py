"""Long polling: hold a request until its job ends, woken by the workers' "finished" notices.

One pub/sub listener per web process (started on first use, so after any fork) wakes the
requests waiting on the ids each notice names, and hands them the records the notice carries
(jobs/records.py, FinishedNotice), so a request for a few images reads nothing once they have
ended. Pub/sub loses messages only while the listener is not subscribed: each time it subscribes
(again) it wakes every wait to read once, and a wait on one job otherwise re-reads its record
only every ``JOB_RECHECK_S`` (a notice is never expected to go missing while connected). Under
gunicorn's gevent worker the "threads" here are greenlets: a waiting request costs a greenlet and
its socket.

A wait on a whole batch costs the same however big the batch: everyone in the process waiting on
one batch shares a :class:`BatchWatch`. Each notice says how many jobs each batch it names has
left (one dict lookup per batch, not per job and waiter, and nothing read from Redis); the waiters
are woken when none is left, and otherwise once a second, when one of them reads the batch's one
counter (keys.batch_unfinished) for all, in case a notice was lost.

Waiting is bounded, so it can never use up a process's memory or sockets: at most
``max_waits`` requests wait at once in a process, and at most ``max_waits_per_client`` from one
client address. A request beyond either bound is answered at once with what there is now (the
record as it stands, as if it had asked without ``?wait=``). So is every request waiting when the
process drains (web/draining.py: :meth:`JobWaiter.close`), and every one that asks afterwards.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

import redis

from jobs import keys
from jobs.records import FinishedNotice
from jobs.schemas import JobRecord, has_ended

log = logging.getLogger(__name__)

RECHECK_S = 1.0
FOLLOWER_RECHECK_S = 5.0
JOB_RECHECK_S = 5.0
T = TypeVar("T")
_UNREAD = object()


@dataclass(frozen=True, eq=False)
class Watch:
    """Set whenever one of the watched jobs ends (see :meth:`JobWaiter.watching`); ``announced``
    holds the ids the finished notices named, ``delivered`` the records they carried, by job id;
    ``closed`` is set (and ``event`` with it) when the process drains: the wait ends with what
    there is."""

    event: threading.Event = field(default_factory=threading.Event)
    delivered: dict[str, JobRecord] = field(default_factory=dict)
    announced: set[str] = field(default_factory=set)
    closed: threading.Event = field(default_factory=threading.Event)

    def records_once_ended(
        self,
        job_ids: list[str],
        read_many: Callable[[list[str]], list[JobRecord | None]],
        unfinished: Callable[[list[str]], int],
    ) -> list[JobRecord | None] | None:
        """The records of ``job_ids`` once every one has ended, else None. Nothing is read while
        some have not been announced but a count (one short answer: a notice may have been
        missed), and then only the records the notices did not carry, in one round trip: a
        request of 256 images woken by each of its batches' notices reads 256 records once."""
        if not self.announced.issuperset(job_ids) and unfinished(job_ids):
            return None
        missing = [job_id for job_id in job_ids if job_id not in self.delivered]
        read = dict(zip(missing, read_many(missing), strict=True)) if missing else {}
        return [self.delivered[job_id] if job_id in self.delivered else read[job_id] for job_id in job_ids]

    def until(self, timeout: float, read: Callable[[], T], done: Callable[[T], bool], value: object = _UNREAD) -> T:
        """``read()`` once ``done`` says so of it (read again each time a watched job ends or the
        listener subscribes again, and every JOB_RECHECK_S seconds whatever happens), or when
        ``timeout`` seconds have passed; begins by waiting for a notice unless given ``value``, a
        first reading."""
        deadline = time.monotonic() + timeout
        while value is _UNREAD or not done(value):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.closed.is_set():
                return read() if value is _UNREAD else value
            self.event.wait(min(remaining, JOB_RECHECK_S))
            self.event.clear()
            value = read()
        return value


class BatchWatch:
    """The requests of one process waiting on one batch: told by the notices how many of its jobs
    are left, woken together when none is, and sharing one reading of its counter a second."""

    def __init__(self, read: Callable[[], int]):
        self._read = read
        self.waiters = 0  # changed under JobWaiter's lock
        self.generation = 0  # one more each time the waiters are woken
        self._changed = threading.Condition()
        self._reading = threading.Lock()
        self._value: tuple[float, int] | None = None  # (when, jobs left), heard or read
        self._leader: object | None = None

    def leads(self, waiter: object) -> bool:
        """Whether ``waiter`` is the one that looks again every RECHECK_S (it becomes so when none is)."""
        if self._leader is None:
            self._leader = waiter
        return self._leader is waiter

    def leave(self, waiter: object) -> None:
        if self._leader is waiter:
            self._leader = None

    def heard(self, left: int) -> None:
        """A notice said the batch has ``left`` jobs unfinished; the waiters are woken when none is."""
        self._value = (time.monotonic(), left)
        if left <= 0:
            with self._changed:
                self.generation += 1
                self._changed.notify_all()

    def wake(self) -> None:
        """Wake every waiter now, to read the counter afresh (the process is draining, or the
        listener may have missed notices)."""
        self._value = None
        with self._changed:
            self.generation += 1
            self._changed.notify_all()

    def changed_since(self, seen: int, timeout: float) -> int:
        """The generation once it is past ``seen``, or after ``timeout`` seconds."""
        with self._changed:
            self._changed.wait_for(lambda: self.generation != seen, timeout)
            return self.generation

    def unfinished(self) -> int:
        """The jobs left, as last heard or read; read again from the counter when that is RECHECK_S
        old (a notice may have been lost): one reading serves every waiter."""
        with self._reading:
            if self._value is None or time.monotonic() - self._value[0] >= RECHECK_S:
                self._value = (time.monotonic(), self._read())
            return self._value[1]


class JobWaiter:
    def __init__(self, client_factory: Callable[[], redis.Redis], max_waits: int, max_waits_per_client: int):
        self._client_factory = client_factory
        self.max_waits, self.max_waits_per_client = max_waits, max_waits_per_client
        self._waiting: dict[str, set[Watch]] = defaultdict(set)
        self._batches: dict[str, BatchWatch] = {}
        self._per_client: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._listener: threading.Thread | None = None
        self._closed = threading.Event()  # shared by every Watch: set when the process drains

    @property
    def waiting(self) -> int:
        """How many requests wait in this process now."""
        return self._per_client.total()

    def wait(self, job_id: str, timeout: float, read: Callable[[], JobRecord | None], client: str) -> JobRecord | None:
        """Return the job's record (``read()``, or the one its finished notice carried) once the
        job has ended or ``timeout`` seconds have passed."""
        if timeout <= 0:
            return read()
        with self.watching([job_id], client) as watch:
            record = read()  # after registering, so no notice can slip in between
            if watch is None or has_ended(record):
                return record
            return watch.until(timeout, lambda: watch.delivered.get(job_id) or read(), has_ended, record)

    def wait_batch(self, batch_id: str, timeout: float, unfinished: Callable[[], int], client: str) -> int:
        """How many of the batch's jobs have not ended (``unfinished()``, its counter), once none
        is left or ``timeout`` seconds have passed; at once if ``client`` may not wait now."""
        if timeout <= 0:
            return unfinished()
        with self._joining(batch_id, unfinished, client) as shared:
            if shared is None:
                return unfinished()
            deadline, me = time.monotonic() + timeout, object()
            seen = shared.generation  # before reading, so no notice can slip in between
            left = shared.unfinished()
            try:
                while left > 0:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or self._closed.is_set():
                        break
                    # One waiter (the leader) looks again every RECHECK_S for all; the others sleep
                    # until a notice wakes them, checking every FOLLOWER_RECHECK_S that one still looks.
                    period = RECHECK_S if shared.leads(me) else FOLLOWER_RECHECK_S
                    seen = shared.changed_since(seen, min(remaining, period))
                    left = shared.unfinished()
                    if left <= 0:
                        shared.heard(left)  # a notice was lost: wake the others too
            finally:
                shared.leave(me)
            return left

    @contextlib.contextmanager
    def _joining(self, batch_id: str, unfinished: Callable[[], int], client: str) -> Iterator[BatchWatch | None]:
        """Join (or start) this process's watch on ``batch_id``; None when ``client`` may not wait now."""
        self._ensure_listener()
        with self._lock:
            if self._closed.is_set() or not self._admit(client):
                shared = None
            else:
                shared = self._batches.get(batch_id) or self._batches.setdefault(batch_id, BatchWatch(unfinished))
                shared.waiters += 1
        try:
            yield shared
        finally:
            if shared is not None:
                with self._lock:
                    self._release(client)
                    shared.waiters -= 1
                    if not shared.waiters:
                        del self._batches[batch_id]

    def _admit(self, client: str) -> bool:
        """Count one more wait for ``client`` if the bounds allow it (under the lock)."""
        if self.waiting >= self.max_waits or self._per_client[client] >= self.max_waits_per_client:
            return False
        self._per_client[client] += 1
        return True

    def _release(self, client: str) -> None:
        self._per_client[client] -= 1
        if not self._per_client[client]:
            del self._per_client[client]

    @contextlib.contextmanager
    def watching(self, job_ids: list[str], client: str) -> Iterator[Watch | None]:
        """Hear of ``job_ids`` ending while inside: watched before the jobs are even created, no
        end can be missed, and nothing need be read before the first notice. None when ``client``
        may not wait now (see the module's docstring)."""
        self._ensure_listener()
        watch = Watch(closed=self._closed)
        with self._lock:
            if self._closed.is_set() or not self._admit(client):
                watch = None
            else:
                for job_id in job_ids:
                    self._waiting[job_id].add(watch)
        try:
            yield watch
        finally:
            if watch is not None:
                with self._lock:
                    self._release(client)
                    for job_id in job_ids:
                        self._waiting[job_id].discard(watch)
                        if not self._waiting[job_id]:
                            del self._waiting[job_id]

    def close(self) -> None:
        """Answer every waiting request now with what there is, and let none wait from now on
        (the process is draining: web/draining.py)."""
        with self._lock:
            self._closed.set()
        self._wake_all()

    def _wake_all(self) -> None:
        """Wake every waiting request to read what it waits on afresh."""
        with self._lock:
            watches = {watch for watching in self._waiting.values() for watch in watching}
            batches = list(self._batches.values())
        for watch in watches:
            watch.event.set()
        for batch in batches:
            batch.wake()

    def _ensure_listener(self) -> None:
        with self._lock:
            if self._listener is None or not self._listener.is_alive():
                self._listener = threading.Thread(target=self._listen, daemon=True, name="job-finished-listener")
                self._listener.start()

    def _listen(self) -> None:
        while True:
            try:
                pubsub = self._client_factory().pubsub()
                pubsub.subscribe(keys.JOBS_FINISHED_CHANNEL)
                for message in pubsub.listen():
                    if message["type"] == "subscribe":  # notices sent before now are lost to this process
                        self._wake_all()
                    elif message["type"] == "message":
                        self._wake(FinishedNotice.parse(message["data"]))
            except Exception as exc:  # Redis down: waiters fall back to re-reading every second
                log.warning("job listener: %s; reconnecting", exc)
                time.sleep(1)

    def _wake(self, notice: FinishedNotice) -> None:
        """Wake the requests waiting on the jobs the notice names, handing over the records it
        carries (decoded only for jobs someone waits on)."""
        with self._lock:
            batches = [(self._batches[b], left) for b, left in notice.batches.items() if b in self._batches]
            woken = [(job_id, watch) for job_id in notice.ids for watch in self._waiting.get(job_id, ())]
        for shared, left in batches:
            shared.heard(left)
        records = {job_id: notice.record(job_id) for job_id in {job_id for job_id, _ in woken}}
        for job_id, watch in woken:
            if records[job_id] is not None:
                watch.delivered[job_id] = records[job_id]
            watch.announced.add(job_id)
        for watch in {watch for _, watch in woken}:  # once each, with all it was handed
            watch.event.set()
