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


@pytest.fixture
def make_app(redis_client, environ):
    """Apps on the test database, as gunicorn would create them: no SECRET_KEY unless a test sets one."""
    from web import create_app

    environ.delenv("SECRET_KEY", raising=False)
    url = redis_client.connection_pool.connection_kwargs
    redis_url = f"redis://127.0.0.1:{url['port']}/{url['db']}"

    def make(**config):
        return create_app({"REDIS_URL": redis_url, "TESTING": True, **config})

    return make
