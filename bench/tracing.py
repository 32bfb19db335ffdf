"""What tracing costs: the same stack with tracing off, on (every request traced, to a collector
that accepts everything), on with the collector's port dead (nothing listening), and on with a
tenth of the requests traced (TRACE_SAMPLE_RATIO=0.1).

    python -m bench.tracing [--rounds 2] [--seconds 10] [--before main]    # about 2 minutes a round

With ``--before REF``, a fourth mode runs the service as commit REF has it (its files exported
with git archive; tracing off), so "off" is compared with the code before tracing in the same run.
Per mode, on a fresh web (2 processes) and 2 predict workers: light load (20 single images a
second with ?wait=, the latency a user sees) and saturation (32 clients of single images with
?wait=, the throughput). Modes run in turn, round after round, so a neighbour's load falls on
each alike; the best round of each mode is reported beside the others.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from bench.commits import exported
from bench.cpu import cpu_seconds, process_tree
from bench.load import closed_loop, encode_bodies, mnist_test_pngs, open_loop
from stack import processes
from stack.processes import PREDICT_QUEUES, Stack
from stack.redis_server import RedisServer, free_port

MODES = ("off", "on", "dead exporter", "on, 10% traced")


class Sink:
    """A collector that takes every export and keeps only the count (the cost measured is the
    service's, not a collector's)."""

    def __init__(self) -> None:
        sink = self
        self.exports = 0

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                sink.exports += 1
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@contextlib.contextmanager
def code_of(tree: Path | None) -> Iterator[dict]:
    """The environment that runs the service's processes from ``tree`` (None: this checkout)."""
    if tree is None:
        yield {}
        return
    here = processes.ROOT
    processes.ROOT = tree  # the processes' working directory (gunicorn puts it first on sys.path)
    try:
        yield {"PYTHONPATH": str(tree)}
    finally:
        processes.ROOT = here


def run_mode(
    server: RedisServer, env: dict, singles: list[bytes], seconds: float, out: Path, tree: Path | None = None
) -> dict:
    with code_of(tree) as code:
        return _measure(server, env | code, singles, seconds, out)


def _measure(server: RedisServer, env: dict, singles: list[bytes], seconds: float, out: Path) -> dict:
    stack = Stack(server.url, out, env={"DIGITS_API_TOKEN": "bench", "RATE_LIMIT": "", **env})
    try:
        stack.start_web(workers=2)
        for n in range(2):
            stack.start_worker(f"bench{n}", queues=PREDICT_QUEUES, env={"TF_INTRA_OP_THREADS": "1"})
        stack.wait_for_workers(2)
        closed_loop(stack.web_url, singles, 4, 3, 1, wait=10)  # warm up
        light = open_loop(stack.web_url, singles, 20, seconds, wait=10).summary()
        # CPU per image says what tracing costs even when neighbours make the latencies noisy.
        groups = {
            "web": process_tree(stack.processes["web"].pid),
            "workers": [p for name, proc in stack.processes.items() if name != "web" for p in process_tree(proc.pid)],
        }
        before = {name: cpu_seconds(pids) for name, pids in groups.items()}
        saturated = closed_loop(stack.web_url, singles, 32, seconds, 1, wait=10).summary()
        images = max(saturated["images"], 1)
        cpu = {name: round((cpu_seconds(pids) - before[name]) * 1000 / images, 3) for name, pids in groups.items()}
    finally:
        stack.stop_all()
    return {
        "web_cpu_ms_per_image": cpu["web"],
        "worker_cpu_ms_per_image": cpu["workers"],
        "light_p50_ms": light["latency_ms"]["p50"],
        "light_p99_ms": light["latency_ms"]["p99"],
        "single_wait_images_per_s": saturated["images_per_s"],
        "single_wait_p50_ms": saturated["latency_ms"]["p50"],
        "failed": light["failed"] + saturated["failed"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    parser.add_argument("--before", metavar="REF", help="also run commit REF's service (tracing off)")
    args = parser.parse_args(argv)
    singles = encode_bodies(mnist_test_pngs(1024), 1)
    sink = Sink()
    fast_export = {"OTEL_BSP_SCHEDULE_DELAY": "500"}
    envs = {
        "off": {},
        "on": {"OTEL_EXPORTER_OTLP_ENDPOINT": sink.url, **fast_export},
        "dead exporter": {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{free_port()}", **fast_export},
        "on, 10% traced": {"OTEL_EXPORTER_OTLP_ENDPOINT": sink.url, "TRACE_SAMPLE_RATIO": "0.1", **fast_export},
    }
    modes = list(MODES)
    scratch = tempfile.TemporaryDirectory(prefix="bench-before-")
    trees: dict[str, Path | None] = dict.fromkeys(modes)
    if args.before:
        before = f"before ({args.before})"
        modes.insert(0, before)
        envs[before], trees[before] = {}, exported(args.before, Path(scratch.name))
    runs: dict[str, list[dict]] = {mode: [] for mode in modes}
    server = RedisServer().start()
    try:
        for round_ in range(args.rounds):
            for mode in modes:
                print(f"[{time.strftime('%H:%M:%S')}] round {round_ + 1}: tracing {mode}", file=sys.stderr, flush=True)
                logs = args.out / "tracing-logs"
                runs[mode].append(run_mode(server, envs[mode], singles, args.seconds, logs, trees[mode]))
                print(json.dumps(runs[mode][-1]), file=sys.stderr, flush=True)
    finally:
        server.close()
        scratch.cleanup()
    best = {mode: max(found, key=lambda r: r["single_wait_images_per_s"]) for mode, found in runs.items()}
    results = {"runs": runs, "best": best, "exports_received": sink.exports}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "tracing.json").write_text(json.dumps(results, indent=2))
    print(
        f"{'tracing':<20} {'light p50 ms':>12} {'light p99 ms':>12} {'images/s':>10} {'sat. p50 ms':>11}"
        f" {'web CPU ms/img':>14} {'worker CPU ms/img':>17}"
    )
    for mode, runs_of_mode in runs.items():
        for run in runs_of_mode:
            print(
                f"{mode:<20} {run['light_p50_ms']:>12} {run['light_p99_ms']:>12}"
                f" {run['single_wait_images_per_s']:>10} {run['single_wait_p50_ms']:>11}"
                f" {run['web_cpu_ms_per_image']:>14} {run['worker_cpu_ms_per_image']:>17}"
            )
    print(f"exports the live collector received: {sink.exports}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
