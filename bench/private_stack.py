"""The service a whole-service benchmark measures: the one at ``--url``, or a private one started as
``make run`` starts it (Redis, a predict worker, a train worker and the web)."""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from client.service import DigitsClient

TOKEN = "private-benchmark-stack"


def add_service_arguments(parser: argparse.ArgumentParser, logs_name: str) -> None:
    """Adds --url and --token (a running service and its admin token) and --logs (the private one's)."""
    parser.add_argument("--url", help="a running service (default: start a private one)")
    parser.add_argument("--token", help="its admin token (with --url)")
    default_logs = Path(tempfile.gettempdir()) / logs_name
    parser.add_argument("--logs", type=Path, default=default_logs, help="the private service's logs")


@contextmanager
def service_client(args: argparse.Namespace) -> Iterator[DigitsClient]:
    """An admin client of the service that ``args`` name; a private service lives as long as the block."""
    if args.url:
        yield DigitsClient(args.url, token=args.token)
        return
    from stack.processes import PREDICT_QUEUES, Stack
    from stack.redis_server import RedisServer

    server = RedisServer().start()
    stack = Stack(server.url, args.logs, env={"DIGITS_ADMIN_TOKEN": TOKEN, "RATE_LIMIT": ""})
    try:
        stack.start_worker("predict1", queues=PREDICT_QUEUES, pool="solo")
        stack.start_worker("train1", queues="train")
        stack.start_web()
        stack.wait_for_workers(2)
        yield DigitsClient(stack.web_url, token=TOKEN)
    finally:
        stack.stop_all()
        server.close()
