"""Run the whole service on this machine: ``python -m stack`` (what ``make run`` does).

Starts an embedded Redis unless ``REDIS_URL`` is set, one predict worker, one train worker, the
web server under gunicorn and the gRPC server (web/grpc_server.py), prints the addresses, and
stops everything on Ctrl-C. A process that dies is started again (a worker whose lane consumer
died exits for this), unless it keeps dying at once: then the service stops, saying which.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections import Counter
from pathlib import Path

from jobs.connection import redacted
from settings import get_settings
from stack import kept
from stack.processes import PREDICT_QUEUES, Stack
from stack.redis_server import RedisServer

# A process that exits within this many seconds of being started, this many times in a row, is not
# started again: it is failing at start-up (a bad setting, Redis unreachable), not dying by chance.
QUICK_EXIT_S, QUICK_EXITS = 20.0, 5


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    settings = get_settings()
    parser.add_argument("--port", type=int, default=settings.port)
    parser.add_argument("--grpc-port", type=int, default=settings.grpc_port, help="the gRPC server's port")
    parser.add_argument("--predict-workers", type=int, default=1, help="predict worker processes")
    parser.add_argument("--logs", type=Path, default=Path("var/log"))
    args = parser.parse_args(argv)

    redis_server = None
    redis_url = settings.redis_url if "REDIS_URL" in os.environ else None  # given, or ours to start
    if not redis_url:
        data_dir = Path("var/redis")
        data_dir.mkdir(parents=True, exist_ok=True)
        redis_server = RedisServer(appendonly=True, directory=data_dir, maxmemory=settings.redis_maxmemory).start()
        redis_url = redis_server.url
    if settings.digits_api_token and not settings.digits_admin_token:
        print("note: DIGITS_API_TOKEN is deprecated; set DIGITS_ADMIN_TOKEN instead", file=sys.stderr)
    # The token chosen in the environment, else the one kept in var/ since the first start.
    token = settings.admin_token or kept.admin_token()
    # One web and no load balancer to tell: on Ctrl-C it answers its long polls and stops at once
    # (web/draining.py), unless DRAIN_SECONDS says otherwise.
    drain = str(settings.drain_seconds) if "DRAIN_SECONDS" in os.environ else "0"
    stack = Stack(redis_url, args.logs, env={"DIGITS_ADMIN_TOKEN": token, "DRAIN_SECONDS": drain}, keep_logs=True)
    stopping = False

    def stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        for i in range(args.predict_workers):
            stack.start_worker(f"predict{i + 1}", queues=PREDICT_QUEUES)
        stack.start_worker("train1", queues="train")
        url = stack.start_web(port=args.port)
        grpc_address = stack.start_grpc(port=args.grpc_port)
        where = f" (embedded, data in var/redis, at most {settings.redis_maxmemory})" if redis_server else ""
        print(f"Redis       {redacted(redis_url)}{where}", flush=True)
        print("Waiting for the workers to load the model...", flush=True)
        stack.wait_for_workers(args.predict_workers + 1)
        print(f"\nDigits is running at {url}/", flush=True)
        print(
            f"gRPC        {grpc_address}  (the Open Inference Protocol: tritonclient.grpc, perf_analyzer -i grpc)",
            flush=True,
        )
        if settings.admin_token:
            print(f"Admin token {token}  (from the environment)", flush=True)
        else:
            print(f"Admin token {token}  (kept in {kept.TOKEN_FILE}, readable by you only; the same after a restart)")
            print(f"            export DIGITS_ADMIN_TOKEN=$(cat {kept.TOKEN_FILE})  for digits and curl", flush=True)
        rotated = f"moved to <name>.log.1 past {kept.ROTATE_BYTES // 2**20} MiB"
        print(f"Logs        {args.logs}/ (appended to, {rotated})", flush=True)
        print("Ctrl-C stops everything.", flush=True)
        started = dict.fromkeys(stack.processes, time.monotonic())
        quick_exits: Counter[str] = Counter()
        while not stopping:
            for name, status in stack.exited().items():
                quick = time.monotonic() - started[name] < QUICK_EXIT_S
                quick_exits[name] = quick_exits[name] + 1 if quick else 0
                print(f"{name} exited with {status}; see {args.logs}/{name}.log", file=sys.stderr, flush=True)
                if quick_exits[name] >= QUICK_EXITS:
                    print(f"{name} keeps exiting at start-up; stopping", file=sys.stderr, flush=True)
                    return 1
                stack.start_again(name)
                started[name] = time.monotonic()
                print(f"{name} started again", file=sys.stderr, flush=True)
            time.sleep(0.5)
    finally:
        print("\nStopping...", flush=True)
        stack.stop_all()
        if redis_server:
            redis_server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
