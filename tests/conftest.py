"""Shared fixtures: a private Redis per session, real worker and web processes, MNIST samples.

Nothing here is mocked: tests talk to a redis-server they start, Celery workers that load the
real model, and gunicorn over HTTP. Process logs land in test-output/<test module>/.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import redis
from PIL import Image

from model.mnist import Mnist, load_mnist
from stack.processes import Stack
from stack.redis_server import RedisServer

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "test-output"
TOKEN = "test-token-not-secret"


@pytest.fixture(scope="session")
def mnist() -> Mnist:
    """Genuine MNIST from $MNIST_DIR (the shared copy in CI)."""
    from settings import get_settings

    return load_mnist(get_settings().mnist_dir)


@pytest.fixture
def environ(monkeypatch):
    """Set environment variables for this test, read afresh: settings are read once per process."""
    from settings import get_settings

    get_settings.cache_clear()
    yield monkeypatch
    monkeypatch.undo()
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def redis_server():
    server = RedisServer().start()
    yield server
    server.close()


@pytest.fixture
def redis_client(redis_server) -> redis.Redis:
    """A clean database on the session's private server (the shared 6379 is never touched)."""
    client = redis.Redis.from_url(redis_server.url.replace("/0", "/1"))
    client.flushdb()
    yield client
    client.flushdb()


@contextlib.contextmanager
def running_stack(
    log_dir: Path, web_env: dict | None = None, env: dict | None = None, workers: dict[str, dict] | None = None
) -> Iterator[Stack]:
    """Own Redis, gunicorn (with ``web_env`` added) and ``workers`` (name -> Stack.start_worker
    options; default one worker on both queues), all with ``env`` added; stopped on exit."""
    workers = workers or {"w1": {"concurrency": 1}}
    server = RedisServer().start()
    running = Stack(server.url, log_dir, env={"DIGITS_API_TOKEN": TOKEN, **(env or {})})
    try:
        for name, options in workers.items():
            running.start_worker(name, **options)
        running.start_web(env=web_env)
        running.wait_for_workers(len(workers))
        yield running
    finally:
        running.stop_all()
        server.close()


@pytest.fixture(scope="module")
def stack(request):
    """A running service for a test module: own Redis, one worker, gunicorn; with the module's
    ``STACK_ENV`` (a dict of settings) if it has one."""
    env = getattr(request.module, "STACK_ENV", None)
    with running_stack(OUTPUT / request.module.__name__, env=env) as running:
        yield running


# The tiny models that tests train (about 60 % right) may be served where a test activates them;
# the accuracy floor of the model check is tested in test_model_checks.py.
TINY_MODELS_SERVED = {"CHECK_MIN_ACCURACY": "0.3"}


def png_bytes(pixels: np.ndarray, invert: bool = False) -> bytes:
    """A 2-D uint8 array as PNG bytes; ``invert`` gives dark ink on white like a scan."""
    buffer = io.BytesIO()
    Image.fromarray(255 - pixels if invert else pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def pytest_configure(config):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # Tests drive the service harder than any one client may; tests/test_rate_limit.py sets its own.
    os.environ["RATE_LIMIT"] = ""
    # A test's web stops at once when its stack does; tests/test_drain.py drains its own.
    os.environ.setdefault("DRAIN_SECONDS", "0")
