"""The gRPC server of the Open Inference Protocol, a process of its own beside the web:

    python -m web.grpc_server --host 0.0.0.0 --port 8001

It serves web/grpc_protocol.py on grpc.aio's event loop, over the same Redis and workers as the
web (``REDIS_URL`` and every other setting as the web reads them). A call that reads Redis or
waits for its jobs runs on a pool of ``GRPC_THREADS`` threads; at most ``MAX_WAITS_PER_PROCESS``
calls are taken at once (beyond, gRPC answers RESOURCE_EXHAUSTED), and a message may be as large
as a request body over HTTP (``MAX_CONTENT_LENGTH``). SIGTERM or Ctrl-C stops it after the calls
in hand are answered (up to ``GRACE_S``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from concurrent.futures import ThreadPoolExecutor

import grpc
from tritonclient.grpc import service_pb2_grpc

from settings import get_settings
from web import create_app
from web.grpc_protocol import InferenceService

log = logging.getLogger(__name__)
GRACE_S = 5


async def serve(host: str, port: int) -> None:
    settings = get_settings()
    app = create_app()  # the web's services, settings and logging, made once; no HTTP is served
    limit = settings.max_content_length
    server = grpc.aio.server(
        maximum_concurrent_rpcs=settings.max_waits_per_process,
        options=[("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit)],
    )
    with ThreadPoolExecutor(settings.grpc_threads, thread_name_prefix="grpc-call") as pool:
        service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(InferenceService(app, pool), server)
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if not server.add_insecure_port(address):
            raise OSError(f"cannot listen on {address}")
        await server.start()
        log.info("gRPC (Open Inference Protocol) on %s", address)
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopping.set)
        await stopping.wait()
        await server.stop(GRACE_S)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    parser.add_argument("--port", type=int, default=get_settings().grpc_port)
    args = parser.parse_args(argv)
    asyncio.run(serve(args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
