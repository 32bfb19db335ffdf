"""Start and stop the service's processes (Celery workers, gunicorn, the gRPC server) against one Redis.

Used by ``make run`` (``python -m stack``), by the tests and by the benchmark, so all three
run the service the same way a user does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import requests
from tritonclient.grpc import service_pb2, service_pb2_grpc

from jobs import keys, workers
from jobs.queue import connect
from stack.kept import open_log
from stack.redis_server import free_port

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
# What a predict worker consumes: both lanes, the fast one first (jobs/keys.py).
PREDICT_QUEUES = ",".join(keys.PREDICT_QUEUES)


class Stack:
    """A set of service processes sharing ``redis_url``; logs go to ``log_dir/<name>.log`` (begun
    afresh by each Stack, kept across restarts of a process within it; with ``keep_logs``, as
    ``make run`` does, appended to and rotated: see stack/kept.py).

    ``launcher`` prefixes every command (``["ip", "netns", "exec", "host1"]`` runs the processes on
    another "host": a network namespace, see tests/service/network.py), and ``host`` is the
    address the web binds there (a client outside the namespace cannot reach its loopback)."""

    def __init__(
        self,
        redis_url: str,
        log_dir: str | Path,
        env: dict | None = None,
        keep_logs: bool = False,
        launcher: list[str] | None = None,
        host: str = "127.0.0.1",
    ):
        self.redis_url = redis_url
        self.launcher = list(launcher or [])
        self.host = host
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.env = {**os.environ, "REDIS_URL": redis_url, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.processes: dict[str, subprocess.Popen] = {}
        self.commands: dict[str, tuple[list[str], dict | None]] = {}  # how each was started: to start it again
        self.web_url: str | None = None
        self.grpc_address: str | None = None
        self.metrics_dir: Path | None = None
        self._logging: set[str] = set()
        self.keep_logs = keep_logs

    def _spawn(self, name: str, args: list[str], env: dict | None = None) -> subprocess.Popen:
        self.commands[name] = (args, env)
        path = self.log_dir / f"{name}.log"
        if self.keep_logs and name not in self._logging:
            opened = open_log(path)  # appended to, rotated when large, with the time of this run
        else:
            opened = open(path, "ab" if name in self._logging else "wb")  # noqa: SIM115 - closed below
        with opened as log:
            self._logging.add(name)
            process = subprocess.Popen(
                self.launcher + args,
                cwd=ROOT,
                env={**self.env, **(env or {})},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes[name] = process
        return process

    def start_worker(
        self,
        name: str,
        queues: str = ",".join(keys.QUEUES),
        concurrency: int = 1,
        pool: str | None = None,
        env: dict | None = None,
    ) -> subprocess.Popen:
        """A Celery worker named ``name@<host>``; returns once it is started (not yet ready).

        ``pool`` defaults to the one the worker's process model asks for (worker/__init__.py):
        solo for a worker that serves a prediction lane, prefork otherwise."""
        if pool is None:
            pool = "solo" if any(name in keys.PREDICT_QUEUES for name in queues.split(",")) else "prefork"
        args = [str(BIN / "celery"), "-A", "worker", "worker", "-Q", queues, "-c", str(concurrency), "-P", pool]
        args += ["--hostname", f"{name}@%h", "--loglevel", "INFO", "--without-gossip", "--without-mingle"]
        return self._spawn(name, args, env)

    def start_web(self, port: int | None = None, workers: int = 2, env: dict | None = None) -> str:
        """gunicorn serving ``web:create_app()``; returns its base URL once it answers /healthz.

        Its metrics files go to ``log_dir/web-metrics-<port>`` (emptied at start), so /metrics
        sums the requests of every gunicorn worker; see stack/gunicorn_conf.py.
        """
        port = port or free_port()
        self.metrics_dir = self.log_dir / f"web-metrics-{port}"
        args = [str(BIN / "gunicorn"), "web:create_app()", "--config", "python:stack.gunicorn_conf"]
        args += ["--bind", f"{self.host}:{port}", "--workers", str(workers)]
        self._spawn("web", args, {"PROMETHEUS_MULTIPROC_DIR": str(self.metrics_dir), **(env or {})})
        self.web_url = f"http://{self.host}:{port}"
        self.wait_for_web()
        return self.web_url

    def start_grpc(
        self, port: int | None = None, env: dict | None = None, name: str = "grpc", timeout: float = 120
    ) -> str:
        """The Open Inference Protocol's gRPC server (web/grpc_server.py) as process ``name``;
        returns its address (host:port) once it answers ServerLive."""
        port = port or free_port()
        args = [str(BIN / "python"), "-m", "web.grpc_server", "--host", "127.0.0.1", "--port", str(port)]
        process = self._spawn(name, args, env)
        address = f"127.0.0.1:{port}"
        if name == "grpc":
            self.grpc_address = address
        deadline = time.monotonic() + timeout
        with grpc.insecure_channel(address) as channel:
            live = service_pb2_grpc.GRPCInferenceServiceStub(channel).ServerLive
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited; see {self.log_dir / (name + '.log')}")
                try:
                    if live(service_pb2.ServerLiveRequest(), timeout=1).live:
                        return address
                except grpc.RpcError:
                    time.sleep(0.1)
        raise TimeoutError(f"{name} did not answer within {timeout} s; see {self.log_dir / (name + '.log')}")

    def wait_for_web(self, timeout: float = 120) -> None:
        # As long as the workers get: a first start after an install (no bytecode compiled yet) took
        # over 30 s on a busy 2-core machine, and `make run` failed.
        wait_until_ready(f"{self.web_url}/healthz", self.processes["web"], self.log_dir / "web.log", timeout)

    def wait_for_workers(self, count: int, timeout: float = 120) -> list[str]:
        """Wait until ``count`` worker processes are ready (predict workers with a model loaded,
        training workers once they beat); return their names."""
        client = connect(self.redis_url)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready = [worker.name for worker in workers.live(client) if worker.ready]
            if len(ready) >= count:
                return ready
            for name, process in self.processes.items():
                if process.poll() is not None and name != "web":
                    raise RuntimeError(f"{name} exited; see {self.log_dir / (name + '.log')}")
            time.sleep(0.2)
        raise TimeoutError(f"fewer than {count} workers ready after {timeout} s; see logs in {self.log_dir}")

    def exited(self) -> dict[str, int]:
        """The processes that ended on their own (not stopped through this Stack), by name: their status."""
        return {name: process.returncode for name, process in self.processes.items() if process.poll() is not None}

    def start_again(self, name: str) -> subprocess.Popen:
        """Start an exited process again as it was first started (its log goes on)."""
        args, env = self.commands[name]
        return self._spawn(name, args, env)

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
        """Stop one process (and its children: gunicorn and Celery pools)."""
        process = self.processes.pop(name, None)
        if process is None or process.poll() is not None:
            return
        deadline = time.monotonic() + timeout
        try:
            os.killpg(process.pid, sig)
            process.wait(timeout)
            # The master may go before its children (gunicorn's workers, Celery's pool): until they
            # have gone too, one of them may still hold the port a process started next wants.
            while time.monotonic() < deadline:
                os.killpg(process.pid, 0)  # ProcessLookupError once the whole group has gone
                time.sleep(0.05)
            os.killpg(process.pid, signal.SIGKILL)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        except ProcessLookupError:
            pass

    def stop_all(self) -> None:
        """The web first (it drains: its long polls are answered while the workers still end jobs), then the rest."""
        for name in sorted(self.processes, key=lambda name: name != "web"):
            self.stop(name)


def wait_until_ready(url: str, process: subprocess.Popen, log: Path, timeout: float, interval: float = 0.1) -> None:
    """Return once ``url`` answers 2xx; raise if ``process`` exits first or ``timeout`` seconds
    pass (both errors name ``log``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{log.stem} exited; see {log}")
        try:
            if requests.get(url, timeout=1).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(interval)
    raise TimeoutError(f"{log.stem} did not answer within {timeout} s; see {log}")
