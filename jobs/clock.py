"""Redis's clock: the one time every host agrees on.

Hosts' clocks drift and are set wrong; a host 6 s ahead once removed every other worker from the
registry and took over their running jobs. So whatever judges liveness, takeover or how long ago
something was sent reads the time from Redis (``TIME``, inside the scripts where the decision is
made, or here where a caller needs it), never from ``time.time()``.
"""

from __future__ import annotations

import redis


def now(client: redis.Redis) -> float:
    """Redis's time, in epoch seconds (one round trip)."""
    seconds, microseconds = client.time()
    return seconds + microseconds / 1_000_000
