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
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from grpc_health.v1 import health, health_pb2
from tritonclient.grpc import service_pb2

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
