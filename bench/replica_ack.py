"""What waiting for a replica (REPLICA_ACK, Redis WAIT) adds to a request, on loopback.

    python -m bench.replica_ack            # about a minute

Starts a primary, a replica and three sentinels, one predict worker and two web servers on the
Sentinel URL, one with REPLICA_ACK=off and one with REPLICA_ACK=on, and sends the same requests to
both in turn (so both see the same machine load): a single image with ?wait=, 64 images with
?wait=, and a single image without waiting (202: the submission alone, where WAIT's share is
largest). Prints each one's latency percentiles and the difference.
"""

from __future__ import annotations

import argparse
import base64
import tempfile
import time

import numpy as np
import requests

from bench.load import mnist_test_pngs
from stack.processes import PREDICT_QUEUES, Stack
from stack.redis_server import ReplicatedRedis

CASES = {"single image, ?wait=5": (1, 5), "64 images, ?wait=10": (64, 10), "single image, no wait (202)": (1, 0)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200, help="requests per case and setting")
    args = parser.parse_args(argv)
    images = [base64.b64encode(image).decode() for image in mnist_test_pngs(64)]
    servers = ReplicatedRedis().start()
    logs = tempfile.mkdtemp(prefix="digits-replica-ack-")
    stacks = {mode: Stack(servers.url, f"{logs}/{mode}", env={"RATE_LIMIT": ""}) for mode in ("off", "on")}
    try:
        stacks["off"].start_worker("predict1", queues=PREDICT_QUEUES, pool="solo")
        urls = {mode: stack.start_web(env={"REPLICA_ACK": mode}) for mode, stack in stacks.items()}
        stacks["off"].wait_for_workers(1)
        session = requests.Session()
        print(f"{args.requests} requests per case and setting, alternating; latency in ms")
        for case, (count, wait) in CASES.items():
            body = {"images": images[:count]}
            timings: dict[str, list[float]] = {"off": [], "on": []}
            for i in range(args.requests + 10):
                for mode in ("off", "on") if i % 2 else ("on", "off"):
                    started = time.perf_counter()
                    answer = session.post(f"{urls[mode]}/api/v1/predictions", params={"wait": wait}, json=body)
                    took = time.perf_counter() - started
                    assert answer.status_code in (200, 202), answer.text
                    if i >= 10:  # the first requests warm connections and caches up
                        timings[mode].append(took * 1000)
            off, on = (np.percentile(timings[mode], [50, 90]) for mode in ("off", "on"))
            print(
                f"{case:30} off p50 {off[0]:6.2f} p90 {off[1]:6.2f}   on p50 {on[0]:6.2f} p90 {on[1]:6.2f}"
                f"   added p50 {on[0] - off[0]:+.2f}"
            )
    finally:
        for stack in stacks.values():
            stack.stop_all()
        servers.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
