"""Fixtures of the fast tier: everything runs in this process (Flask's test client against the app
factory, the model in-process) on private redis-servers; no gunicorn, Celery worker or browser."""

from __future__ import annotations

import pytest

from stack.redis_server import ReplicatedRedis


@pytest.fixture(scope="module")
def replicated():
    """A primary, its replica and three sentinels on loopback, for one test module."""
    servers = ReplicatedRedis().start()
    yield servers
    servers.close()
