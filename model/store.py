"""The model store: immutable model versions (file bytes + card) and the active version, in Redis.

Workers on any host load the active version from here, so hosts share nothing but Redis.

Keys (inspect with redis-cli):
    digits:models                    sorted set of versions (score = version number)
    digits:models:next               counter for new version numbers
    digits:models:active             the active version number
    digits:models:activated          pub/sub channel: a version was activated (message: its number)
    digits:model:<version>:card      the card, JSON
    digits:model:<version>:file      the model file's bytes
    digits:model:<version>:litert    its LiteRT export (Keras versions, made when first needed)
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import time
from pathlib import Path

import redis

VERSIONS = "digits:models"
NEXT_VERSION = "digits:models:next"
ACTIVE = "digits:models:active"
ACTIVATED_CHANNEL = "digits:models:activated"
SEED_LOCK = "digits:models:seeding"
_VERSION_PATTERN = re.compile(r"^[1-9][0-9]{0,9}$")

SHIPPED_MODEL = Path(__file__).parent / "shipped" / "default.keras"


def card_key(version: int) -> str:
    return f"digits:model:{version}:card"


def file_key(version: int) -> str:
    return f"digits:model:{version}:file"


def litert_key(version: int) -> str:
    return f"digits:model:{version}:litert"


def parse_version(text: str) -> int | None:
    """The version number in ``text``, or None unless it is a plain positive integer."""
    return int(text) if _VERSION_PATTERN.match(text or "") else None


class ModelStore:
    """Versions are numbered 1, 2, 3... and never change once written."""

    def __init__(self, client: redis.Redis):
        self.redis = client

    def add(self, file_bytes: bytes, card: dict, file_format: str = "keras") -> int:
        """Store a new version and return its number; it is not activated."""
        version = int(self.redis.incr(NEXT_VERSION))
        card = {
            **card,
            "version": version,
            "format": file_format,
            "file_bytes": len(file_bytes),
            "file_sha256": hashlib.sha256(file_bytes).hexdigest(),
            "stored_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(file_key(version), file_bytes)
        pipe.set(card_key(version), json.dumps(card))
        pipe.zadd(VERSIONS, {str(version): version})
        pipe.execute()
        return version

    def versions(self) -> list[int]:
        return [int(v) for v in self.redis.zrange(VERSIONS, 0, -1)]

    def card(self, version: int) -> dict | None:
        raw = self.redis.get(card_key(version))
        return json.loads(raw) if raw else None

    def cards(self) -> list[dict]:
        """Every version's card, oldest first."""
        versions = self.versions()
        raws = self.redis.mget([card_key(v) for v in versions]) if versions else []
        return [json.loads(raw) for raw in raws if raw]

    def file(self, version: int) -> bytes | None:
        return self.redis.get(file_key(version))

    def litert_file(self, version: int) -> bytes | None:
        return self.redis.get(litert_key(version))

    def set_litert_file(self, version: int, data: bytes) -> None:
        """Keep a version's LiteRT export (derived data: the version itself stays immutable)."""
        self.redis.set(litert_key(version), data)

    def active_version(self) -> int | None:
        raw = self.redis.get(ACTIVE)
        return int(raw) if raw else None

    def activate(self, version: int) -> None:
        """Make ``version`` the one every worker serves; raises KeyError if it does not exist."""
        if self.redis.zscore(VERSIONS, str(version)) is None:
            raise KeyError(version)
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(ACTIVE, version)
        pipe.publish(ACTIVATED_CHANNEL, version)
        pipe.execute()

    def delete(self, version: int) -> None:
        """Remove a version; raises KeyError if it does not exist, ValueError if it is the active one."""
        if self.redis.zscore(VERSIONS, str(version)) is None:
            raise KeyError(version)
        if self.active_version() == version:
            raise ValueError(f"version {version} is active; activate another one first")
        pipe = self.redis.pipeline(transaction=True)
        pipe.zrem(VERSIONS, str(version))
        pipe.delete(file_key(version), card_key(version), litert_key(version))
        pipe.execute()

    def ensure_seeded(self, shipped: Path = SHIPPED_MODEL, wait_s: float = 60) -> int:
        """Store and activate the shipped model if the store is empty; return the active version.

        Many workers may start at once: one seeds, the others wait for it.
        """
        deadline = time.monotonic() + wait_s
        while (active := self.active_version()) is None:
            if self.redis.set(SEED_LOCK, "1", nx=True, ex=60):
                try:
                    if self.active_version() is None:
                        card = json.loads(shipped.with_suffix(".json").read_text())
                        card["origin"] = "shipped with the code"
                        self.activate(self.add(shipped.read_bytes(), card))
                finally:
                    self.redis.delete(SEED_LOCK)
            elif time.monotonic() > deadline:
                raise TimeoutError("the model store has no active version and seeding did not finish")
            else:
                time.sleep(0.2)
        return active
