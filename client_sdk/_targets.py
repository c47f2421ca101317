"""Several engines behind one client: targets, the service config, and where each request runs.

No I/O happens here. A client given several engines (a list of addresses, an
``ipv4:``/``ipv6:`` target with several addresses, or a ``dns:`` name) gets gRPC's
own machinery through its service config: ``round_robin`` over the engines that
answer, client-side health checking (an engine that reports NOT_SERVING, such as
one draining, gets no new call), a retry policy for UNAVAILABLE and
``waitForReady``. gRPC retries a call only until the first response header
arrives, and an engine sends its headers as it accepts a request, so only a
refusal (draining, warming up) is retried, never a request an engine started.

Cancel must reach the engine that runs the request. Every accepted Generate and
Stream names its engine (``x-engine-id``) and, behind Envoy with the stateful
session filter of ``deploy/envoy``, carries Envoy's route header; `RouteBook`
keeps both per request id so that `cancel` can go there.
"""

from __future__ import annotations

import ipaddress
import json
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from google.rpc import error_details_pb2

from client_sdk.errors import APIError, UnavailableError

ENGINE_SERVICE = "ditserve.v1.Engine"
"""Full name of the Engine service (the health service name too)."""

REQUEST_ID_METADATA_KEY = "x-request-id"
"""Metadata key of the request id, in the initial and trailing metadata of Generate and Stream."""
ENGINE_ID_METADATA_KEY = "x-engine-id"
"""Metadata key of the id of the engine that accepted the request."""
ROUTE_METADATA_KEY = "x-ditserve-route"
"""The header Envoy's stateful session filter sets (deploy/envoy/envoy.yaml): the engine's address,
encoded by Envoy. Sent back with Cancel, it makes Envoy route the Cancel to that engine."""

RETRY_POLICY: dict[str, Any] = {
    "maxAttempts": 5,
    "initialBackoff": "0.2s",
    "maxBackoff": "2s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}
"""gRPC retry policy of multi-engine clients: UNAVAILABLE only, which gRPC retries only before the
engine's first response header (that is, before the engine accepted the request)."""

RETRY_BUFFER_BYTES = 64 * 1024 * 1024
"""Bytes of a request gRPC keeps to retry it (its default, 256 KiB, would commit a request with input
images at once, and so never retry it)."""

MAX_REMEMBERED = 4096
"""Requests whose engine a client remembers at once (the oldest are forgotten first)."""


def service_config(health_service: str = ENGINE_SERVICE) -> str:
    """The gRPC service config (JSON) of a client for several engines."""
    methods = [{"service": ENGINE_SERVICE, "method": name} for name in ("Generate", "Stream", "Stats", "ListModels")]
    return json.dumps(
        {
            "loadBalancingConfig": [{"round_robin": {}}],
            "healthCheckConfig": {"serviceName": health_service},
            "methodConfig": [{"name": methods, "waitForReady": True, "retryPolicy": RETRY_POLICY}],
        }
    )


def multi_target_options() -> list[tuple[str, Any]]:
    """Channel arguments of a client for several engines (before the caller's own)."""
    return [
        ("grpc.service_config", service_config()),
        ("grpc.enable_retries", 1),
        ("grpc.per_rpc_retry_buffer_size", RETRY_BUFFER_BYTES),
    ]


@dataclass(frozen=True)
class Targets:
    """What a client was pointed at: one gRPC target string, and whether it names several engines."""

    target: str
    """The channel's target, e.g. ``ipv4:10.0.0.1:50051,10.0.0.2:50051``."""
    multi: bool
    """True for several engines (a list, a multi-address ``ipv4:``/``ipv6:`` target, or ``dns:``)."""
    addresses: tuple[str, ...] = ()
    """The engines' ``host:port`` addresses when the target lists them; empty for ``dns:``."""
    dns_name: tuple[str, int] | None = None
    """(host, port) of a ``dns:`` target, resolved when a Cancel needs the engines' addresses."""

    @classmethod
    def parse(cls, target: str | Sequence[str]) -> Targets:
        """Targets from a target string or a list of ``host:port`` IP addresses of one family.

        Raises ValueError for an empty list, a list entry that is not an IP address with a port,
        or a list mixing IPv4 and IPv6 (gRPC's ``ipv4:``/``ipv6:`` targets take one family).
        """
        if isinstance(target, str):
            return cls._parse_string(target)
        entries = [entry.strip() for entry in target]
        if not entries:
            raise ValueError("no engine address given")
        if len(entries) == 1:
            return cls._parse_string(entries[0])
        families = {_ip_family(entry) for entry in entries}
        if len(families) > 1:
            raise ValueError("a list of engines takes addresses of one family (all IPv4 or all IPv6)")
        scheme = families.pop()
        return cls(target=f"{scheme}:" + ",".join(entries), multi=True, addresses=tuple(entries))

    @classmethod
    def _parse_string(cls, target: str) -> Targets:
        scheme, sep, rest = target.partition(":")
        if sep and scheme in ("ipv4", "ipv6"):
            addresses = tuple(address for address in rest.split(",") if address)
            return cls(target=target, multi=len(addresses) > 1, addresses=addresses)
        if sep and scheme == "dns":
            name = rest.lstrip("/")
            if rest.startswith("//"):  # dns://authority/host:port: the authority is the DNS server
                name = rest[2:].partition("/")[2]
            host, _, port = name.rpartition(":")
            return cls(target=target, multi=True, dns_name=(host.strip("[]") or name, int(port or 443)))
        return cls(target=target, multi=False, addresses=(target,))


def _ip_family(address: str) -> str:
    """``ipv4`` or ``ipv6`` for an ``IP:port`` address; ValueError for anything else."""
    host, sep, port = address.rpartition(":")
    try:
        if not sep or not port.isdigit():
            raise ValueError(address)
        ip = ipaddress.ip_address(host[1:-1] if host.startswith("[") else host)
    except ValueError:
        raise ValueError(
            f"{address!r}: a list of engines takes IP:port addresses (IPv6 as [addr]:port); "
            "for a name that resolves to several engines use 'dns:///NAME:PORT'"
        ) from None
    if ip.version == 6 and not host.startswith("["):
        raise ValueError(f"{address!r}: write an IPv6 address in brackets, [addr]:port")
    return f"ipv{ip.version}"


def resolved_addresses(infos: Iterable[tuple[Any, ...]]) -> tuple[str, ...]:
    """``host:port`` addresses, in order and without repeats, from ``socket.getaddrinfo`` results."""
    seen: dict[str, None] = {}
    for info in infos:
        host, port = info[4][0], info[4][1]
        seen[f"[{host}]:{port}" if ":" in host else f"{host}:{port}"] = None
    return tuple(seen)


@dataclass(frozen=True)
class Route:
    """Where one request runs, as its engine told in the response headers."""

    engine_id: str
    """The accepting engine's id (``x-engine-id``); empty when the engine did not send one."""
    route: str = ""
    """Envoy's route header (``x-ditserve-route``), when a proxy set one."""

    def cancel_metadata(self) -> tuple[tuple[str, str], ...]:
        """Metadata that makes a proxy send the Cancel to this request's engine."""
        return ((ROUTE_METADATA_KEY, self.route),) if self.route else ()


class RouteBook:
    """Which engine runs each request this client started, and each known engine's address.

    Thread-safe; holds at most `MAX_REMEMBERED` requests.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: OrderedDict[str, Route] = OrderedDict()
        self._addresses: dict[str, str] = {}

    def started(self, metadata: Iterable[tuple[str, Any]] | None) -> str:
        """Records the request whose initial metadata this is; returns its request id ("" if none)."""
        values = {key: value for key, value in (metadata or ()) if isinstance(value, str)}
        request_id = values.get(REQUEST_ID_METADATA_KEY, "")
        if request_id:
            route = Route(values.get(ENGINE_ID_METADATA_KEY, ""), values.get(ROUTE_METADATA_KEY, ""))
            with self._lock:
                self._requests[request_id] = route
                self._requests.move_to_end(request_id)
                while len(self._requests) > MAX_REMEMBERED:
                    self._requests.popitem(last=False)
        return request_id

    def finished(self, request_id: str) -> None:
        """Forgets a request that ended."""
        with self._lock:
            self._requests.pop(request_id, None)

    def route(self, request_id: str) -> Route | None:
        """The request's route, or None for a request this client did not start (or that ended)."""
        with self._lock:
            return self._requests.get(request_id)

    def address_of(self, engine_id: str) -> str | None:
        """The address of a known engine."""
        with self._lock:
            return self._addresses.get(engine_id)

    def learn(self, engine_id: str, address: str) -> None:
        """Records that the engine at `address` has id `engine_id`."""
        if engine_id:
            with self._lock:
                self._addresses[engine_id] = address


LOST_ENGINE_REASON = "ENGINE_LOST"
"""ErrorInfo reason of the UnavailableError for a request whose engine vanished after accepting it."""


def lost_engine_error(err: grpc.RpcError, request_id: str, route: Route | None) -> APIError | None:
    """The UnavailableError for a Generate or Stream call that lost its engine midway, else None.

    A call an engine accepted (`route` known) that ends without the engine's own trailers
    (``x-engine-id``) and not by the caller's cancel or deadline lost its engine: the connection or a
    proxy's stream was reset, which gRPC reports as UNAVAILABLE, or, through Envoy, as INTERNAL
    "RST_STREAM". Both become UnavailableError (reason ENGINE_LOST) naming the engine and the request;
    no retry policy repeats it, since the engine may have run it.
    """
    if route is None or err.code() in (grpc.StatusCode.CANCELLED, grpc.StatusCode.DEADLINE_EXCEEDED):
        return None
    if ENGINE_ID_METADATA_KEY in {key for key, _ in (err.trailing_metadata() or ())}:
        return None
    engine = route.engine_id or "the engine"
    return UnavailableError(
        f"lost {engine} while it ran the request ({err.code().name}: {err.details()})",
        code=grpc.StatusCode.UNAVAILABLE,
        details=(error_details_pb2.ErrorInfo(reason=LOST_ENGINE_REASON, domain="ditserve"),),
        request_id=request_id or None,
    )
