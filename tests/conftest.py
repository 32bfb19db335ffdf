"""What both tiers share: MNIST, the one way to start a private Redis, and small constants.

Nothing here is mocked: tests talk to a redis-server they start (stack/redis_server.py, never the
shared 6379). tests/fast/ runs in this process (Flask's test client, the model in-process);
tests/service/ starts real workers and gunicorn (its conftest.py and helpers.py). Process logs
land in test-output/<test module>/.
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
from jsonschema import Draft202012Validator
from PIL import Image

from model.mnist import Mnist, load_mnist
from stack.redis_server import RedisServer

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "test-output"
TOKEN = "test-token-not-secret"


@contextlib.contextmanager
def private_redis(**options) -> Iterator[RedisServer]:
    """A redis-server of the test's own on a free port (``options`` as :class:`RedisServer` takes
    them: appendonly, maxmemory...), stopped and its files removed on exit."""
    server = RedisServer(**options).start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def own_redis():
    """Starts redis-servers of the test's own, ``own_redis(maxmemory="8mb")``: for a test whose Redis
    is not the session's (a memory limit, an append-only file, a server to kill); all stop after it."""
    with contextlib.ExitStack() as servers:
        yield lambda **options: servers.enter_context(private_redis(**options))


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
    with private_redis() as server:
        yield server


@pytest.fixture
def redis_client(redis_server) -> redis.Redis:
    """A clean database on the session's private server (the shared 6379 is never touched)."""
    client = redis.Redis.from_url(redis_server.url.replace("/0", "/1"))
    client.flushdb()
    yield client
    client.flushdb()


# The tiny models that tests train (about 60 % right) may be served where a test activates them;
# the accuracy floor of the model check is tested in tests/service/test_model_checks.py.
TINY_MODELS_SERVED = {"CHECK_MIN_ACCURACY": "0.3"}


def png_bytes(pixels: np.ndarray, invert: bool = False) -> bytes:
    """A 2-D uint8 array as PNG bytes; ``invert`` gives dark ink on white like a scan."""
    buffer = io.BytesIO()
    Image.fromarray(255 - pixels if invert else pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def openapi_validator(document: dict, schema_name: str) -> Draft202012Validator:
    """A validator for one of the OpenAPI document's component schemas (refs resolve in the document)."""
    return Draft202012Validator(
        {**document, "$ref": f"#/components/schemas/{schema_name}"}, format_checker=Draft202012Validator.FORMAT_CHECKER
    )


def pytest_configure(config):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # Tests drive the service harder than any one client may; tests/service/test_rate_limit.py sets its own.
    os.environ["RATE_LIMIT"] = ""
    # A test's web stops at once when its stack does; tests/test_drain.py drains its own.
    os.environ.setdefault("DRAIN_SECONDS", "0")
