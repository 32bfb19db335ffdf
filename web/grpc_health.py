"""gRPC's standard health service (``grpc.health.v1.Health``, from grpcio-health-checking) on the
gRPC server: what Kubernetes' ``grpc:`` probes, grpc_health_probe and clients' health-checked load
balancing ask. It answers for three service names:

- ``""`` (the server as a whole, what a probe asks unless told otherwise) and the protocol's own
  ``inference.GRPCInferenceService``: SERVING while the server is ready as the web's ``/readyz``
  means it (Redis answers, a live worker serves predictions, the process is not draining: the
  rule Triton's ServerReady answers with, web/grpc_protocol.py), NOT_SERVING otherwise.
- ``liveness``: SERVING while the process answers at all, as ServerLive and the web's ``/healthz``:
  a Redis outage or a drain must not get the pod restarted.

Check reads readiness afresh, as a ``/readyz`` request does; a Watch stream is told of a change
within :data:`WATCH_INTERVAL_S`, and of the drain at once (web/grpc_server.py refreshes then).

Where no grpc_health_probe is at hand (docker-compose's healthcheck, the image), the same question:

    python -m web.grpc_health [HOST:PORT] [--service liveness]     # exit 0: SERVING
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from tritonclient.grpc import service_pb2

from settings import get_settings

log = logging.getLogger(__name__)
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
PROTOCOL = service_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name
READINESS = ("", PROTOCOL)
LIVENESS = "liveness"
WATCH_INTERVAL_S = 1.0


class Health(health.aio.HealthServicer):
    """The health service, its readiness asked of ``ready`` (True when the server is ready)."""

    def __init__(self, ready: Callable[[], Awaitable[bool]]):
        super().__init__()
        self._ready = ready

    async def Check(self, request: health_pb2.HealthCheckRequest, context) -> health_pb2.HealthCheckResponse:
        if request.service in READINESS:
            await self.refresh()
        return await super().Check(request, context)

    async def refresh(self) -> bool:
        """Ask readiness now and answer with it from now on (watchers are told of a change)."""
        ready = await self._ready()
        for name in READINESS:
            await self.set(name, SERVING if ready else NOT_SERVING)
        await self.set(LIVENESS, SERVING)
        return ready

    async def keep_watchers_told(self) -> None:
        """Refresh every :data:`WATCH_INTERVAL_S` until cancelled: without it a Watch stream would
        hear only of the changes some Check happened to see."""
        while True:
            try:
                await self.refresh()
            except Exception:
                log.exception("gRPC health: readiness could not be read")
            await asyncio.sleep(WATCH_INTERVAL_S)


def main(argv: list[str] | None = None) -> int:
    """Ask a gRPC server's health service once: 0 if it says SERVING, 1 if anything else (or no answer)."""
    parser = argparse.ArgumentParser(description="exit 0 if the gRPC server says SERVING, else 1")
    parser.add_argument("address", nargs="?", default=f"127.0.0.1:{get_settings().grpc_port}")
    parser.add_argument("--service", default="", help=f'"" (ready: the default) or {LIVENESS}')
    parser.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for the answer")
    args = parser.parse_args(argv)
    request = health_pb2.HealthCheckRequest(service=args.service)
    with grpc.insecure_channel(args.address) as channel:
        try:
            status = health_pb2_grpc.HealthStub(channel).Check(request, timeout=args.timeout).status
        except grpc.RpcError as error:
            print(f"{args.address}: {error.code().name}", file=sys.stderr)
            return 1
    print(f"{args.address}: {health_pb2.HealthCheckResponse.ServingStatus.Name(status)}")
    return 0 if status == SERVING else 1


if __name__ == "__main__":
    sys.exit(main())
