"""Every job-finished notice counted per job: how a run tells a job answered twice from one answered once."""

from __future__ import annotations

import threading
from collections import Counter

import redis

from jobs import keys
from jobs.records import FinishedNotice


class FinishedNotices:
    """Counts every job-finished notice (``keys.JOBS_FINISHED_CHANNEL``) from now until :meth:`close`."""

    def __init__(self, url: str):
        self.counts: Counter[str] = Counter()
        self._pubsub = redis.Redis.from_url(url).pubsub(ignore_subscribe_messages=True)
        self._pubsub.subscribe(keys.JOBS_FINISHED_CHANNEL)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        while not self._stop.is_set():
            message = self._pubsub.get_message(timeout=0.2)
            if message:
                self.counts.update(FinishedNotice.parse(message["data"]).ids)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
