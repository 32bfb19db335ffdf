"""Could the job store run on a Redis Cluster? Only if every Lua script touches keys of one hash
slot (Cluster refuses a script whose keys span slots: CROSSSLOT). This runs every script's caller
against a real Redis, records the keys each script is given, and says which slots they fall in.

Today they span many: every script that writes a job also writes shared indexes and counters
(the queued and running indexes, the lanes, the metrics), which hash to other slots than the
job's own keys. Those tests are expected to fail (strict: one that passes after a change to the
key layout fails here until its mark is removed); docs/redis-ha.md says what a layout for a
Cluster would take.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import numpy as np
import pytest
from redis.cluster import key_slot
from redis.commands.core import Script

from jobs import keys
from jobs import records as rec
from jobs.feedback import FeedbackStore
from jobs.lanes import LaneReader

# Every script, by the Python call that runs it, and whether its keys share a slot today.
SHARED_INDEXES = (
    "writes a job's own keys together with shared indexes and counters (jobs/keys.py: jobs:queued, "
    "jobs:running, lanes, metrics, pending counters), which hash to other slots; on a Cluster every "
    "key would need one hash tag such as {digits} in keys.PREFIX, putting all of them in one slot"
)
SCRIPTS = {
    "JobRecords.create": SHARED_INDEXES,
    "JobRecords.start": SHARED_INDEXES,
    "JobRecords.unfinished": "reads the records of a whole request: one slot only if a request's jobs share a tag",
    "JobRecords.finish": SHARED_INDEXES,
    "JobRecords.release": SHARED_INDEXES,
    "JobRecords.forget_finished": SHARED_INDEXES,
    "LaneReader.take": "takes from both lanes in one step: the two lane keys need one hash tag",
    "FeedbackStore.add": SHARED_INDEXES,
    "FeedbackStore.delete": SHARED_INDEXES,
}


@contextlib.contextmanager
def scripts_run() -> Iterator[list[list[str]]]:
    """The keys of every Lua script run inside, in order."""
    seen: list[list[str]] = []
    run = Script.__call__

    def spy(self, keys=(), args=(), client=None):
        seen.append([k.decode() if isinstance(k, bytes) else str(k) for k in keys])
        return run(self, keys=keys, args=args, client=client)

    Script.__call__ = spy
    try:
        yield seen
    finally:
        Script.__call__ = run


def callers(client) -> dict[str, Callable[[], object]]:
    """Each script's caller, called as the service calls it (a request of three images from one
    client, its batch taken, read, finished; a correction added and deleted)."""
    records = rec.JobRecords(client)
    lanes = rec.Lanes(keys.PREDICT_QUEUE, keys.BULK_QUEUE, 16)
    limits = rec.PendingLimits(100, 10**6, 10**7)
    ids = [rec.new_job_id() for _ in range(3)]
    later = [rec.new_job_id() for _ in range(2)]
    feedback = FeedbackStore(client)
    return {
        "JobRecords.create": lambda: records.create(
            "predict", fields={"read": "digit"}, batch_id=rec.new_job_id(), client="10.0.0.1",
            images=[b"png"] * 3, limits=limits, lanes=lanes, ids=ids,
        ),
        "LaneReader.take": lambda: LaneReader(client, keys.PREDICT_QUEUES).take(3, 0.01),
        "JobRecords.start": lambda: records.start(ids, "predict1@host"),
        "JobRecords.unfinished": lambda: records.unfinished(ids),
        "JobRecords.finish": lambda: records.finish(
            [rec.Outcome(i, rec.SUCCEEDED, result={"label": 7, "model_version": 1}) for i in ids], batch_size=3
        ),
        "JobRecords.release": lambda: (
            records.create("predict", client="10.0.0.1", images=[b"png"] * 2, lanes=lanes, ids=later),
            records.start(later, "predict1@host"),
            records.release(later, "predict1@host"),
        ),
        "JobRecords.forget_finished": lambda: records.forget_finished(),
        "FeedbackStore.add": lambda: feedback.add(ids[0], 1, 7, 1, np.zeros((28, 28), np.uint8), "10.0.0.1"),
        "FeedbackStore.delete": lambda: feedback.delete(ids[:1]),
    }  # fmt: skip


@pytest.fixture(scope="module")
def script_keys(redis_server) -> dict[str, list[list[str]]]:
    """Caller -> the key lists of the scripts it ran (its own call only, not the set-up before it)."""
    import redis

    client = redis.Redis.from_url(redis_server.url.replace("/0", "/2"))
    client.flushdb()
    found = {}
    for name, call in callers(client).items():
        with scripts_run() as seen:
            call()
        found[name] = seen[-1:] if name == "JobRecords.release" else seen  # release: after its own set-up
    client.flushdb()
    return found


def test_every_script_is_tested(redis_client):
    """The scripts the store's classes register, counted as they are made: one caller each in SCRIPTS."""
    registered = []
    register = type(redis_client).register_script

    def spy(self, script):
        registered.append(script)
        return register(self, script)

    type(redis_client).register_script = spy
    try:
        rec.JobRecords(redis_client), LaneReader(redis_client, keys.PREDICT_QUEUES), FeedbackStore(redis_client)
    finally:
        type(redis_client).register_script = register
    assert len(set(registered)) == len(SCRIPTS), "a script was added or removed: list its caller in SCRIPTS"


@pytest.mark.parametrize(
    "caller",
    [
        pytest.param(name, marks=pytest.mark.xfail(reason=why, strict=True, raises=AssertionError))
        for name, why in SCRIPTS.items()
    ],
)
def test_a_scripts_keys_share_one_hash_slot(script_keys, caller):
    runs = script_keys[caller]
    assert runs, f"{caller} ran no script"
    for run_keys in runs:
        slots = {key_slot(key.encode()) for key in run_keys}
        spread = {key: key_slot(key.encode()) for key in run_keys}
        assert len(slots) == 1, f"{caller}: {len(run_keys)} keys in {len(slots)} slots: {spread}"
