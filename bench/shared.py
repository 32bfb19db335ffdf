"""A shared service under stress: what a polite client sees while another client misbehaves.

    python -m bench.shared            # make bench-shared; about two minutes

One run, on a private stack (redis-server, gunicorn with 2 processes, 2 solo predict workers, as
docker-compose runs it): a polite client (the ``requests`` library, one multipart image at a time,
submit then long-poll, as the README's curl does it) and a /healthz probe, first alone, then
while another client (another address, 127.0.0.2) misbehaves: holding ``--polls`` long polls
open (each answered one sent again at once); having sent ``--hostile-images`` hostile-but-valid
images (4000x4000 transparent PNGs, as costly as the limits allow); keeping a bulk backlog of at
least ``--backlog`` images queued; and the attacks of issue 29: ``?wait=`` of 8,000 digits and an
``x`` (a regex once backtracked seconds on it), a 1x2 TIFF declaring 400,000 strips and a JPEG of
100,000 APP segments (Pillow's open walks each), each sent again as soon as it is answered, and
``--batch-polls`` long polls on three 1,000-job batches that end a few jobs at a time (Redis's CPU
is reported). Prints each figure with its goal, the web's memory, Redis's CPU, and the CPU the
load generators spent, so the service's cost can be told from theirs.
"""

from __future__ import annotations

import argparse
import io
import os
import selectors
import socket
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self
from urllib.parse import urlsplit

import numpy as np
import redis
import requests
from PIL import Image

from bench.cpu import cpu_seconds, process_tree
from bench.hostile_files import jpeg_with_app_segments, tiff_with_strips
from bench.load import mnist_test_pngs
from jobs import keys
from jobs import records as rec
from jobs.records import JobRecords
from stack.processes import PREDICT_QUEUES, Stack
from stack.redis_server import RedisServer

TOKEN = "bench"
TIFF = tiff_with_strips(400_000)  # 3.2 MB: under MAX_IMAGE_BYTES
JPEG = jpeg_with_app_segments(100_000)  # 400 KB


@dataclass
class Latencies:
    """Milliseconds of each attempt, and the attempts that failed."""

    ms: list[float] = field(default_factory=list)
    failed: int = 0

    def quantile(self, q: float) -> float:
        return float(np.percentile(self.ms, q)) if self.ms else float("nan")

    def line(self) -> str:
        qs = "  ".join(f"p{q} {self.quantile(q):7.1f}" for q in (50, 90, 99))
        return f"{qs}  max {max(self.ms, default=float('nan')):7.1f}  n {len(self.ms)}  failed {self.failed}"


def polite_client(base: str, image: bytes, seconds: float, every_s: float = 0.1) -> Latencies:
    """One image at a time, each submitted as a multipart upload and waited for, with ``requests``."""
    session, got = requests.Session(), Latencies()
    stop_at = time.monotonic() + seconds
    while time.monotonic() < stop_at:
        started = time.perf_counter()
        try:
            accepted = session.post(f"{base}/api/v1/predictions", files={"image": image}, timeout=60)
            job_url = base + accepted.json()["jobs"][0]["status_url"]
            while (job := session.get(job_url, params={"wait": 10}, timeout=60).json())["status"] in (
                "queued",
                "running",
            ):
                pass
            if job["status"] != "succeeded":
                raise RuntimeError(job["status"])
            got.ms.append((time.perf_counter() - started) * 1000)
        except Exception:
            got.failed += 1
        time.sleep(max(0.0, every_s - (time.perf_counter() - started)))
    return got


def health_probe(base: str, seconds: float, every_s: float = 0.05) -> Latencies:
    session, got = requests.Session(), Latencies()
    stop_at = time.monotonic() + seconds
    while time.monotonic() < stop_at:
        started = time.perf_counter()
        try:
            session.get(f"{base}/healthz", timeout=60).raise_for_status()
            got.ms.append((time.perf_counter() - started) * 1000)
        except Exception:
            got.failed += 1
        time.sleep(max(0.0, every_s - (time.perf_counter() - started)))
    return got


class Background:
    """Load that ``threads`` threads make from the start of a ``with`` to its end: each runs
    ``_run``, which returns once ``stopping`` is set."""

    def __init__(self, threads: int = 1):
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def __enter__(self) -> Self:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join()

    def _run(self) -> None:
        raise NotImplementedError


class LongPolls(Background):
    """``count`` long polls held open from ``source``: each answered one is sent again at once."""

    def __init__(self, base: str, path: str, count: int, source: str = "127.0.0.2"):
        super().__init__()
        address = urlsplit(base)
        self.target, self.path, self.count, self.source = (address.hostname, address.port), path, count, source
        self.selector = selectors.DefaultSelector()
        self.answered = self.errors = 0

    def __enter__(self) -> Self:
        for _ in range(self.count):
            self._open()
        return super().__enter__()

    def __exit__(self, *_) -> None:
        super().__exit__()
        for key in list(self.selector.get_map().values()):
            key.fileobj.close()

    def _open(self) -> None:
        sock = socket.create_connection(self.target, timeout=10, source_address=(self.source, 0))
        sock.sendall(f"GET {self.path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n".encode())
        sock.setblocking(False)
        self.selector.register(sock, selectors.EVENT_READ)

    def _run(self) -> None:
        while not self.stopping.is_set():
            for key, _ in self.selector.select(timeout=0.2):
                sock = key.fileobj
                try:
                    if sock.recv(65536):
                        continue
                except OSError:
                    self.errors += 1
                self.selector.unregister(sock)
                sock.close()
                self.answered += 1
                if not self.stopping.is_set():
                    self._open()


def measure(base: str, image: bytes, seconds: float) -> dict[str, Latencies]:
    """The polite client and the health probe, side by side for ``seconds``."""
    results: dict[str, Latencies] = {}
    threads = [
        threading.Thread(target=lambda: results.__setitem__("polite image", polite_client(base, image, seconds))),
        threading.Thread(target=lambda: results.__setitem__("healthz", health_probe(base, seconds))),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def resident_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def transparent_png(side: int) -> bytes:
    """Hostile but valid: side x side fully transparent pixels, costly to read, a few hundred kB."""
    buffer = io.BytesIO()
    Image.new("RGBA", (side, side), (0, 0, 0, 0)).save(buffer, format="PNG")
    return buffer.getvalue()


def hostile_session(source: str = "127.0.0.2") -> requests.Session:
    """HTTP from another loopback address: another client, as the web sees it."""

    class FromSource(requests.adapters.HTTPAdapter):
        def init_poolmanager(self, *args, **kwargs):
            kwargs["source_address"] = (source, 0)
            super().init_poolmanager(*args, **kwargs)

    session = requests.Session()
    session.mount("http://", FromSource())
    return session


class BulkBacklog(Background):
    """Another client keeping at least ``floor`` images queued: 500-image requests whenever its
    backlog drops below that, waiting out its 429s as told."""

    def __init__(self, base: str, images: list[bytes], floor: int, redis_url: str, source: str = "127.0.0.2"):
        super().__init__()
        self.base, self.images, self.floor, self.source = base, images, floor, source
        self.client = redis.Redis.from_url(redis_url)
        self.session = hostile_session(source)
        self.sent = self.refused = 0
        self.backlog_seen: list[int] = []

    def backlog(self) -> int:
        return int(self.client.get(keys.pending(self.source)) or 0)

    def __enter__(self) -> Self:
        super().__enter__()
        while self.backlog() < self.floor and self.threads[0].is_alive():
            time.sleep(0.1)
        return self

    def _run(self) -> None:
        files = [("image", self.images[i % len(self.images)]) for i in range(500)]
        while not self.stopping.is_set():
            backlog = self.backlog()
            self.backlog_seen.append(backlog)
            if backlog >= self.floor + 500:
                time.sleep(0.05)
                continue
            answer = self.session.post(f"{self.base}/api/v1/predictions", files=files, timeout=60)
            if answer.status_code == 202:
                self.sent += 500
            else:
                self.refused += 1
                time.sleep(float(answer.headers.get("Retry-After", "1")))


class Repeated(Background):
    """Another client sending one request again as soon as it is answered, on ``threads``
    connections; the answers' latencies and statuses are kept."""

    def __init__(self, send, threads: int = 2):
        super().__init__(threads)
        self.send, self.latencies, self.statuses = send, Latencies(), Counter()

    def _run(self) -> None:
        session = hostile_session()
        while not self.stopping.is_set():
            started = time.perf_counter()
            try:
                self.statuses[self.send(session).status_code] += 1
                self.latencies.ms.append((time.perf_counter() - started) * 1000)
            except requests.RequestException:
                self.latencies.failed += 1


class EndingBatches(Background):
    """Three batches of 1,000 jobs of 127.0.0.2's, recorded straight in Redis (in no lane, so no
    worker takes them) and ended ``per_tick`` jobs of each every ``tick_s`` by this thread, as
    workers would: long polls on them are woken by every one of those finishes."""

    def __init__(self, redis_url: str, per_tick: int = 2, tick_s: float = 0.05, size: int = 1000):
        super().__init__()
        self.records = JobRecords(redis.Redis.from_url(redis_url))
        self.batches = []
        for _ in range(3):
            batch_id = rec.new_job_id()
            self.batches.append((batch_id, self.records.create("predict", size, batch_id=batch_id).ids))
        self.per_tick, self.tick_s, self.notices = per_tick, tick_s, 0

    def _run(self) -> None:
        done = 0
        size = len(self.batches[0][1])
        while not self.stopping.is_set() and done + self.per_tick < size:  # the last jobs of each never end
            for _, ids in self.batches:
                ended = ids[done : done + self.per_tick]
                self.records.finish([rec.Outcome(job_id, rec.SUCCEEDED, result={"label": 0}) for job_id in ended])
                self.notices += 1
            done += self.per_tick
            time.sleep(self.tick_s)


def redis_cpu_seconds(client: redis.Redis) -> float:
    cpu = client.info("cpu")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--polls", type=int, default=500, help="long polls the hostile client holds")
    parser.add_argument("--hostile-images", type=int, default=64, help="hostile-but-valid images it sends")
    parser.add_argument("--backlog", type=int, default=5000, help="images the bulk client keeps queued")
    parser.add_argument("--batch-polls", type=int, default=500, help="long polls on three 1,000-job batches")
    parser.add_argument("--seconds", type=float, default=15, help="length of each measurement")
    parser.add_argument("--only", default="", help="run only the scenarios whose name holds this (and alone)")
    parser.add_argument("--logs", type=Path, default=Path("bench-results/shared-logs"))
    args = parser.parse_args(argv)

    pngs = mnist_test_pngs(200)
    image = pngs[0]
    # 1750 x 1750 RGBA: a working set of 21 bytes a pixel, just under MAX_DECODED_BYTES (a larger one fails at once)
    hostile = transparent_png(1750)
    server = RedisServer(maxmemory="1gb").start()  # as docker-compose runs it: the caps are checked against it
    redis_client = redis.Redis.from_url(server.url)
    one_thread = {"TF_INTRA_OP_THREADS": "1", "TF_INTER_OP_THREADS": "1"}
    # The bulk client keeps its backlog above the default pending-jobs limit of one client.
    room = {"MAX_PENDING_PER_CLIENT": str(2 * args.backlog + 1000)}
    stack = Stack(server.url, args.logs, env={"DIGITS_ADMIN_TOKEN": TOKEN, **one_thread, **room})
    me = os.getpid()
    rows, notes, goals = [], [], []
    attack_goals: list[tuple[str, dict[str, Latencies]]] = []
    try:
        for n in range(2):
            stack.start_worker(f"predict{n + 1}", queues=PREDICT_QUEUES, pool="solo")
        base = stack.start_web(workers=2)
        stack.wait_for_workers(2)
        web = process_tree(stack.processes["web"].pid)
        polite_client(base, image, 1)  # warm up every path

        def scenario(name: str) -> dict[str, Latencies]:
            cpu_before, redis_before, web_before = cpu_seconds([me]), redis_cpu_seconds(redis_client), cpu_seconds(web)
            figures = measure(base, image, args.seconds)
            redis_share = (redis_cpu_seconds(redis_client) - redis_before) / args.seconds
            web_share = (cpu_seconds(web) - web_before) / args.seconds
            rows.append((name, figures, cpu_seconds([me]) - cpu_before, resident_mb(web), redis_share, web_share))
            return figures

        def wanted(name: str) -> bool:
            return args.only.lower() in name.lower()

        scenario("alone")
        attacks = {
            "?wait= of 8,000 digits and an x": lambda s: s.get(
                f"{base}/api/v1/jobs/{'0' * 32}", params={"wait": "1" * 8000 + "x"}, timeout=30
            ),
            "1x2 TIFF declaring 400,000 strips": lambda s: s.post(
                f"{base}/api/v1/predictions", files={"image": ("strips.tiff", TIFF)}, timeout=30
            ),
            "JPEG of 100,000 APP segments": lambda s: s.post(
                f"{base}/api/v1/predictions", files={"image": ("segments.jpg", JPEG)}, timeout=30
            ),
        }
        for name, send in attacks.items():
            if not wanted(name):
                continue
            with Repeated(send) as attack:
                figures = scenario(f"{name}, sent again as soon as answered")
            figures[name] = attack.latencies
            attack_goals.append((name, figures))
            notes.append(f"{name}: {len(attack.latencies.ms)} sent, answered {dict(attack.statuses)}")
        if not args.only:  # the earlier attacks
            # Something to wait on that never ends: a training job on a queue no worker here consumes.
            training = requests.post(
                f"{base}/api/v1/training-jobs",
                json={"arch": "seed"},
                headers={"Authorization": f"Bearer {TOKEN}"},
                timeout=30,
            ).json()["job_id"]
            with LongPolls(base, f"/api/v1/jobs/{training}?wait=30", args.polls) as polls:
                time.sleep(2)
                while_polls = scenario(f"{args.polls} long polls held")
                notes.append(
                    f"long polls: {len(polls.selector.get_map())} held, {polls.answered} answered and sent again, "
                    f"{polls.errors} errors"
                )

            sent = hostile_session().post(
                f"{base}/api/v1/predictions", files=[("image", hostile)] * args.hostile_images, timeout=120
            )
            hostile_ids = [job["job_id"] for job in sent.json()["jobs"]]
            started = time.monotonic()
            while_hostile = scenario(f"{args.hostile_images} hostile images sent")
            records = JobRecords(redis.Redis.from_url(server.url))
            while records.unfinished(hostile_ids) and time.monotonic() - started < 300:
                time.sleep(0.5)
            outcomes = Counter(
                (job["error"] or {}).get("code") or ("blank" if job["result"]["label"] is None else "read")
                for job in records.get_many(hostile_ids)
            )
            notes.append(
                f"hostile images ({len(hostile)} bytes each, 4000x4000 transparent): all ended within "
                f"{time.monotonic() - started:.0f} s: {dict(outcomes)}"
            )

            with BulkBacklog(base, pngs, args.backlog, server.url) as bulk:
                while_bulk = scenario(f"a bulk backlog of {args.backlog}+ images")
                notes.append(
                    f"bulk client: {bulk.sent} images accepted, {bulk.refused} requests told to wait; backlog "
                    f"while measured: min {min(bulk.backlog_seen[-50:], default=0)}"
                )
        # Last: when their waits end, 500 answers of 1,000 records each are due at once.
        if wanted("batch polls"):
            with EndingBatches(server.url) as ending:
                paths = [f"/api/v1/batches/{batch_id}?wait=30" for batch_id, _ in ending.batches]
                polls = [LongPolls(base, path, args.batch_polls // 3 + (i < args.batch_polls % 3)) for i, path in
                         enumerate(paths)]  # fmt: skip
                for poll in polls:
                    poll.__enter__()
                time.sleep(6)  # every poll is in and waiting (a starved web takes seconds to take 500 in)
                notices_before = ending.notices
                while_batch_polls = scenario(f"{args.batch_polls} batch long polls")
                notices = ending.notices - notices_before
                for poll in polls:
                    poll.__exit__()
            notes.append(
                f"batch long polls: {sum(len(p.selector.get_map()) for p in polls)} held on 3 batches of 1,000 "
                f"jobs, woken by {notices} finishes in {args.seconds:g} s; Redis CPU {rows[-1][4]:.0%} of a core"
            )
            polite_p99 = while_batch_polls["polite image"].quantile(99)
            goals.append(("batch polls: polite image p99 (reported)", polite_p99, 500))
    finally:
        stack.stop_all()
        server.close()

    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"\n{time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs, load average {load}; latency in ms")
    for name, figures, client_cpu, web_mb, redis_share, web_share in rows:
        print(
            f"\n{name}  (web resident {web_mb:.0f} MB; CPU: web {web_share:.0%}, Redis {redis_share:.0%} of a core; "
            f"load generators used {client_cpu:.1f} CPU s)"
        )
        for what, latencies in figures.items():
            print(f"  {what:<14} {latencies.line()}")
    print()
    for note in notes:
        print(note)
    for name, figures in attack_goals:
        goals += [
            (f"{name}: polite image p99", figures["polite image"].quantile(99), 500),
            (f"{name}: healthz p99", figures["healthz"].quantile(99), 100),
        ]
        if "JPEG" not in name:
            goals.append((f"{name}: the attack's own answer, max", max(figures[name].ms, default=float("nan")), 50))
    if not args.only:
        goals += [
            ("long polls: healthz p99", while_polls["healthz"].quantile(99), 100),
            ("long polls: polite image p50", while_polls["polite image"].quantile(50), 100),
            ("hostile images: polite image p99", while_hostile["polite image"].quantile(99), 2000),
            ("bulk backlog: polite image p99", while_bulk["polite image"].quantile(99), 500),
        ]
    print("\ngoals:")
    for goal, value, limit in goals:
        print(f"  {'met ' if value <= limit else 'MISS'}  {goal} <= {limit} ms: {value:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
