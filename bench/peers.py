"""This service beside a peer, Seldon MLServer, on the same machine with the same load.

    python -m bench.peers              # make bench-peers; about 8 minutes (installs MLServer once)
    python -m bench.peers --seconds 5 --rounds 1    # a quick look

MLServer (``MLSERVER`` pins, in its own venv under ``var/peers/``) serves the project's shipped
model, ``model/shipped/default.tflite``, through bench/mlserver/digits_runtime.py with adaptive
batching (``max_batch_size`` 64, ``max_batch_time`` 2 ms) and ``parallel_workers`` 2. This
service runs as ``make bench`` runs it: a private redis-server, gunicorn (2 processes), two solo
predict workers on LiteRT with one thread each, and the gRPC server. They run one after the
other, never together, twice (MLServer, this service, MLServer, this service), each started
afresh and warmed up before it is measured.

The load is NVIDIA's tritonclient, one client per thread, genuine MNIST test digits as
``pixels`` (UINT8 [N, 28, 28]), JSON tensors both ways for both servers (MLServer 1.7 takes no
binary tensors): 64 digits per request from 16 clients, 1 digit per request from 32 clients, and
1 digit from 1 client (its latency). Beside them, for this service alone: the binary tensor
extension and gRPC (tritonclient.grpc's raw contents). Each row: images/s, p50 and p99 request
latency, the load generator's CPU per image (this process) and the server's own CPU per image
(every process of it: web, gRPC, workers and Redis here; MLServer and its workers there), from
/proc. The load generator shares the cores with the server it measures, which is why the
server's CPU per image is printed: it decides how many images a core serves when the clients are
elsewhere. The share of labels that agree with MNIST's is printed too, and the CPU per image of
the model call alone (LiteRT, one thread, batches of 64, in this process): the floor under both
servers' figure, since both make the same call.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import redis

from bench.__main__ import in_process_limit, start_workers
from bench.cpu import cpu_seconds, process_tree
from bench.load import Tally, clients_loop
from bench.provenance import provenance
from model.mnist import load_mnist
from model.shipped import SHIPPED_LITERT
from settings import get_settings
from stack.processes import Stack, wait_until_ready
from stack.redis_server import RedisServer, free_port

ROOT = Path(__file__).resolve().parents[1]
PEERS = ROOT / "var" / "peers"
MLSERVER_VENV = PEERS / "mlserver"
RUNTIME = Path(__file__).resolve().parent / "mlserver" / "digits_runtime.py"
# The runtime's predictor: this service's own, copied beside it as the module it imports.
PREDICTOR = ROOT / "model" / "runtimes" / "litert.py"
# What works: MLServer 1.7.1 fails to start with uvloop 0.21 (its event loop policy is gone).
MLSERVER = ["mlserver==1.7.1", "uvloop<0.21", "ai-edge-litert==2.3.0"]
MLSERVER_BATCHING = {"max_batch_size": 64, "max_batch_time": 0.002}
MLSERVER_WORKERS = 2
# (name, digits per request, clients): the workloads both servers get, JSON tensors both ways.
WORKLOADS = [
    ("64 per request, 16 clients", 64, 16),
    ("1 per request, 32 clients", 1, 32),
    ("1 per request, 1 client", 1, 1),
]
# Issue 30's goals: this service's server CPU per image at most this share of MLServer's.
CPU_GOALS = {"64 per request, 16 clients": 0.67, "1 per request, 32 clients": 0.77}
LIMIT_SHARE_GOAL = 0.70  # binary tensors and gRPC, 64 per request: of the in-process limit


def install_mlserver() -> Path:
    """MLServer's venv (made once, with uv from the project's venv when it has it); its ``mlserver``."""
    program = MLSERVER_VENV / "bin" / "mlserver"
    stamp = MLSERVER_VENV / ".installed"
    if stamp.exists() and stamp.read_text() == " ".join(MLSERVER):
        return program
    shutil.rmtree(MLSERVER_VENV, ignore_errors=True)
    uv = Path(sys.executable).parent / "uv"
    if uv.exists():
        subprocess.run([str(uv), "venv", "--quiet", "--python", sys.executable, str(MLSERVER_VENV)], check=True)
        install = [str(uv), "pip", "install", "--quiet", "--python", str(MLSERVER_VENV / "bin" / "python")]
    else:
        subprocess.run([sys.executable, "-m", "venv", str(MLSERVER_VENV)], check=True)
        install = [str(MLSERVER_VENV / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run([*install, *MLSERVER], check=True)
    stamp.write_text(" ".join(MLSERVER))
    return program


class MLServer:
    """MLServer serving ``digits`` from a fresh model folder; ``pids()`` are all its processes."""

    def __init__(self, program: Path, log_dir: Path):
        self.program, self.log_dir = program, log_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 120) -> None:
        folder = PEERS / "models"
        shutil.rmtree(folder, ignore_errors=True)
        (folder / "digits").mkdir(parents=True)
        shutil.copy(RUNTIME, folder / "digits" / RUNTIME.name)
        shutil.copy(PREDICTOR, folder / "digits" / "litert_predictor.py")
        settings = {
            "http_port": self.port,
            "grpc_port": free_port(),
            "metrics_port": free_port(),
            "parallel_workers": MLSERVER_WORKERS,
        }
        model = {
            "name": "digits",
            "implementation": f"{RUNTIME.stem}.DigitsRuntime",
            "parameters": {"uri": str(SHIPPED_LITERT), "version": "1"},
        } | MLSERVER_BATCHING
        (folder / "settings.json").write_text(json.dumps(settings))
        (folder / "digits" / "model-settings.json").write_text(json.dumps(model))
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_dir / "mlserver.log", "ab") as log:
            self.process = subprocess.Popen(
                [str(self.program), "start", str(folder)],
                cwd=folder,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, "PYTHONPATH": ""},  # nothing of the project's
            )
        wait_until_ready(f"{self.url}/v2/models/digits/ready", self.process, self.log_dir / "mlserver.log", timeout)

    def pids(self) -> list[int]:
        return process_tree(self.process.pid)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


class Service:
    """This service as ``make bench`` runs it, with the gRPC server; ``pids()`` are all its processes."""

    def __init__(self, log_dir: Path, workers: int = 2):
        self.log_dir, self.workers = log_dir, workers

    def start(self) -> None:
        self.redis = RedisServer().start()
        self.stack = Stack(self.redis.url, self.log_dir, env={"DIGITS_ADMIN_TOKEN": "bench", "RATE_LIMIT": ""})
        self.stack.start_web(workers=2)
        threads = {"TF_INTRA_OP_THREADS": "1", "TF_INTER_OP_THREADS": "1", "MODEL_BACKEND": "litert"}
        start_workers(self.stack, self.workers, threads, redis.Redis.from_url(self.redis.url))
        self.stack.start_grpc()
        self.url, self.grpc_address = self.stack.web_url, self.stack.grpc_address

    def pids(self) -> list[int]:
        pids = [self.redis.process.pid]
        for process in self.stack.processes.values():
            pids += process_tree(process.pid)
        return pids

    def stop(self) -> None:
        self.stack.stop_all()
        self.redis.close()


def http_load(
    url: str, digits: np.ndarray, labels: np.ndarray, per_request: int, binary: bool, right: Labels
) -> Callable:
    """A run of tritonclient.http clients sending ``per_request`` digits per request (JSON tensors
    both ways unless ``binary``); each answer's labels are counted against MNIST's in ``right``."""
    import tritonclient.http as triton

    address = url.split("//", 1)[1]
    chunks = _chunks(digits, labels, per_request)

    def send(client, i: int) -> tuple[int, int]:
        pixels, expected = chunks[i % len(chunks)]
        tensor = triton.InferInput("pixels", list(pixels.shape), "UINT8")
        tensor.set_data_from_numpy(pixels, binary_data=binary)
        outputs = [triton.InferRequestedOutput(n, binary_data=binary) for n in ("probabilities", "label")]
        got = client.infer("digits", [tensor], outputs=outputs).as_numpy("label")
        return right.checked(got, expected)

    def connect():
        return triton.InferenceServerClient(address, network_timeout=60)

    return lambda clients, seconds: clients_loop(connect, send, clients, seconds, per_request)


def grpc_load(address: str, digits: np.ndarray, labels: np.ndarray, per_request: int, right: Labels) -> Callable:
    """The same through tritonclient.grpc at its defaults (raw tensor contents)."""
    import tritonclient.grpc as triton

    chunks = _chunks(digits, labels, per_request)

    def send(client, i: int) -> tuple[int, int]:
        pixels, expected = chunks[i % len(chunks)]
        tensor = triton.InferInput("pixels", list(pixels.shape), "UINT8")
        tensor.set_data_from_numpy(pixels)
        got = client.infer("digits", [tensor], client_timeout=60).as_numpy("label")
        return right.checked(got, expected)

    return lambda clients, seconds: clients_loop(
        lambda: triton.InferenceServerClient(address), send, clients, seconds, per_request
    )


def _chunks(digits: np.ndarray, labels: np.ndarray, size: int) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(digits[n : n + size], labels[n : n + size]) for n in range(0, len(digits) - size + 1, size)]


class Labels:
    """The labels the answers gave that agree with MNIST's, counted across client threads."""

    def __init__(self):
        self.right = self.answered = 0
        self._lock = threading.Lock()

    def checked(self, got: np.ndarray | None, expected: np.ndarray) -> tuple[int, int]:
        """(images answered, images not), counting how many labels are right."""
        if got is None or got.size != len(expected):
            return 0, len(expected)
        right = int((got.ravel() == expected).sum())
        with self._lock:
            self.right += right
            self.answered += len(expected)
        return len(expected), 0

    def accuracy(self) -> float:
        return self.right / max(self.answered, 1)


def measured(run: Callable[[], Tally], server_pids: Callable[[], list[int]], right: Labels) -> dict:
    """``run()``'s figures, with the load generator's and the server's CPU milliseconds per image
    and the share of labels that agree with MNIST's."""
    right.right = right.answered = 0
    pids = server_pids()
    before_server, before_load = cpu_seconds(pids), cpu_seconds([os.getpid()])
    tally = run()
    server, load = cpu_seconds(pids) - before_server, cpu_seconds([os.getpid()]) - before_load
    summary = tally.summary()
    images = max(summary["images"], 1)
    summary["load_cpu_ms_per_image"] = round(load * 1000 / images, 3)
    summary["server_cpu_ms_per_image"] = round(server * 1000 / images, 3)
    summary["accuracy"] = round(right.accuracy(), 4)
    return summary


def model_cpu_ms_per_image(digits: np.ndarray, seconds: float = 3.0) -> float:
    """CPU milliseconds per image of the model call alone, as both servers make it: LiteRT with one
    thread on batches of 64 (MLServer's ``max_batch_size``). No server can spend less per image."""
    from model.runtimes.litert import LiteRTPredictor

    predictor = LiteRTPredictor(SHIPPED_LITERT.read_bytes(), threads=1)
    batch = digits[:64].astype(np.float32) / 255
    predictor.probabilities(batch)
    count, started, wall = 0, time.process_time(), time.perf_counter()
    while time.perf_counter() - wall < seconds:
        predictor.probabilities(batch)
        count += len(batch)
    return (time.process_time() - started) * 1000 / count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=15, help="length of each saturated run")
    parser.add_argument("--rounds", type=int, default=2, help="times each server is run, alternating")
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    args = parser.parse_args(argv)

    def step(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    step(f"installing MLServer into {MLSERVER_VENV} if needed ({' '.join(MLSERVER)})")
    program = install_mlserver()
    mnist = load_mnist(get_settings().mnist_dir)
    digits, labels = mnist.x_test[:2048], mnist.y_test[:2048].astype(np.int64)
    batch = digits[:256].astype(np.float32) / 255
    limit_runs = [in_process_limit("litert", batch)]
    model_runs = [model_cpu_ms_per_image(digits)]
    results: dict = {
        **provenance(),
        "mlserver": MLSERVER,
        "seconds": args.seconds,
        "rounds": [],
    }

    def seconds_of(clients: int) -> float:
        return args.seconds if clients > 1 else args.seconds * 2 / 3

    for number in range(1, args.rounds + 1):
        for name in ("MLServer", "this service"):
            server = MLServer(program, args.out / "logs") if name == "MLServer" else Service(args.out / "logs")
            step(f"round {number}: starting {name}")
            server.start()
            try:
                runs = []
                right = Labels()
                for workload, per_request, clients in WORKLOADS:
                    load = http_load(server.url, digits, labels, per_request, False, right)
                    load(min(clients, 4), 2)  # warm up every path
                    step(f"round {number}: {name}, JSON tensors, {workload}")
                    figures = measured(lambda: load(clients, seconds_of(clients)), server.pids, right)  # noqa: B023
                    runs.append({"server": name, "tensors": "JSON", "workload": workload, **figures})
                if name == "this service":
                    url, grpc = server.url, server.grpc_address
                    extra = [
                        ("binary", "64 per request, 16 clients", http_load(url, digits, labels, 64, True, right), 16),
                        ("gRPC", "64 per request, 16 clients", grpc_load(grpc, digits, labels, 64, right), 16),
                        ("gRPC", "1 per request, 32 clients", grpc_load(grpc, digits, labels, 1, right), 32),
                    ]
                    for tensors, workload, load, clients in extra:
                        load(4, 2)
                        step(f"round {number}: {name}, {tensors}, {workload}")
                        figures = measured(lambda: load(clients, args.seconds), server.pids, right)  # noqa: B023
                        runs.append({"server": name, "tensors": tensors, "workload": workload, **figures})
                results["rounds"].append({"round": number, "server": name, "runs": runs})
            finally:
                server.stop()

    # The limit is measured at the start and the end, the higher kept: a neighbour's load while it
    # is measured would make every share of it look better than it is.
    limit_runs.append(in_process_limit("litert", batch))
    model_runs.append(model_cpu_ms_per_image(digits))
    results["limit_images_per_s"] = round(max(limit_runs), 1)
    results["model_cpu_ms_per_image"] = round(min(model_runs), 3)
    report(results)
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"peers-{results['date'].replace(':', '')}.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten to {out}")
    return 0


def report(results: dict) -> None:
    limit = results["limit_images_per_s"]
    pins = " ".join(results["mlserver"])
    print(f"\ncommit {results['commit']}, {results['cpus']} CPUs, {results['date']}; MLServer: {pins}")
    print(f"in-process limit (LiteRT, batches of 256): {limit:.0f} images/s")
    model_ms = results["model_cpu_ms_per_image"]
    print(f"the model call alone (LiteRT, one thread, batches of 64): {model_ms:.3f} ms of CPU per image\n")
    header = f"{'round':>5}  {'server':<13} {'tensors':<7} {'workload':<27} {'images/s':>9} {'p50 ms':>7} {'p99 ms':>7}"
    print(header + f" {'load CPU ms/img':>15} {'server CPU ms/img':>17} {'right':>6}  failed")
    for entry in results["rounds"]:
        for run in entry["runs"]:
            lat = run["latency_ms"]
            print(
                f"{entry['round']:>5}  {run['server']:<13} {run['tensors']:<7} {run['workload']:<27}"
                f" {run['images_per_s']:>9.1f} {lat['p50']:>7.1f} {lat['p99']:>7.1f}"
                f" {run['load_cpu_ms_per_image']:>15.3f} {run['server_cpu_ms_per_image']:>17.3f}"
                f" {run['accuracy']:>6.1%}  {run['failed']}"
            )
            for reason, count in run["errors"].items():
                print(f"{'':>8}{count} x {reason}")

    def runs_of(server: str, tensors: str, workload: str) -> list[dict]:
        return [
            run
            for entry in results["rounds"]
            for run in entry["runs"]
            if run["server"] == server and run["tensors"] == tensors and run["workload"] == workload
        ]

    print("\nthis service / MLServer, JSON tensors, round by round (images/s: higher is better; CPU and p50: lower)")
    checks = []
    for workload, _, clients in WORKLOADS:
        ours, theirs = runs_of("this service", "JSON", workload), runs_of("MLServer", "JSON", workload)
        rate = [o["images_per_s"] / max(t["images_per_s"], 1e-9) for o, t in zip(ours, theirs, strict=False)]
        cpu = [
            o["server_cpu_ms_per_image"] / max(t["server_cpu_ms_per_image"], 1e-9)
            for o, t in zip(ours, theirs, strict=False)
        ]
        p50 = [o["latency_ms"]["p50"] / max(t["latency_ms"]["p50"], 1e-9) for o, t in zip(ours, theirs, strict=False)]
        shown = ", ".join
        print(
            f"  {workload:<27} images/s {shown(f'{r:.2f}x' for r in rate)}; server CPU per image"
            f" {shown(f'{c:.2f}x' for c in cpu)}; p50 {shown(f'{p:.2f}x' for p in p50)}"
        )
        if clients > 1:
            checks.append((f"{workload}: images/s not lower than MLServer's", min(rate), 1.0, "{:.2f}x", True))
        if workload in CPU_GOALS:
            goal = CPU_GOALS[workload]
            floor = [model_ms / max(t["server_cpu_ms_per_image"], 1e-9) for t in theirs]
            print(
                f"  {'':<27} the model call alone: {shown(f'{f:.2f}x' for f in floor)} MLServer's server CPU per image"
            )
            checks.append((f"{workload}: server CPU per image <= {goal}x MLServer's", max(cpu), goal, "{:.2f}x", False))
        if clients == 1:
            checks.append((f"{workload}: p50 not higher than MLServer's", max(p50), 1.0, "{:.2f}x", False))
    for tensors in ("binary", "gRPC"):
        shares = [run["images_per_s"] / limit for run in runs_of("this service", tensors, "64 per request, 16 clients")]
        checks.append((f"{tensors} 64 per request >= 70 % of the limit", min(shares), LIMIT_SHARE_GOAL, "{:.1%}", True))
    print("\ngoals (issue 30; the worst round counts):")
    for name, value, goal, fmt, higher in checks:
        met = value >= goal if higher else value <= goal
        print(f"  {'met ' if met else 'MISS'}  {name:<62} measured {fmt.format(value)}")


if __name__ == "__main__":
    sys.exit(main())
