"""The blocking ditserve client, over a `grpc` channel (plaintext or TLS)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

import grpc

from client_sdk import _codec
from client_sdk._core import (
    HEALTH_CHECK_METHOD,
    HEALTH_CHECK_REQUEST,
    HEALTH_SERVING,
    WAIT_READY_POLL_S,
    ChannelOptions,
    GenerateOptions,
    Metadata,
    StreamAssembler,
    StreamOptions,
    auth_metadata,
    build_request,
    call_options,
    merge_channel_options,
    parse_health_status,
    raw_bytes,
    tls_credentials,
)
from client_sdk._proto import engine_pb2, engine_pb2_grpc
from client_sdk._targets import RouteBook, Targets, call_error, multi_target_options, resolved_addresses
from client_sdk.errors import NotFoundError, UnavailableError, from_rpc_error
from client_sdk.types import Event, ModelList, Result, Stats

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing.Unpack from Python 3.11 on

__all__ = ["Client"]


class Client:
    """A blocking client for one ditserve engine, or several.

    Use it as a context manager, or call `close()` when done::

        with Client("localhost:50051") as client:
            result = client.generate("a lighthouse at dusk", seed=7)
            result.save("out")

    Given several engines (``Client(["10.0.0.1:50051", "10.0.0.2:50051"])``,
    ``"ipv4:10.0.0.1:50051,10.0.0.2:50051"`` or ``"dns:///engines.internal:50051"``)
    it balances calls with gRPC's ``round_robin`` over the engines whose health
    is SERVING, retries a call an engine refused (UNAVAILABLE, before it started
    it) on another, waits for a ready engine instead of failing at once, and
    sends `cancel` to the engine that runs the request (see `client_sdk._targets`).

    Every failed call raises a `client_sdk.errors.APIError` subclass.
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
    ) -> None:
        """Opens a channel to `target`: "host:port", any gRPC target, or a list of engine addresses.

        `timeout` is the default deadline of every call in seconds (None: no
        deadline); `metadata` is sent with every call; `channel_options` add to
        or override the default channel arguments (`_core.CHANNEL_OPTIONS`).

        `auth_token` is sent as `authorization: Bearer <token>` with every call
        (for engines started with `--auth-token`). The channel uses TLS when `tls`
        is true or any certificate is given: `root_certificates` (PEM) verify
        the server (None: the system's roots); `certificate_chain` and
        `private_key` (PEM) identify the client to engines that require mutual TLS.
        """
        self._targets = Targets.parse(target)
        self.target = self._targets.target
        """The gRPC target this client talks to."""
        self._timeout = timeout
        self._metadata = auth_metadata(metadata, auth_token)
        self._credentials = tls_credentials(tls, root_certificates, certificate_chain, private_key)
        self._direct_options = merge_channel_options(channel_options)
        extra = multi_target_options() if self._targets.multi else []
        self._channel = self._open_channel(self.target, merge_channel_options([*extra, *(channel_options or ())]))
        self._stub = engine_pb2_grpc.EngineStub(self._channel)
        self._routes = RouteBook()
        self._direct: dict[str, tuple[grpc.Channel, engine_pb2_grpc.EngineStub]] = {}
        self._health_check = self._channel.unary_unary(
            HEALTH_CHECK_METHOD, request_serializer=raw_bytes, response_deserializer=raw_bytes
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Closes the channel; calls in flight are cancelled."""
        self._channel.close()
        for channel, _ in self._direct.values():
            channel.close()
        self._direct.clear()

    def _open_channel(self, target: str, options: list[tuple[str, Any]]) -> grpc.Channel:
        if self._credentials is None:
            return grpc.insecure_channel(target, options=options)
        return grpc.secure_channel(target, self._credentials, options=options)

    def generate(self, prompt: str, *, timeout: float | None = None, **options: Unpack[GenerateOptions]) -> Result:
        """Runs one request to completion and returns all its outputs.

        `options` are those of `_core.build_request`; `timeout` overrides the
        client's deadline for this call.
        """
        request = build_request(prompt, **options)
        call = self._stub.Generate.future(request, **self._call(timeout))
        request_id = ""
        try:
            request_id = self._routes.started(call.initial_metadata())  # sent as the engine accepts it
            response: engine_pb2.GenerateResponse = call.result()
        except grpc.RpcError as err:
            raise call_error(err, request.request_id or request_id, self._routes.route(request_id)) from err
        finally:
            call.cancel()  # no-op once the call has finished
            self._routes.finished(request_id)
        return _codec.result_from_proto(response)

    def stream(self, prompt: str, *, timeout: float | None = None, **options: Unpack[StreamOptions]) -> Iterator[Event]:
        """Runs one request and yields its events, ending with `Completed`.

        The request is checked now and sent when iteration starts. Leaving the
        loop early (or dropping the iterator) cancels the request on the engine.
        """
        request = build_request(prompt, **options)
        return self._events(request, timeout)

    def _events(self, request: engine_pb2.GenerateRequest, timeout: float | None) -> Iterator[Event]:
        assembler = StreamAssembler()
        call = self._stub.Stream(request, **self._call(timeout))
        request_id = ""
        try:
            request_id = self._routes.started(call.initial_metadata())
            for message in call:
                event = assembler.feed(message)
                if event is not None:
                    yield event
            assembler.finish()
        except grpc.RpcError as err:
            raise call_error(err, request.request_id or request_id, self._routes.route(request_id)) from err
        finally:
            call.cancel()  # no-op once the call has finished
            self._routes.finished(request_id)

    def stats(self, model: str = "", *, timeout: float | None = None) -> Stats:
        """Cumulative engine counters, for one model or ("") all of them."""
        response: engine_pb2.StatsResponse = self._unary(
            self._stub.Stats, engine_pb2.StatsRequest(model=model), timeout
        )
        return _codec.stats_from_proto(response)

    def list_models(self, *, timeout: float | None = None) -> ModelList:
        """The models the engine serves, with their defaults and the engine's limits."""
        response: engine_pb2.ListModelsResponse = self._unary(
            self._stub.ListModels, engine_pb2.ListModelsRequest(), timeout
        )
        return _codec.model_list_from_proto(response)

    def cancel(self, request_id: str, *, timeout: float | None = None) -> str:
        """Cancels a queued or running request; returns "queued" or "running".

        The Cancel goes to the engine that runs the request: for a request this
        client started, the engine named in its response headers (behind Envoy,
        with Envoy's route header); with several engines and a request started
        elsewhere, each engine in turn until one knows it. Raises NotFoundError
        for an unknown or finished request id.
        """
        message = engine_pb2.CancelRequest(request_id=request_id)
        route = self._routes.route(request_id)
        if not self._targets.multi:
            metadata = (*self._metadata, *(route.cancel_metadata() if route else ()))
            options = call_options(timeout, self._timeout, metadata)
            try:
                return self._stub.Cancel(message, **options).state
            except grpc.RpcError as err:
                raise from_rpc_error(err, request_id=request_id) from err
        address = self._address_of(route.engine_id, timeout) if route and route.engine_id else None
        candidates = [address] if address else self._engine_addresses()
        last: Exception = NotFoundError(
            f"no engine knows request {request_id!r}", code=grpc.StatusCode.NOT_FOUND, request_id=request_id
        )
        for candidate in candidates:
            try:
                return self._direct_stub(candidate).Cancel(message, **self._call(timeout)).state
            except grpc.RpcError as err:
                last = from_rpc_error(err, request_id=request_id)
                if err.code() not in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAVAILABLE):
                    break
        raise last

    def _engine_addresses(self) -> list[str]:
        """The engines' addresses: as listed, or as the DNS name resolves now."""
        if self._targets.dns_name is None:
            return list(self._targets.addresses)
        host, port = self._targets.dns_name
        return list(resolved_addresses(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)))

    def _direct_stub(self, address: str) -> engine_pb2_grpc.EngineStub:
        """A stub on a channel to one engine (kept until `close`)."""
        if address not in self._direct:
            options = self._direct_options
            if self._targets.dns_name is not None and self._credentials is not None:
                options = [*options, ("grpc.ssl_target_name_override", self._targets.dns_name[0])]
            channel = self._open_channel(address, options)
            self._direct[address] = (channel, engine_pb2_grpc.EngineStub(channel))
        return self._direct[address][1]

    def _address_of(self, engine_id: str, timeout: float | None) -> str | None:
        """The address of the engine with id `engine_id`, asking each engine's Stats once when unknown."""
        if (known := self._routes.address_of(engine_id)) is not None:
            return known
        for address in self._engine_addresses():
            try:
                stats = self._direct_stub(address).Stats(engine_pb2.StatsRequest(), **self._call(timeout))
            except grpc.RpcError:
                continue
            self._routes.learn(stats.engine_id, address)
        return self._routes.address_of(engine_id)

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Blocks until the engine's health check reports SERVING.

        Raises UnavailableError when that does not happen within `timeout`
        seconds, and UnimplementedError when the server has no health service.
        """
        deadline = time.monotonic() + timeout
        ready = grpc.channel_ready_future(self._channel)
        try:
            ready.result(timeout=timeout)
        except grpc.FutureTimeoutError:
            ready.cancel()
            raise UnavailableError(f"could not connect to {self.target} within {timeout:g} s") from None
        last_state = "not checked"
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                reply = self._health_check(HEALTH_CHECK_REQUEST, timeout=remaining, metadata=self._metadata or None)
            except grpc.RpcError as err:
                if err.code() == grpc.StatusCode.UNIMPLEMENTED:
                    raise from_rpc_error(err) from err
                last_state = f"{err.code().name}: {err.details()}"
            else:
                status = parse_health_status(reply)
                if status == HEALTH_SERVING:
                    return
                last_state = f"health status {status}"
            time.sleep(max(0.0, min(WAIT_READY_POLL_S, deadline - time.monotonic())))
        raise UnavailableError(f"{self.target} not serving after {timeout:g} s (last: {last_state})")

    def _call(self, timeout: float | None) -> dict[str, Any]:
        return call_options(timeout, self._timeout, self._metadata)

    def _unary(self, method: Any, request: Any, timeout: float | None, request_id: str = "") -> Any:
        """Calls a unary method, turning a failed status into an APIError."""
        try:
            return method(request, **self._call(timeout))
        except grpc.RpcError as err:
            raise from_rpc_error(err, request_id=request_id or None) from err
