"""Whether new work must reach a replica before it is accepted, and the wait for it (Redis ``WAIT``).

Redis replicates asynchronously: a job recorded on the primary and answered 202 is lost if the
primary dies before its replica has it, and a failover promotes that replica. ``WAIT 1 <ms>``,
sent on the connection that wrote the job, returns once one replica has acknowledged everything
written before it (or the time is up), so a submission answered after it survives the failover.
The policy (``REPLICA_ACK``): ``on`` always waits, ``off`` never, ``auto`` waits while the primary
has a replica connected (asked with ``ROLE`` at most every :data:`REFRESH_S`: a primary without
replicas would make every wait run to its timeout).
"""

from __future__ import annotations

import time

import redis

REFRESH_S = 5.0
MODES = ("auto", "on", "off")


class NotReplicated(Exception):
    """No replica acknowledged new records in time: they are on the primary only, and may be lost."""

    def __init__(self, timeout_ms: int):
        super().__init__(f"no replica acknowledged the new jobs within {timeout_ms} ms")
        self.timeout_ms = timeout_ms


class ReplicaAck:
    """The ``REPLICA_ACK`` policy for one process's client; :meth:`wanted` costs a ``ROLE`` every
    :data:`REFRESH_S` seconds in ``auto`` mode and nothing otherwise."""

    def __init__(self, client: redis.Redis, mode: str = "auto", timeout_ms: int = 500, refresh_s: float = REFRESH_S):
        if mode not in MODES:
            raise ValueError(f"replica acknowledgement must be one of {', '.join(MODES)}, not {mode!r}")
        self.redis, self.mode, self.timeout_ms, self.refresh_s = client, mode, timeout_ms, refresh_s
        self._replicas = 0
        self._asked_at = -float("inf")

    def wanted(self) -> bool:
        """Whether writes that accept work must wait for a replica now."""
        if self.mode != "auto":
            return self.mode == "on"
        now = time.monotonic()
        if now - self._asked_at >= self.refresh_s:
            role = self.redis.execute_command("ROLE")
            # A primary answers [b"master", offset, [[host, port, offset], ...]]; a replica, [b"slave", ...].
            self._replicas = len(role[2]) if role[0] == b"master" else 0
            self._asked_at = now
        return self._replicas > 0

    def check(self, acknowledged: int) -> None:
        """Raise :class:`NotReplicated` unless ``acknowledged`` (what ``WAIT`` answered) is at least one."""
        if acknowledged < 1:
            # The replica may be gone for good (or this is a new primary after a failover, with
            # none yet): in auto mode, ask again at the next submission rather than in REFRESH_S.
            self._asked_at = -float("inf")
            raise NotReplicated(self.timeout_ms)
