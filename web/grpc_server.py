"""The gRPC server of the Open Inference Protocol, a process of its own beside the web:

    python -m web.grpc_server --host 0.0.0.0 --port 8001

It serves web/grpc_protocol.py on grpc.aio's event loop, over the same Redis and workers as the
web (``REDIS_URL`` and every other setting as the web reads them). A call that reads Redis or
waits for its jobs runs on a pool of ``GRPC_THREADS`` threads; at most ``MAX_WAITS_PER_PROCESS``
calls are taken at once (beyond, gRPC answers RESOURCE_EXHAUSTED), and a message may be as large
as a request body over HTTP (``MAX_CONTENT_LENGTH``).

Beside the protocol it serves gRPC's standard health service (web/grpc_health.py): SERVING while
the server is ready as the web's /readyz means it, for Kubernetes' ``grpc:`` probes.

SIGTERM drains it as the web drains (web/draining.py): at once the health service says NOT_SERVING
(and ServerReady not ready), so load balancers and probes take the process out, while calls are
served as before for ``DRAIN_SECONDS``; then the drain closes (every call waiting for its jobs is
answered with what there is) and the server stops, the calls in hand given :data:`GRACE_S` to end.
SIGINT (Ctrl-C) stops it without a drain, or ends one at once.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from concurrent.futures import ThreadPoolExecutor

import grpc
from grpc_health.v1 import health_pb2_grpc
from tritonclient.grpc import service_pb2_grpc

from settings import get_settings
from web import create_app, draining
from web.grpc_health import Health
from web.grpc_protocol import InferenceService

log = logging.getLogger(__name__)
GRACE_S = 5  # after the drain: the calls in hand were answered when it closed, and need only be written


async def serve(host: str, port: int) -> None:
    settings = get_settings()
    app = create_app()  # the web's services, settings and logging, made once; no HTTP is served
    limit = settings.max_content_length
    server = grpc.aio.server(
        maximum_concurrent_rpcs=settings.max_waits_per_process,
        options=[("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit)],
    )
    with ThreadPoolExecutor(settings.grpc_threads, thread_name_prefix="grpc-call") as pool:
        inference = InferenceService(app, pool)
        health = Health(inference.ready)
        service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(inference, server)
        health_pb2_grpc.add_HealthServicer_to_server(health, server)
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if not server.add_insecure_port(address):
            raise OSError(f"cannot listen on {address}")
        await health.refresh()  # NOT_SERVING from the first call if no worker is live
        await server.start()
        log.info("gRPC (Open Inference Protocol) on %s", address)
        watchers = asyncio.create_task(health.keep_watchers_told())
        terminated, interrupted = asyncio.Event(), asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, terminated.set)
        loop.add_signal_handler(signal.SIGINT, interrupted.set)
        await first_of(terminated, interrupted)
        if not interrupted.is_set():
            drain = draining.of(app)
            drain.begin(quietly=True)  # our own line below: this process has no /readyz
            await health.refresh()  # NOT_SERVING, and every watcher told
            log.info(
                "draining: the health service says NOT_SERVING from now on; calls are served for %s s",
                settings.drain_seconds,
            )
            await first_of(interrupted, timeout=settings.drain_seconds)
            drain.close()
        watchers.cancel()
        await server.stop(GRACE_S)


async def first_of(*events: asyncio.Event, timeout: float | None = None) -> None:
    """Return once any of ``events`` is set, or ``timeout`` seconds have passed."""
    waits = [asyncio.create_task(event.wait()) for event in events]
    try:
        await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    parser.add_argument("--port", type=int, default=get_settings().grpc_port)
    args = parser.parse_args(argv)
    asyncio.run(serve(args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
