"""The gRPC server around one engine: Engine service, health, reflection, auth, TLS,
metrics, lifecycle.

``EngineServer.start()`` binds the port and reports NOT_SERVING at once (requests
get UNAVAILABLE with a retry hint), warms the engine up, then reports SERVING;
``stop()`` reports NOT_SERVING, drains the engine within the grace period, and
stops the server.

Health (``grpc.health.v1``) answers for the whole server (``""``), for
``ditserve.v1.Engine`` and for each served model by name. Reflection answers as
``grpc.reflection.v1`` and ``grpc.reflection.v1alpha`` (the same messages on the wire).

Ports are bound without SO_REUSEPORT (gRPC's default would let a second engine
share a port and take half of its new connections): a taken port fails
``listen()`` with ``PortInUse``.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2

from client_sdk._proto import engine_pb2, engine_pb2_grpc
from engine_service.config import ServerConfig, join_host_port
from engine_service.runtime.engine import AsyncEngine
from engine_service.server.auth import BearerTokenInterceptor
from engine_service.server.http_endpoint import HttpEndpoint
from engine_service.server.malformed import MalformedRequestInterceptor
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


class PortInUse(OSError):
    """A port this engine should listen on cannot be bound (another process holds it, or the address is
    not this host's)."""

    def __init__(self, what: str, address: str):
        super().__init__(
            f"cannot listen on {address} ({what}): the port is taken by another process "
            "(another engine?) or the address is not on this host"
        )
        self.address = address


def _server_options(config: ServerConfig) -> list[tuple[str, int]]:
    """Channel arguments shared by the engine's gRPC servers."""
    options = [("grpc.so_reuseport", 0)]
    if config.max_connection_age_s is not None:
        options.append(("grpc.max_connection_age_ms", int(config.max_connection_age_s * 1000)))
    if config.max_connection_age_grace_s is not None:
        options.append(("grpc.max_connection_age_grace_ms", int(config.max_connection_age_grace_s * 1000)))
    return options


class EngineServer:
    """One grpc.aio server serving one AsyncEngine."""

    def __init__(self, engine: AsyncEngine, config: ServerConfig):
        self.engine = engine
        self.config = config
        self.port: int | None = None
        self.metrics_port: int | None = None
        self.health_port: int | None = None
        self._health: health.aio.HealthServicer | None = None
        self._server: grpc.aio.Server | None = None
        self._health_server: grpc.aio.Server | None = None
        self._metrics_http: HttpEndpoint | None = None
        self._health_task: asyncio.Future | None = None
        self._not_ready: str | None = "starting"

    def _build(self) -> grpc.aio.Server:
        """The grpc.aio server; built inside the loop that runs it (aio objects are loop-bound)."""
        # The token is checked first: an unauthenticated garbage body is UNAUTHENTICATED.
        interceptors = [BearerTokenInterceptor(self.config.auth_token)] if self.config.auth_token else []
        interceptors.append(MalformedRequestInterceptor())
        server = grpc.aio.server(
            interceptors=interceptors,
            options=[
                ("grpc.max_receive_message_length", self.engine.limits.max_request_bytes),
                ("grpc.max_send_message_length", -1),
                # Allow client keepalive pings every 20 s: long video RPCs stay open through proxies.
                ("grpc.http2.min_ping_interval_without_data_ms", 20_000),
                ("grpc.keepalive_permit_without_calls", 1),
                *_server_options(self.config),
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
        """``host:port`` of the gRPC port (an IPv6 host in brackets)."""
        return join_host_port(self.config.host, self.port)

    @property
    def engine_id(self) -> str:
        return self.config.engine_id

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
        self.port = self._add_port(self.config.address)
        if self.config.health_port is not None:
            self._health_server = grpc.aio.server(options=_server_options(self.config))
            health_pb2_grpc.add_HealthServicer_to_server(self._health, self._health_server)
            self.health_port = _bind(
                self._health_server.add_insecure_port,
                "health port",
                join_host_port(self.config.host, self.config.health_port),
            )
        try:
            self._start_metrics()
        except OSError:
            await self._server.stop(None)
            raise
        await self._server.start()
        if self._health_server is not None:
            await self._health_server.start()
        tls = self.config.tls
        security = "plaintext" if tls is None else "mutual TLS" if tls.client_ca else "TLS"
        auth = "bearer token" if self.config.auth_token else "no auth"
        logger.info("engine %s listening on %s (%s, %s); warming up", self.engine_id, self.address, security, auth)
        if self.health_port is not None:
            logger.info("health only, plaintext: %s", join_host_port(self.config.host, self.health_port))

    def _add_port(self, address: str) -> int:
        tls = self.config.tls
        if tls is None:
            return _bind(self._server.add_insecure_port, "gRPC port", address)
        credentials = grpc.ssl_server_credentials(
            [(tls.private_key, tls.cert_chain)],
            root_certificates=tls.client_ca,
            require_client_auth=tls.client_ca is not None,
        )
        return _bind(lambda where: self._server.add_secure_port(where, credentials), "gRPC port", address)

    def _start_metrics(self) -> None:
        """Serve /metrics, /healthz and /readyz over HTTP, when a metrics port is configured."""
        if self.config.metrics_port is None:
            return
        try:
            self._metrics_http = HttpEndpoint(
                self.config.host, self.config.metrics_port, self.engine.metrics.registry, lambda: self._not_ready
            )
        except OSError as err:
            raise PortInUse("metrics port", join_host_port(self.config.host, self.config.metrics_port)) from err
        self.metrics_port = self._metrics_http.port
        logger.info(
            "metrics on http://%s/metrics (probes /healthz, /readyz)",
            join_host_port(self.config.host, self.metrics_port),
        )
        if self.config.tls is not None or self.config.auth_token:
            logger.warning(
                "the metrics endpoint is plaintext and open (no TLS, no token): keep port %d on a private interface",
                self.metrics_port,
            )

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
        if self._health_server is not None:
            await self._health_server.stop(grace=None)
        if self._metrics_http is not None:
            self._metrics_http.stop()
        logger.info("stopped")

    async def wait_for_termination(self) -> None:
        await self._server.wait_for_termination()


def _check_free(what: str, host: str, port: int) -> None:
    """PortInUse when any address ``host`` stands for cannot be bound at ``port`` now.

    gRPC binds ``::`` as one dual-stack socket, and when that fails falls back to ``0.0.0.0`` alone:
    an engine on ``[::1]:P`` would leave a second one on ``[::]:P`` serving IPv4 only, unnoticed.
    """
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as err:
        raise PortInUse(what, join_host_port(host, port)) from err
    for family, kind, proto, _, sockaddr in infos:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6 and sockaddr[0] == "::":
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            try:
                probe.bind(sockaddr)
            except OSError as err:
                raise PortInUse(what, join_host_port(host, port)) from err


def check_ports(config: ServerConfig) -> None:
    """PortInUse when a port ``config`` names is taken now: a start-up check before models load
    (``listen()`` checks again when it binds)."""
    ports = (("gRPC port", config.port), ("health port", config.health_port), ("metrics port", config.metrics_port))
    for what, port in ports:
        if port:
            _check_free(what, config.host, port)


def _bind(add_port, what: str, address: str) -> int:
    """``add_port(address)``, the bound port; PortInUse when gRPC cannot bind it."""
    host, _, port = address.rpartition(":")
    if int(port):
        _check_free(what, host.strip("[]"), int(port))
    try:
        port = add_port(address)
    except RuntimeError as err:  # grpc raises RuntimeError("Failed to bind to address ...")
        raise PortInUse(what, address) from err
    if not port:
        raise PortInUse(what, address)
    return port


async def serve_until_signalled(server: EngineServer) -> bool:
    """Run ``server`` until SIGTERM or SIGINT, then stop it gracefully.

    A signal during warm-up abandons the warm-up: the server never reports SERVING. Signals
    after the first (a second SIGTERM while draining) are logged and change nothing: the
    drain ends within the grace period as it would have. Returns True when the warm-up was
    abandoned: its call may still occupy the worker thread, so the caller exits without
    waiting for it.
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def on_signal(signum, _frame) -> None:
        # A Python-level handler (not loop.add_signal_handler): it stays installed after the loop
        # closes, so a signal during the final teardown cannot kill the process with -signum.
        if stop.is_set() or loop.is_closed():
            logger.warning("%s received again; already stopping", signal.Signals(signum).name)
            return
        try:
            loop.call_soon_threadsafe(stop.set)
        except RuntimeError:  # the loop closed between the check and the call
            pass

    await server.listen()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    warm = asyncio.ensure_future(server.warm_up())
    stopped = asyncio.ensure_future(stop.wait())
    await asyncio.wait({warm, stopped}, return_when=asyncio.FIRST_COMPLETED)
    abandoned = not warm.done()
    if abandoned:
        logger.warning("signal received during warm-up; abandoning it (the engine never reported SERVING)")
        warm.cancel()
    else:
        if warm.exception() is not None:
            stopped.cancel()
            await server.stop(grace_s=0.0)
            warm.result()  # a failed warm-up raises here
        await stopped
        logger.info("signal received; draining for up to %.0f s", server.config.grace_s)
    await server.stop()
    return abandoned
