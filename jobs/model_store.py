"""The model store: immutable model versions (file bytes + card) and the active version, in Redis.

Workers on any host load the active version from here, so hosts share nothing but Redis. The
keys (``digits:models``, ``digits:model:<version>:card``, ...) are listed in jobs/keys.py.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import time
from pathlib import Path

import redis

from jobs import keys
from model.shipped import SHIPPED_MODEL

_VERSION_PATTERN = re.compile(r"^[1-9][0-9]{0,9}$")


def parse_version(text: str) -> int | None:
    """The version number in ``text``, or None unless it is a plain positive integer."""
    return int(text) if _VERSION_PATTERN.match(text or "") else None


class StoreFull(Exception):
    """The store holds as many versions as it may, or the file is over the size limit."""


HISTORY_KEPT = 20


class ModelStore:
    """Versions are numbered 1, 2, 3... and never change once written.

    ``max_versions`` and ``max_file_bytes`` (0: no limit) bound what :meth:`add` accepts.
    """

    def __init__(self, client: redis.Redis, max_versions: int = 0, max_file_bytes: int = 0):
        self.redis = client
        self.max_versions, self.max_file_bytes = max_versions, max_file_bytes

    def room_for_one_more(self) -> None:
        """Raise :class:`StoreFull` unless another version may be stored."""
        count = self.redis.zcard(keys.MODEL_VERSIONS)
        if self.max_versions and count >= self.max_versions:
            raise StoreFull(f"the store holds {count} versions, its limit: delete some first")

    def add(self, file_bytes: bytes, card: dict, file_format: str = "keras") -> int:
        """Store a new version and return its number; it is not activated. Raises :class:`StoreFull`."""
        if self.max_file_bytes and len(file_bytes) > self.max_file_bytes:
            raise StoreFull(f"the model file is {len(file_bytes)} bytes, over the limit of {self.max_file_bytes}")
        self.room_for_one_more()
        version = int(self.redis.incr(keys.MODEL_NEXT_VERSION))
        card = {
            **card,
            "version": version,
            "format": file_format,
            "file_bytes": len(file_bytes),
            "file_sha256": hashlib.sha256(file_bytes).hexdigest(),
            "stored_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(keys.model_file(version), file_bytes)
        pipe.set(keys.model_card(version), json.dumps(card))
        pipe.zadd(keys.MODEL_VERSIONS, {str(version): version})
        pipe.execute()
        return version

    def versions(self) -> list[int]:
        return [int(v) for v in self.redis.zrange(keys.MODEL_VERSIONS, 0, -1)]

    def card(self, version: int) -> dict | None:
        raw = self.redis.get(keys.model_card(version))
        return json.loads(raw) if raw else None

    def cards(self) -> list[dict]:
        """Every version's card, oldest first."""
        versions = self.versions()
        raws = self.redis.mget([keys.model_card(v) for v in versions]) if versions else []
        return [json.loads(raw) for raw in raws if raw]

    def file(self, version: int) -> bytes | None:
        return self.redis.get(keys.model_file(version))

    def litert_file(self, version: int) -> bytes | None:
        return self.redis.get(keys.model_litert(version))

    def set_litert_file(self, version: int, data: bytes) -> None:
        """Keep a version's LiteRT export (derived data: the version itself stays immutable)."""
        self.redis.set(keys.model_litert(version), data)

    def active_version(self) -> int | None:
        raw = self.redis.get(keys.MODEL_ACTIVE)
        return int(raw) if raw else None

    def activate(self, version: int) -> None:
        """Make ``version`` the one every worker serves; raises KeyError if it does not exist."""
        if self.redis.zscore(keys.MODEL_VERSIONS, str(version)) is None:
            raise KeyError(version)
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(keys.MODEL_ACTIVE, version)
        pipe.lrem(keys.MODEL_HISTORY, 0, version)
        pipe.lpush(keys.MODEL_HISTORY, version)
        pipe.ltrim(keys.MODEL_HISTORY, 0, HISTORY_KEPT - 1)
        pipe.publish(keys.MODEL_ACTIVATED_CHANNEL, version)
        pipe.execute()

    def history(self) -> list[int]:
        """The versions activated, most recent first (the active one first of all)."""
        return [int(v) for v in self.redis.lrange(keys.MODEL_HISTORY, 0, -1)]

    def set_check(self, version: int, verdict: dict) -> None:
        """Keep the verdict of checking ``version`` (model/check.py), beside the immutable version."""
        self.redis.set(keys.model_check(version), json.dumps(verdict))

    def checks(self, versions: list[int]) -> list[dict | None]:
        """The verdicts of checking ``versions``, in order (None: never checked)."""
        raws = self.redis.mget([keys.model_check(v) for v in versions]) if versions else []
        return [json.loads(raw) if raw else None for raw in raws]

    def check(self, version: int) -> dict | None:
        """The verdict of checking ``version``, if it was checked."""
        raw = self.redis.get(keys.model_check(version))
        return json.loads(raw) if raw else None

    def delete(self, version: int) -> None:
        """Remove a version; raises KeyError if it does not exist, ValueError if it is the active one."""
        if self.redis.zscore(keys.MODEL_VERSIONS, str(version)) is None:
            raise KeyError(version)
        if self.active_version() == version:
            raise ValueError(f"version {version} is active; activate another one first")
        pipe = self.redis.pipeline(transaction=True)
        pipe.zrem(keys.MODEL_VERSIONS, str(version))
        pipe.lrem(keys.MODEL_HISTORY, 0, version)
        pipe.delete(
            keys.model_file(version), keys.model_card(version), keys.model_litert(version), keys.model_check(version)
        )
        pipe.execute()

    def ensure_seeded(self, shipped: Path = SHIPPED_MODEL, wait_s: float = 60) -> int:
        """Store and activate the shipped model if the store is empty; return the active version.

        Many workers may start at once: one seeds, the others wait for it.
        """
        deadline = time.monotonic() + wait_s
        while (active := self.active_version()) is None:
            if self.redis.set(keys.MODEL_SEED_LOCK, "1", nx=True, ex=60):
                try:
                    if self.active_version() is None:
                        card = json.loads(shipped.with_suffix(".json").read_text())
                        card["origin"] = "shipped with the code"
                        # The limits are for what users store: the shipped model always fits.
                        version = ModelStore(self.redis).add(shipped.read_bytes(), card)
                        # Its LiteRT export ships beside it: no worker of a new store need make it.
                        exported = shipped.with_suffix(".tflite")
                        if exported.exists():
                            self.set_litert_file(version, exported.read_bytes())
                        self.activate(version)
                finally:
                    self.redis.delete(keys.MODEL_SEED_LOCK)
            elif time.monotonic() > deadline:
                raise TimeoutError("the model store has no active version and seeding did not finish")
            else:
                time.sleep(0.2)
        return active
