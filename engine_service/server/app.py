"""The gRPC server around one engine: Engine service, health, reflection, lifecycle.

``EngineServer.start()`` binds the port and reports NOT_SERVING at once (requests
get UNAVAILABLE with a retry hint), warms the engine up, then reports SERVING;
``stop()`` reports NOT_SERVING, drains the engine within the grace period, and
stops the server.
"""

from __future__ import annotations

import asyncio
import logging
import signal

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from client_sdk._proto import engine_pb2, engine_pb2_grpc
from engine_service.config import ServerConfig
from engine_service.runtime.engine import AsyncEngine
from engine_service.server.servicer import EngineServicer

logger = logging.getLogger(__name__)

ENGINE_SERVICE_NAME = engine_pb2.DESCRIPTOR.services_by_name["Engine"].full_name
#: Health is reported for the whole server ("") and for the Engine service by name.
HEALTH_SERVICES = ("", ENGINE_SERVICE_NAME)


class EngineServer:
    """One grpc.aio server serving one AsyncEngine."""

    def __init__(self, engine: AsyncEngine, config: ServerConfig):
        self.engine = engine
        self.config = config
        self.port: int | None = None
        self._health: health.aio.HealthServicer | None = None
        self._server: grpc.aio.Server | None = None

    def _build(self) -> grpc.aio.Server:
        """The grpc.aio server; built inside the loop that runs it (aio objects are loop-bound)."""
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", self.engine.limits.max_request_bytes),
                ("grpc.max_send_message_length", -1),
                # Allow client keepalive pings every 20 s: long video RPCs stay open through proxies.
                ("grpc.http2.min_ping_interval_without_data_ms", 20_000),
                ("grpc.keepalive_permit_without_calls", 1),
            ]
        )
        self._health = health.aio.HealthServicer()
        engine_pb2_grpc.add_EngineServicer_to_server(EngineServicer(self.engine, self.config), server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        reflection.enable_server_reflection((ENGINE_SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
        return server

    @property
    def address(self) -> str:
        return f"{self.config.host}:{self.port}"

    async def _set_health(self, status: int) -> None:
        for name in HEALTH_SERVICES:
            await self._health.set(name, status)

    async def start(self) -> None:
        """Listen (NOT_SERVING at once), warm the engine up, then report SERVING."""
        await self.listen()
        await self.warm_up()

    async def listen(self) -> None:
        """Bind and start answering: health says NOT_SERVING and Generate UNAVAILABLE until warm_up()."""
        self._server = self._build()
        await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        self.port = self._server.add_insecure_port(f"{self.config.host}:{self.config.port}")
        if not self.port:
            raise OSError(f"could not bind {self.config.host}:{self.config.port}")
        await self._server.start()
        logger.info("listening on %s; warming up", self.address)

    async def warm_up(self) -> None:
        """Warm every model up, then report SERVING."""
        await self.engine.start()
        await self._set_health(health_pb2.HealthCheckResponse.SERVING)
        logger.info("serving on %s (models: %s)", self.address, ", ".join(self.engine.models))

    async def stop(self, grace_s: float | None = None) -> None:
        """NOT_SERVING, finish or cancel the engine's work within the grace period, stop."""
        grace_s = self.config.grace_s if grace_s is None else grace_s
        await self._health.enter_graceful_shutdown()
        await self.engine.shutdown(grace_s)
        await self._server.stop(grace=1.0)
        logger.info("stopped")

    async def wait_for_termination(self) -> None:
        await self._server.wait_for_termination()


async def serve_until_signalled(server: EngineServer) -> None:
    """Run ``server`` until SIGTERM or SIGINT, then stop it gracefully."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await server.start()
    await stop.wait()
    logger.info("signal received; draining for up to %.0f s", server.config.grace_s)
    await server.stop()
