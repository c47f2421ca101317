"""The gRPC server around one engine: Engine service, health, reflection, auth, TLS,
metrics, lifecycle.

``EngineServer.start()`` binds the port and reports NOT_SERVING at once (requests
get UNAVAILABLE with a retry hint), warms the engine up, then reports SERVING;
``stop()`` reports NOT_SERVING, drains the engine within the grace period, and
stops the server.

Health (``grpc.health.v1``) answers for the whole server (``""``), for
``ditserve.v1.Engine`` and for each served model by name. Reflection answers as
``grpc.reflection.v1`` and ``grpc.reflection.v1alpha`` (the same messages on the wire).
"""

from __future__ import annotations

import asyncio
import logging
import signal

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2

from client_sdk._proto import engine_pb2, engine_pb2_grpc
from engine_service.config import ServerConfig
from engine_service.runtime.engine import AsyncEngine
from engine_service.server.auth import BearerTokenInterceptor
from engine_service.server.http_endpoint import HttpEndpoint
from engine_service.server.servicer import EngineServicer

logger = logging.getLogger(__name__)

ENGINE_SERVICE_NAME = engine_pb2.DESCRIPTOR.services_by_name["Engine"].full_name
#: Health is reported for the whole server ("") and for the Engine service by name (and for each model).
HEALTH_SERVICES = ("", ENGINE_SERVICE_NAME)
#: The stable reflection service; its messages are v1alpha's, field for field.
REFLECTION_V1_SERVICE = "grpc.reflection.v1.ServerReflection"


def _add_reflection_v1(server: grpc.aio.Server, servicer: reflection.aio.ReflectionServicer) -> None:
    """Serve ``grpc.reflection.v1`` with the v1alpha servicer (grpcio-reflection registers only v1alpha)."""
    handler = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(REFLECTION_V1_SERVICE, {"ServerReflectionInfo": handler}),)
    )


class EngineServer:
    """One grpc.aio server serving one AsyncEngine."""

    def __init__(self, engine: AsyncEngine, config: ServerConfig):
        self.engine = engine
        self.config = config
        self.port: int | None = None
        self.metrics_port: int | None = None
        self._health: health.aio.HealthServicer | None = None
        self._server: grpc.aio.Server | None = None
        self._metrics_http: HttpEndpoint | None = None
        self._health_task: asyncio.Future | None = None
        self._not_ready: str | None = "starting"

    def _build(self) -> grpc.aio.Server:
        """The grpc.aio server; built inside the loop that runs it (aio objects are loop-bound)."""
        interceptors = [BearerTokenInterceptor(self.config.auth_token)] if self.config.auth_token else []
        server = grpc.aio.server(
            interceptors=interceptors,
            options=[
                ("grpc.max_receive_message_length", self.engine.limits.max_request_bytes),
                ("grpc.max_send_message_length", -1),
                # Allow client keepalive pings every 20 s: long video RPCs stay open through proxies.
                ("grpc.http2.min_ping_interval_without_data_ms", 20_000),
                ("grpc.keepalive_permit_without_calls", 1),
            ],
        )
        self._health = health.aio.HealthServicer()
        engine_pb2_grpc.add_EngineServicer_to_server(EngineServicer(self.engine, self.config), server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        names = (ENGINE_SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME)
        reflection.enable_server_reflection(names, server)
        _add_reflection_v1(server, reflection.aio.ReflectionServicer(names))
        return server

    @property
    def address(self) -> str:
        return f"{self.config.host}:{self.port}"

    async def _set_health(self, status: int, reason: str | None = None) -> None:
        """Every health service name (the server, the Engine service, each model) to ``status``."""
        self._not_ready = None if status == health_pb2.HealthCheckResponse.SERVING else reason or "not serving"
        for name in (*HEALTH_SERVICES, *self.engine.models):
            await self._health.set(name, status)

    async def start(self) -> None:
        """Listen (NOT_SERVING at once), warm the engine up, then report SERVING."""
        await self.listen()
        await self.warm_up()

    async def listen(self) -> None:
        """Bind and start answering: health says NOT_SERVING and Generate UNAVAILABLE until warm_up()."""
        self._server = self._build()
        await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING, "warming up")
        self.engine.on_broken(self._engine_broken)
        self.port = self._add_port(f"{self.config.host}:{self.config.port}")
        if not self.port:
            raise OSError(f"could not bind {self.config.host}:{self.config.port}")
        await self._server.start()
        self._start_metrics()
        tls = self.config.tls
        security = "plaintext" if tls is None else "mutual TLS" if tls.client_ca else "TLS"
        auth = "bearer token" if self.config.auth_token else "no auth"
        logger.info("listening on %s (%s, %s); warming up", self.address, security, auth)

    def _add_port(self, address: str) -> int:
        tls = self.config.tls
        if tls is None:
            return self._server.add_insecure_port(address)
        credentials = grpc.ssl_server_credentials(
            [(tls.private_key, tls.cert_chain)],
            root_certificates=tls.client_ca,
            require_client_auth=tls.client_ca is not None,
        )
        return self._server.add_secure_port(address, credentials)

    def _start_metrics(self) -> None:
        """Serve /metrics, /healthz and /readyz over HTTP, when a metrics port is configured."""
        if self.config.metrics_port is None:
            return
        self._metrics_http = HttpEndpoint(
            self.config.host, self.config.metrics_port, self.engine.metrics.registry, lambda: self._not_ready
        )
        self.metrics_port = self._metrics_http.port
        logger.info("metrics on http://%s:%d/metrics (probes /healthz, /readyz)", self.config.host, self.metrics_port)

    def _engine_broken(self, reason: str) -> None:
        """The engine cannot serve any more (a lost rank): health says NOT_SERVING from now on."""
        logger.error("not serving any more: %s", reason)
        self._health_task = asyncio.ensure_future(
            self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING, f"broken: {reason}")
        )

    async def warm_up(self) -> None:
        """Warm every model up, then report SERVING."""
        await self.engine.start()
        await self._set_health(health_pb2.HealthCheckResponse.SERVING)
        logger.info("serving on %s (models: %s)", self.address, ", ".join(self.engine.models))

    async def stop(self, grace_s: float | None = None) -> None:
        """NOT_SERVING, finish or cancel the engine's work within the grace period, stop."""
        grace_s = self.config.grace_s if grace_s is None else grace_s
        self._not_ready = "draining"
        await self._health.enter_graceful_shutdown()
        await self.engine.shutdown(grace_s)
        await self._server.stop(grace=1.0)
        if self._metrics_http is not None:
            self._metrics_http.stop()
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
