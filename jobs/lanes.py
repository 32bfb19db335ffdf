"""The prediction lanes: where job ids wait for a worker, in Redis lists named in jobs/keys.py.

A lane holds job ids only; each job's record and image wait beside it (jobs/records.py), so a
lane entry is a few bytes and the record, not the entry, says what is to be done. New jobs are
put in a lane by the script that records them (one round trip); a worker takes up to a batch at
once, the fast lane first, and marks them running in its next round trip. An id lost between the
two (its worker died in that instant) is still queued in its record, and found by
jobs/recovery.py; an id taken twice is read once (only a queued job can be started).
"""

from __future__ import annotations

from collections.abc import Sequence

import redis

from jobs import keys, scripts


def put(client: redis.Redis, lane: str, job_ids: Sequence[str]) -> None:
    """Queue jobs (already recorded as queued) at the back of ``lane``."""
    if job_ids:
        client.rpush(keys.lane(lane), *job_ids)


def depth(client: redis.Redis, lane: str) -> int:
    """How many job ids wait in ``lane``."""
    return int(client.llen(keys.lane(lane)))


class LaneReader:
    """Takes waiting job ids for one worker from its lanes, in the order given (fast lane first)."""

    def __init__(self, client: redis.Redis, lanes: Sequence[str]):
        self.client = client
        self.lanes = list(lanes)
        self.keys = [keys.lane(lane) for lane in lanes]
        self._take = scripts.TakeFromLanes(client)

    def take(self, most: int, block_s: float) -> list[str]:
        """Up to ``most`` job ids, the first lane's first; when every lane is empty, wait up to
        ``block_s`` seconds for one (and return it alone, at once: it is a lone job), else []."""
        taken = self._take(lanes=self.lanes, most=most)
        if taken:
            return taken
        # BLPOP serves its keys in order, and answers as soon as any of them has an id.
        waited = self.client.blpop(self.keys, timeout=block_s)
        return [waited[1].decode()] if waited else []
