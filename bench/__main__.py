"""Throughput and latency of the whole service on this machine, against the in-process limit.

    python -m bench                 # about 2.5 minutes; figures printed and written to bench-results/

In one run: the direct batched model call (the limit), then a real stack (private redis-server,
gunicorn, Celery workers) driven over HTTP: light load latency, single-image jobs from 32
clients (submit then poll, and one request each with ?wait=), 256-image batch requests, the
same through real clients (requests with multipart uploads; tritonclient over the Open
Inference Protocol), the seed notebook's way (one image at a time, predict() for each), and the
other model backend. Every service figure is also given as a share of the limit (of the backend
served, MODEL_BACKEND unless --backend says), with the CPU each part spent per image (the load
generator's apart) and the Redis commands per image.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import redis

from bench.cpu import cpu_seconds, process_tree
from bench.load import closed_loop, encode_bodies, open_loop, png
from bench.provenance import provenance
from bench.real_clients import requests_multipart, triton_pixels
from jobs import keys, workers
from model.mnist import load_mnist
from model.shipped import SHIPPED_LITERT, SHIPPED_MODEL
from settings import get_settings
from stack.processes import PREDICT_QUEUES, Stack
from stack.redis_server import RedisServer

BACKENDS = ("litert", "tensorflow")
TARGETS = {
    "batch_share_of_limit": 0.50,
    "single_images_per_s": 500,
    "single_wait_images_per_s": 800,
    "single_wait_over_poll": 2.0,
    "light_p50_ms": 8,
    "light_p99_ms": 30,
    "multipart_batch_share_of_limit": 0.60,
    "triton_share_of_limit": 0.50,
    "speedup_over_naive": 20,
    "rss_mb": {"litert": 200, "tensorflow": 800},
}
# Clients of the tritonclient run: 1,024 images in flight in requests of 64, as the batch runs hold
# (4 clients x 256), so that the paths are compared at the same load.
TRITON_CLIENTS = 16


def in_process_limit(backend: str, images: np.ndarray, seconds: float = 3.0) -> float:
    """Images per second of the direct model call on batches of 256 (no queue, no HTTP)."""
    if backend == "litert":
        from model.runtimes.litert import LiteRTPredictor

        predictor = LiteRTPredictor(SHIPPED_LITERT.read_bytes())
    else:
        from model.runtimes.keras_predictor import KerasPredictor

        predictor = KerasPredictor.from_file(SHIPPED_MODEL)
    batch = images[:256]
    predictor.probabilities(batch)
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        predictor.probabilities(batch)
        count += len(batch)
    return count / (time.perf_counter() - started)


def with_cpu(run, stack: Stack, server: RedisServer) -> dict:
    """Run ``run()`` (a load run returning a Tally) and add the CPU milliseconds each part of the
    service spent per image: where the time goes when the figure falls short."""
    groups = {
        "web": process_tree(stack.processes["web"].pid),
        "workers": [p for name, proc in stack.processes.items() if name != "web" for p in process_tree(proc.pid)],
        "redis": [server.process.pid],
        "load generator": [os.getpid()],
    }
    redis_client = redis.Redis.from_url(server.url)
    commands_before = redis_client.info("stats")["total_commands_processed"]
    before = {name: cpu_seconds(pids) for name, pids in groups.items()}
    summary = run().summary()
    images = max(summary["images"], 1)
    summary["cpu_ms_per_image"] = {
        name: round((cpu_seconds(pids) - before[name]) * 1000 / images, 3) for name, pids in groups.items()
    }
    commands = redis_client.info("stats")["total_commands_processed"] - commands_before
    summary["redis_commands_per_image"] = round(commands / images, 2)
    return summary


def worker_memory(client: redis.Redis) -> list[float]:
    """Resident MB of each model-holding worker process, as its heartbeat reports it."""
    return [round(worker.rss_bytes / 2**20, 1) for worker in workers.live(client) if worker.predicts]


def start_workers(stack: Stack, count: int, env: dict, client: redis.Redis, pool: str = "solo") -> float:
    """Start ``count`` predict workers (solo pool, as ``make run`` does: the model call runs in the
    consuming process, and messages that arrive meanwhile form the next batch); return seconds
    until all have loaded the model."""
    client.delete(keys.WORKERS)
    started = time.perf_counter()
    for n in range(count):
        stack.start_worker(f"bench{n}", queues=PREDICT_QUEUES, pool=pool, env=env)
    stack.wait_for_workers(count)
    return time.perf_counter() - started


def stop_workers(stack: Stack) -> None:
    for name in [n for n in stack.processes if n != "web"]:
        stack.stop(name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # One solo worker per core, one model thread each: while one worker decodes images in Python
    # the other computes. (1 worker with the backend's own thread choice: --workers 1 --threads 0.)
    parser.add_argument("--workers", type=int, default=2, help="predict worker processes")
    parser.add_argument("--threads", type=int, default=1, help="model threads per worker (0: the backend decides)")
    parser.add_argument("--backend", choices=BACKENDS, default=get_settings().model_backend, help="the one served")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=12, help="length of each saturation run")
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    args = parser.parse_args(argv)
    other = next(b for b in BACKENDS if b != args.backend)

    mnist = load_mnist(get_settings().mnist_dir)
    pngs = [png(x) for x in mnist.x_test[:1024]]
    singles, batches = encode_bodies(pngs, 1), encode_bodies(pngs, 256)
    images = mnist.x_test[:256].astype(np.float32) / 255
    threads = {"TF_INTRA_OP_THREADS": str(args.threads), "TF_INTER_OP_THREADS": "1" if args.threads else "0"}
    results: dict = {
        **provenance(),
        "settings": vars(args) | {"out": str(args.out)},
        "start_s": {},
        "rss_mb": {},
    }

    def step(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    step("in-process limit (direct model call, batches of 256)")
    # Measured at the start and again at the end, the higher one kept: a neighbour's load while
    # it is measured would otherwise make every share of it look better than it is.
    results["limit_runs"] = {b: [round(in_process_limit(b, images), 1)] for b in BACKENDS}

    server = RedisServer().start()
    client = redis.Redis.from_url(server.url)
    # No rate limit: the benchmark is one client (127.0.0.1) sending hundreds of requests a second.
    stack = Stack(server.url, args.out / "logs", env={"DIGITS_ADMIN_TOKEN": "bench", "RATE_LIMIT": ""})
    try:
        step(f"starting gunicorn and {args.workers} {args.backend} worker(s)")
        stack.start_web(workers=2)
        env = threads | {"MODEL_BACKEND": args.backend}
        results["start_s"][args.backend] = round(start_workers(stack, args.workers, env, client), 1)
        closed_loop(stack.web_url, singles, 4, 3, 1)  # warm up every path

        step("light load: 20 single-image jobs per second for 10 s, submit then poll, then ?wait=")
        results["light"] = open_loop(stack.web_url, singles, 20, 10).summary()
        results["light_wait"] = open_loop(stack.web_url, singles, 20, 10, wait=10).summary()
        step(f"single-image jobs, {args.clients} clients: submit then poll, then ?wait=")
        results["single"] = with_cpu(
            lambda: closed_loop(stack.web_url, singles, args.clients, args.seconds, 1), stack, server
        )
        results["single_wait"] = with_cpu(
            lambda: closed_loop(stack.web_url, singles, args.clients, args.seconds, 1, wait=10), stack, server
        )
        step("batch requests of 256 images, 4 clients")
        results["batch"] = with_cpu(lambda: closed_loop(stack.web_url, batches, 4, args.seconds, 256), stack, server)
        step(
            "real clients: requests (multipart, ?wait=), single images and batches of 256;"
            f" tritonclient, {TRITON_CLIENTS} clients"
        )
        results["requests_single"] = with_cpu(
            lambda: requests_multipart(stack.web_url, pngs, args.clients, args.seconds, 1), stack, server
        )
        results["requests_batch"] = with_cpu(
            lambda: requests_multipart(stack.web_url, pngs, 4, args.seconds, 256), stack, server
        )
        # As many images in flight as the batch runs above (4 clients x 256), in requests of 64.
        results["triton_batch"] = with_cpu(
            lambda: triton_pixels(stack.web_url, mnist.x_test[:1024], TRITON_CLIENTS, args.seconds, 64), stack, server
        )
        results["rss_mb"][args.backend] = worker_memory(client)

        step("the seed notebook's way: one job at a time, model.predict() for each")
        stop_workers(stack)
        stack._spawn("naive", [sys.executable, "-m", "bench.naive_worker"])
        closed_loop(stack.web_url, singles, 1, 0.1, 1)  # returns once the worker answers its first job
        results["naive"] = closed_loop(stack.web_url, singles, args.clients, 10, 1).summary()
        stop_workers(stack)

        step(f"the other backend, {other}: {args.workers} worker(s)")
        other_env = threads | {"MODEL_BACKEND": other}
        results["start_s"][other] = round(start_workers(stack, args.workers, other_env, client), 1)
        closed_loop(stack.web_url, singles, 4, 2, 1)
        results["other_single"] = with_cpu(
            lambda: closed_loop(stack.web_url, singles, args.clients, args.seconds / 2, 1, wait=10), stack, server
        )
        results["other_batch"] = closed_loop(stack.web_url, batches, 4, args.seconds / 2, 256).summary()
        results["rss_mb"][other] = worker_memory(client)
    finally:
        stack.stop_all()
        server.close()

    step("in-process limit again")
    for backend, runs in results["limit_runs"].items():
        runs.append(round(in_process_limit(backend, images), 1))
    results["limit_images_per_s"] = {b: max(runs) for b, runs in results["limit_runs"].items()}
    report(results, results["limit_images_per_s"][args.backend])
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"bench-{results['date'].replace(':', '')}.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "latest.json").write_text(out.read_text())
    print(f"\nwritten to {out}")
    return 0


def report(r: dict, limit: float) -> None:
    served = r["settings"]["backend"]
    other = next(b for b in BACKENDS if b != served)

    def row(name: str, figures: dict, of: float = limit) -> None:
        lat = figures["latency_ms"]
        share = figures["images_per_s"] / of
        print(
            f"{name:<34} {figures['images_per_s']:>9.1f} {share:>8.1%}  "
            f"p50 {lat['p50']:>7.1f}  p90 {lat['p90']:>7.1f}  p99 {lat['p99']:>7.1f}  failed {figures['failed']}"
        )
        for reason, count in figures["errors"].items():
            print(f"{'':<36}{count} x {reason}")
        if "cpu_ms_per_image" in figures:
            parts = ", ".join(f"{name} {ms:.2f}" for name, ms in figures["cpu_ms_per_image"].items())
            total = sum(figures["cpu_ms_per_image"].values())
            print(f"{'':<36}CPU ms per image: {parts} (total {total:.2f}, {r['cpus']} CPUs)")
            print(f"{'':<36}Redis commands per image: {figures['redis_commands_per_image']}")

    limits = r["limit_images_per_s"]
    print(f"\ncommit {r['commit']}, {r['cpus']} CPUs, {r['settings']['workers']} {served} worker(s), {r['date']}")
    runs = {b: " and ".join(f"{v:.0f}" for v in r["limit_runs"][b]) for b in BACKENDS}
    print(
        f"in-process limit (batch 256, the higher of the run's start and end): {served} {limit:.0f} images/s"
        f" (shares below; {runs[served]}), {other} {limits[other]:.0f} ({runs[other]})"
    )
    print(f"\n{'run':<34} {'images/s':>9} {'of limit':>8}  latency ms (request to result)")
    clients = r["settings"]["clients"]
    row("light load, 20 jobs/s, poll", r["light"])
    row("light load, 20 jobs/s, ?wait=", r["light_wait"])
    row(f"single images, {clients} clients, poll", r["single"])
    row(f"single images, {clients} clients, ?wait=", r["single_wait"])
    row("batches of 256, 4 clients", r["batch"])
    row(f"requests multipart, {clients} clients", r["requests_single"])
    row("requests multipart 256, 4 clients", r["requests_batch"])
    row(f"tritonclient v2, 64 per request, {TRITON_CLIENTS}", r["triton_batch"])
    row(f"seed-notebook way, {clients} clients", r["naive"])
    row(f"{other} single images, ?wait=", r["other_single"], limits[other])
    row(f"{other} batches of 256", r["other_batch"], limits[other])
    speedup = r["batch"]["images_per_s"] / max(r["naive"]["images_per_s"], 1e-9)
    print(f"\nworker start (spawn to model loaded): {served} {r['start_s'][served]} s, {other} {r['start_s'][other]} s")
    print(f"worker resident memory (MB): {served} {r['rss_mb'][served]}, {other} {r['rss_mb'][other]}")

    t = TARGETS
    wait_gain = r["single_wait"]["images_per_s"] / max(r["single"]["images_per_s"], 1e-9)
    multipart_share = r["requests_batch"]["images_per_s"] / limit
    triton_share = r["triton_batch"]["images_per_s"] / limit
    checks = [
        ("batch jobs >= 50 % of the limit", r["batch"]["images_per_s"] / limit, t["batch_share_of_limit"], "{:.1%}"),
        ("single images >= 500/s (32 clients)", r["single"]["images_per_s"], t["single_images_per_s"], "{:.0f}/s"),
        ("single ?wait= >= 800/s", r["single_wait"]["images_per_s"], t["single_wait_images_per_s"], "{:.0f}/s"),
        ("single ?wait= >= 2x submit-then-poll", wait_gain, t["single_wait_over_poll"], "{:.2f}x"),
        ("light ?wait= p50 <= 8 ms", -r["light_wait"]["latency_ms"]["p50"], -t["light_p50_ms"], "{:.1f} ms"),
        ("light ?wait= p99 <= 30 ms", -r["light_wait"]["latency_ms"]["p99"], -t["light_p99_ms"], "{:.1f} ms"),
        ("multipart 256 >= 60 % of the limit", multipart_share, t["multipart_batch_share_of_limit"], "{:.1%}"),
        ("tritonclient >= 50 % of the limit", triton_share, t["triton_share_of_limit"], "{:.1%}"),
        ("batch >= 20x the seed-notebook way", speedup, t["speedup_over_naive"], "{:.1f}x"),
    ]
    checks += [
        (f"{b} worker < {t['rss_mb'][b]} MB", -max(r["rss_mb"][b]), -t["rss_mb"][b], "{:.0f} MB") for b in BACKENDS
    ]
    print("\ntargets:")
    for name, value, target, fmt in checks:
        shown = fmt.format(abs(value) if "MB" in fmt or "ms" in fmt else value)
        print(f"  {'met ' if value >= target else 'MISS'}  {name:<40} measured {shown}")
    r["speedup_over_naive"] = round(speedup, 1)


if __name__ == "__main__":
    sys.exit(main())
