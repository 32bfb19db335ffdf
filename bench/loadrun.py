"""A bounded load run against a private stack, with a worker host lost and one joining midway.

    python -m bench.loadrun                       # 20,000 jobs from 32 clients, 3 worker hosts
    python -m bench.loadrun --jobs 2000 --no-chaos

Prints accepted, completed, failed and lost job counts; lost must be 0. Only talks to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import redis

from bench.load import Client, HttpError, encode_bodies, mnist_test_pngs
from jobs import keys
from jobs.schemas import TERMINAL
from stack.processes import PREDICT_QUEUES, Stack
from stack.redis_server import RedisServer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--hosts", type=int, default=3, help="worker processes, each with its own --hostname")
    parser.add_argument("--no-chaos", action="store_true", help="do not kill a host and add one midway")
    parser.add_argument("--logs", type=Path, default=Path("bench-results/loadrun-logs"))
    args = parser.parse_args(argv)

    bodies = encode_bodies(mnist_test_pngs(1000), 1)

    server = RedisServer(appendonly=True).start()
    client = redis.Redis.from_url(server.url)
    stack = Stack(server.url, args.logs, env={"BROKER_VISIBILITY_TIMEOUT": "10", "RATE_LIMIT": ""})
    accepted: list[str] = []
    refused: Counter[str] = Counter()
    deferred: Counter[str] = Counter()  # answers that said "later" (Retry-After), then sent again
    lock = threading.Lock()
    reserved = [0]  # jobs claimed by a sender, so the run sends exactly --jobs
    try:
        for n in range(args.hosts):
            stack.start_worker(f"host{n + 1}", queues=PREDICT_QUEUES, pool="solo")
        stack.start_web()
        stack.wait_for_workers(args.hosts)
        print(f"stack up: {args.hosts} worker hosts; sending {args.jobs} jobs from {args.clients} clients", flush=True)

        def send(offset: int) -> None:
            http = Client(stack.web_url)
            i = offset
            while True:
                with lock:
                    if reserved[0] >= args.jobs:
                        return
                    reserved[0] += 1
                while True:
                    try:
                        job_id = http.submit(bodies[i % len(bodies)])["jobs"][0]["job_id"]
                        with lock:
                            accepted.append(job_id)
                        break
                    except HttpError as exc:
                        if exc.retry_after is None:  # refused for good: counted, not retried
                            with lock:
                                refused[str(exc.status)] += 1
                            break
                        with lock:  # backpressure (429 too many pending, 503): wait as told, send again
                            deferred[str(exc.status)] += 1
                        time.sleep(exc.retry_after)
                    except OSError as exc:
                        with lock:
                            refused[type(exc).__name__] += 1
                        http = Client(stack.web_url)
                        break
                i += args.clients

        started = time.monotonic()
        senders = [threading.Thread(target=send, args=(n,)) for n in range(args.clients)]
        for thread in senders:
            thread.start()
        killed_at, before_kill = chaos(stack, args, accepted) if not args.no_chaos else (None, 0)
        for thread in senders:
            thread.join()
        print(
            f"all {len(accepted)} accepted in {time.monotonic() - started:.1f} s; waiting for them to end", flush=True
        )

        statuses = wait_until_ended(client, accepted, timeout=600)
        elapsed = time.monotonic() - started
        counts = Counter(statuses)
        lost = sum(1 for s in statuses if s not in TERMINAL)
        workers = Counter(
            (w or b"?").decode().split("@")[0] for w in pipeline_get(client, accepted, "worker")
        )  # fmt: skip
        print(f"\naccepted  {len(accepted)}   (refused {sum(refused.values())}: {dict(refused)}; "
              f"told to retry later and sent again: {dict(deferred)})")  # fmt: skip
        print(f"completed {counts['succeeded']}")
        print(f"failed    {counts['failed']}")
        print(f"lost      {lost}")
        print(
            f"in {elapsed:.1f} s ({len(accepted) / elapsed:.0f} jobs/s); jobs per host: {dict(sorted(workers.items()))}"
        )
        if killed_at is not None:
            report_failover(client, accepted, killed_at, before_kill)
        return 0 if lost == 0 else 1
    finally:
        stack.stop_all()
        server.close()


def chaos(stack: Stack, args, accepted: list[str]) -> tuple[float, int]:
    """Kill one host a third of the way through and start a new one at two thirds; return the
    time of the kill (seconds since the epoch) and how many jobs had been accepted by then."""
    killed_at, before_kill = 0.0, 0
    for fraction, action in ((1 / 3, "kill"), (2 / 3, "join")):
        while len(accepted) < args.jobs * fraction:
            time.sleep(0.05)
        if action == "kill":
            print(f"killing host1 (SIGKILL) after {len(accepted)} jobs", flush=True)
            killed_at, before_kill = time.time(), len(accepted)
            stack.stop("host1", signal.SIGKILL)
        else:
            print(f"host{args.hosts + 1} joins after {len(accepted)} jobs", flush=True)
            stack.start_worker(f"host{args.hosts + 1}", queues=PREDICT_QUEUES, pool="solo")
    return killed_at, before_kill


def report_failover(client: redis.Redis, job_ids: list[str], killed_at: float, before_kill: int) -> None:
    """How long after the kill the jobs accepted before it ended, and those started twice (the
    killed host was reading them)."""
    deliveries = pipeline_get(client, job_ids, "deliveries")
    finished = [float(f or 0) - killed_at for f in pipeline_get(client, job_ids, "finished_at")]
    print(f"jobs accepted before the kill: the last ended {max(finished[:before_kill]):.1f} s after the kill")
    again = [f for d, f in zip(deliveries, finished, strict=True) if d and int(d) > 1]
    if again:
        print(f"started again after the kill: {len(again)} jobs; the last ended {max(again):.1f} s after the kill")


def pipeline_get(client: redis.Redis, job_ids: list[str], field: str) -> list[bytes | None]:
    pipe = client.pipeline(transaction=False)
    for job_id in job_ids:
        pipe.hget(keys.job(job_id), field)
    return pipe.execute()


def wait_until_ended(client: redis.Redis, job_ids: list[str], timeout: float) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        statuses = [(s or b"missing").decode() for s in pipeline_get(client, job_ids, "status")]
        if all(s in TERMINAL for s in statuses) or time.monotonic() > deadline:
            return statuses
        time.sleep(1)


if __name__ == "__main__":
    sys.exit(main())
