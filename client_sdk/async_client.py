"""The asyncio ditserve client, over a `grpc.aio` channel (plaintext or TLS).

The twin of `client_sdk.client.Client`: same methods, as coroutines, and the
same request building, reassembly and error mapping from `_core`.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

import grpc
import grpc.aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from client_sdk import _codec
from client_sdk._core import (
    HEALTH_RETRY_S,
    ChannelOptions,
    GenerateOptions,
    Metadata,
    StreamAssembler,
    StreamOptions,
    auth_metadata,
    build_request,
    call_options,
    check_health,
    merge_channel_options,
    tls_credentials,
)
from client_sdk._proto import engine_pb2, engine_pb2_grpc
from client_sdk._targets import RouteBook, Targets, lost_engine_error, multi_target_options, resolved_addresses
from client_sdk.errors import NotFoundError, UnavailableError, from_rpc_error
from client_sdk.retry import RetryPolicy, deadline_of, next_wait, resolve
from client_sdk.types import Event, ModelList, Result, Stats

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing.Unpack from Python 3.11 on

__all__ = ["AsyncClient"]


class AsyncClient:
    """An asyncio client for one ditserve engine, or several (as `Client`).

    Use it as an async context manager, or `await close()` when done::

        async with AsyncClient("localhost:50051") as client:
            async for event in client.stream("a lighthouse at dusk", preview_every=5):
                ...

    The channel is opened on first use, inside the running event loop, so the
    client may be constructed outside one. Every failed call raises a
    `client_sdk.errors.APIError` subclass.
    """

    def __init__(
        self,
        target: str | Sequence[str],
        *,
        timeout: float | None = None,
        metadata: Metadata | None = None,
        channel_options: ChannelOptions | None = None,
        auth_token: str | None = None,
        tls: bool = False,
        root_certificates: bytes | None = None,
        certificate_chain: bytes | None = None,
        private_key: bytes | None = None,
        retry: RetryPolicy | bool | None = None,
    ) -> None:
        """Prepares a channel to `target` (a target or a list of engines); arguments as for `Client`."""
        self._targets = Targets.parse(target)
        self.target = self._targets.target
        """The gRPC target this client talks to."""
        self._timeout = timeout
        self._metadata = auth_metadata(metadata, auth_token)
        self._retry = resolve(retry, None)
        extra = multi_target_options() if self._targets.multi else []
        self._options = merge_channel_options([*extra, *(channel_options or ())])
        self._direct_options = merge_channel_options(channel_options)
        self._routes = RouteBook()
        self._direct: dict[str, tuple[grpc.aio.Channel, engine_pb2_grpc.EngineStub]] = {}
        self._credentials = tls_credentials(tls, root_certificates, certificate_chain, private_key)
        self._channel: grpc.aio.Channel | None = None
        self._stub: engine_pb2_grpc.EngineStub | None = None
        self._health: health_pb2_grpc.HealthStub | None = None

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Closes the channel; calls in flight are cancelled."""
        if self._channel is not None:
            channel, self._channel, self._stub = self._channel, None, None
            await channel.close()
        direct, self._direct = self._direct, {}
        for channel, _ in direct.values():
            await channel.close()

    async def generate(
        self,
        prompt: str,
        *,
        timeout: float | None = None,
        retry: RetryPolicy | bool | None = None,
        **options: Unpack[GenerateOptions],
    ) -> Result:
        """Runs one request to completion and returns all its outputs."""
        request = build_request(prompt, **options)
        response: engine_pb2.GenerateResponse = await self._unary(
            self._generate_once, request, timeout, request_id=request.request_id, retry=retry
        )
        return _codec.result_from_proto(response)

    async def _generate_once(self, request: engine_pb2.GenerateRequest, **call: Any) -> engine_pb2.GenerateResponse:
        """One Generate call; the engine that accepts it is remembered while it runs (for `cancel`)."""
        rpc = self._engine().Generate(request, **call)
        request_id = ""
        try:
            request_id = self._routes.started(await rpc.initial_metadata())  # sent as the engine accepts it
            return await rpc
        except grpc.RpcError as err:
            lost = lost_engine_error(err, request.request_id or request_id, self._routes.route(request_id))
            if lost is not None:
                raise lost from err
            raise
        finally:
            rpc.cancel()  # no-op once the call has finished
            self._routes.finished(request_id)

    def stream(
        self,
        prompt: str,
        *,
        timeout: float | None = None,
        retry: RetryPolicy | bool | None = None,
        **options: Unpack[StreamOptions],
    ) -> AsyncIterator[Event]:
        """Runs one request and yields its events, ending with `Completed`.

        The request is checked now and sent when iteration starts. Leaving the
        loop early cancels the request on the engine once the generator is
        closed; wrap it in `contextlib.aclosing` to close it at once.
        """
        request = build_request(prompt, **options)
        return self._events(request, timeout, resolve(retry, self._retry))

    async def _events(
        self, request: engine_pb2.GenerateRequest, timeout: float | None, policy: RetryPolicy | None
    ) -> AsyncIterator[Event]:
        deadline = deadline_of(timeout if timeout is not None else self._timeout, time.monotonic())
        attempt = 1
        while True:
            assembler = StreamAssembler()
            call = self._engine().Stream(request, **self._call(_remaining(deadline)))
            started = False
            request_id = ""
            try:
                request_id = self._routes.started(await call.initial_metadata())
                async for message in call:
                    event = assembler.feed(message)
                    if event is not None:
                        started = True
                        yield event
                assembler.finish()
                return
            except grpc.RpcError as err:
                route = self._routes.route(request_id)
                lost = lost_engine_error(err, request.request_id or request_id, route)
                error = lost or from_rpc_error(err, request_id=request.request_id or request_id or None)
                # A stream is retried only before its first event: later, the request was accepted.
                wait = None if started or route else next_wait(policy, attempt, error, deadline, time.monotonic())
                if wait is None:
                    raise error from err
            finally:
                call.cancel()  # no-op once the call has finished
                self._routes.finished(request_id)
            await asyncio.sleep(wait)
            attempt += 1

    async def stats(
        self, model: str = "", *, timeout: float | None = None, retry: RetryPolicy | bool | None = None
    ) -> Stats:
        """Cumulative engine counters, for one model or ("") all of them."""
        response: engine_pb2.StatsResponse = await self._unary(
            self._engine().Stats, engine_pb2.StatsRequest(model=model), timeout, retry=retry
        )
        return _codec.stats_from_proto(response)

    async def list_models(self, *, timeout: float | None = None, retry: RetryPolicy | bool | None = None) -> ModelList:
        """The models the engine serves, with their defaults, the engine's limits and its version."""
        response: engine_pb2.ListModelsResponse = await self._unary(
            self._engine().ListModels, engine_pb2.ListModelsRequest(), timeout, retry=retry
        )
        return _codec.model_list_from_proto(response)

    async def cancel(self, request_id: str, *, timeout: float | None = None) -> str:
        """Cancels a queued or running request; returns "queued" or "running".

        Routed to the request's engine as `Client.cancel` does.
        """
        message = engine_pb2.CancelRequest(request_id=request_id)
        route = self._routes.route(request_id)
        if not self._targets.multi:
            metadata = (*self._metadata, *(route.cancel_metadata() if route else ()))
            options = call_options(timeout if timeout is not None else self._timeout, None, metadata)
            try:
                response = await self._engine().Cancel(message, **options)
            except grpc.RpcError as err:
                raise from_rpc_error(err, request_id=request_id) from err
            return response.state
        address = await self._address_of(route.engine_id, timeout) if route and route.engine_id else None
        candidates = [address] if address else await self._engine_addresses()
        last: Exception = NotFoundError(
            f"no engine knows request {request_id!r}", code=grpc.StatusCode.NOT_FOUND, request_id=request_id
        )
        for candidate in candidates:
            try:
                return (await self._direct_stub(candidate).Cancel(message, **self._direct_call(timeout))).state
            except grpc.RpcError as err:
                last = from_rpc_error(err, request_id=request_id)
                if err.code() not in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAVAILABLE):
                    break
        raise last

    async def _engine_addresses(self) -> list[str]:
        """The engines' addresses: as listed, or as the DNS name resolves now."""
        if self._targets.dns_name is None:
            return list(self._targets.addresses)
        host, port = self._targets.dns_name
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        return list(resolved_addresses(infos))

    def _direct_stub(self, address: str) -> engine_pb2_grpc.EngineStub:
        """A stub on a channel to one engine (kept until `close`)."""
        if address not in self._direct:
            options = self._direct_options
            if self._targets.dns_name is not None and self._credentials is not None:
                options = [*options, ("grpc.ssl_target_name_override", self._targets.dns_name[0])]
            if self._credentials is None:
                channel = grpc.aio.insecure_channel(address, options=options)
            else:
                channel = grpc.aio.secure_channel(address, self._credentials, options=options)
            self._direct[address] = (channel, engine_pb2_grpc.EngineStub(channel))
        return self._direct[address][1]

    def _direct_call(self, timeout: float | None) -> dict[str, Any]:
        return call_options(timeout if timeout is not None else self._timeout, None, self._metadata)

    async def _address_of(self, engine_id: str, timeout: float | None) -> str | None:
        """The address of the engine with id `engine_id`, asking each engine's Stats once when unknown."""
        if (known := self._routes.address_of(engine_id)) is not None:
            return known
        for address in await self._engine_addresses():
            try:
                stats = await self._direct_stub(address).Stats(engine_pb2.StatsRequest(), **self._direct_call(timeout))
            except grpc.RpcError:
                continue
            self._routes.learn(stats.engine_id, address)
        return self._routes.address_of(engine_id)

    async def wait_ready(self, timeout: float = 30.0, *, model: str = "") -> None:
        """Waits until the engine's health (`grpc.health.v1.Health/Watch`) reports SERVING.

        `model` waits for one served model instead of the whole engine. Raises
        UnavailableError when that does not happen within `timeout` seconds,
        NotFoundError when the engine serves no such model, and UnimplementedError
        when the server has no health service.
        """
        deadline = time.monotonic() + timeout
        request = health_pb2.HealthCheckRequest(service=model)
        self._open()
        assert self._health is not None
        last_state = "no connection"
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                watch = self._health.Watch(
                    request, timeout=remaining, metadata=self._metadata or None, wait_for_ready=True
                )
                async for reply in watch:
                    last_state = check_health(reply.status, self.target, model)
                    if last_state is None:
                        watch.cancel()
                        return
            except grpc.RpcError as err:
                if err.code() == grpc.StatusCode.UNIMPLEMENTED:
                    raise from_rpc_error(err) from err
                if err.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
                    last_state = f"{err.code().name}: {err.details()}"
            await asyncio.sleep(max(0.0, min(HEALTH_RETRY_S, deadline - time.monotonic())))
        raise UnavailableError(f"{self.target} not serving after {timeout:g} s (last: {last_state})")

    def _open(self) -> grpc.aio.Channel:
        """The channel, opened in the running event loop on first use."""
        if self._channel is None:
            if self._credentials is None:
                self._channel = grpc.aio.insecure_channel(self.target, options=self._options)
            else:
                self._channel = grpc.aio.secure_channel(self.target, self._credentials, options=self._options)
            self._stub = engine_pb2_grpc.EngineStub(self._channel)
            self._health = health_pb2_grpc.HealthStub(self._channel)
        return self._channel

    def _engine(self) -> engine_pb2_grpc.EngineStub:
        self._open()
        assert self._stub is not None
        return self._stub

    def _call(self, timeout: float | None) -> dict[str, Any]:
        return call_options(timeout, None, self._metadata)

    async def _unary(
        self,
        method: Any,
        request: Any,
        timeout: float | None,
        request_id: str = "",
        retry: RetryPolicy | bool | None = None,
    ) -> Any:
        """Calls a unary method, retrying as the policy says; a failed status becomes an APIError."""
        policy = resolve(retry, self._retry)
        deadline = deadline_of(timeout if timeout is not None else self._timeout, time.monotonic())
        attempt = 1
        while True:
            try:
                return await method(request, **self._call(_remaining(deadline)))
            except grpc.RpcError as err:
                error = from_rpc_error(err, request_id=request_id or None)
                wait = next_wait(policy, attempt, error, deadline, time.monotonic())
                if wait is None:
                    raise error from err
            await asyncio.sleep(wait)
            attempt += 1


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())
