"""Engine configuration: limits enforced on every request and server settings."""

from __future__ import annotations

import dataclasses
import os
import socket
import time


def _limit(default: int, help: str) -> int:
    return dataclasses.field(default=default, metadata={"help": help})


@dataclasses.dataclass(frozen=True)
class Limits:
    """Bounds every request is checked against before any work; reported by ListModels.

    Each field is also a ``ditserve serve`` flag (``max_width`` -> ``--max-width``).
    """

    max_width: int = _limit(2048, "largest width in pixels")
    max_height: int = _limit(2048, "largest height in pixels")
    max_pixels: int = _limit(2048 * 2048, "largest width x height; bounds memory for non-square sizes")
    max_steps: int = _limit(1000, "most denoising steps per request")
    max_outputs: int = _limit(8, "most outputs per request (the batch of one pipeline call)")
    max_frames: int = _limit(257, "most video frames per request")
    max_prompt_chars: int = _limit(4096, "longest prompt or negative prompt in characters")
    max_input_images: int = _limit(4, "most input images per request")
    max_input_image_bytes: int = _limit(16 * 1024 * 1024, "largest encoded input image in bytes")
    max_request_bytes: int = _limit(
        32 * 1024 * 1024, "largest request message in bytes; gRPC itself refuses larger ones (RESOURCE_EXHAUSTED)"
    )
    max_queue: int = _limit(64, "requests that may wait at once; more get RESOURCE_EXHAUSTED with a retry hint")
    max_input_pixels: int = _limit(
        0, "largest input image, width x height as its header states, checked before decoding; 0 = max_pixels"
    )
    max_queued_input_pixels: int = _limit(
        0,
        "decoded input-image and input-video-frame pixels all waiting requests may hold together; more get "
        "RESOURCE_EXHAUSTED with a retry hint; 0 = 4 x max_input_images x max_input_pixels",
    )
    max_input_video_bytes: int = _limit(0, "largest encoded input video in bytes; 0 = max_request_bytes")
    max_input_video_frames: int = _limit(0, "most frames of an input video (decoded); 0 = max_frames")
    max_input_video_pixels: int = _limit(
        0, "largest input video frame, width x height as its stream states, checked before decoding; 0 = max_pixels"
    )

    def __post_init__(self) -> None:
        derived = {"max_input_pixels": lambda: self.max_pixels}
        derived["max_queued_input_pixels"] = lambda: 4 * self.max_input_images * self.max_input_pixels
        derived["max_input_video_bytes"] = lambda: self.max_request_bytes
        derived["max_input_video_frames"] = lambda: self.max_frames
        derived["max_input_video_pixels"] = lambda: self.max_pixels
        for name, value in derived.items():
            if getattr(self, name) == 0:
                object.__setattr__(self, name, value())
        for field in dataclasses.fields(self):
            if getattr(self, field.name) < 1:
                raise ValueError(f"{field.name} must be at least 1, got {getattr(self, field.name)}")
        if self.max_queued_input_pixels < self.max_input_images * self.max_input_pixels:
            raise ValueError(
                "max_queued_input_pixels must hold one request's images at least "
                f"(max_input_images x max_input_pixels = {self.max_input_images * self.max_input_pixels})"
            )


@dataclasses.dataclass(frozen=True)
class BatchingConfig:
    """How queued requests are grouped into one pipeline call (see ``runtime/batcher.py``)."""

    max_batch: int = 1
    """Most requests in one pipeline call; 1 turns batching off. Batching trades a little latency for
    throughput and pays off on accelerators with headroom (about 1.5x at batch 4 for a FLUX-size
    transformer at 512x512 on an H100); on a 2-core CPU about 1.3x for the builtin default model."""
    batch_window_ms: float = 10.0
    """How long the first request of a batch waits for compatible ones when fewer than ``max_batch``
    are queued. Ignored when ``max_batch`` is 1."""

    def __post_init__(self) -> None:
        if self.max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {self.max_batch}")
        if not 0 <= self.batch_window_ms <= 10_000:
            raise ValueError(f"batch_window_ms must be between 0 and 10000, got {self.batch_window_ms}")


@dataclasses.dataclass(frozen=True)
class TLSConfig:
    """PEM files of the server's TLS identity, and optionally the CA its clients must present."""

    cert_chain: bytes
    """The server's certificate chain (PEM)."""
    private_key: bytes
    """The server certificate's private key (PEM)."""
    client_ca: bytes | None = None
    """When set, mutual TLS: every client must present a certificate signed by this CA (PEM)."""


@dataclasses.dataclass(frozen=True)
class ServerConfig:
    """Where and how the gRPC server listens."""

    host: str = "127.0.0.1"
    """Interface to bind: an IPv4 or IPv6 address (``::1``, or ``[::1]``) or a name; ``0.0.0.0`` for every
    IPv4 interface, ``::`` for every interface of both families (dual stack)."""
    port: int = 50051
    """Port to bind; 0 picks a free one."""
    grace_s: float = 10.0
    """Seconds running requests get to finish on shutdown."""
    stream_chunk_bytes: int = 1024 * 1024
    """Outputs larger than this travel as chunk events in Stream, in pieces of this size."""
    cache_policy: str = "none"
    """Cache policy of requests that set none: ``PRESET`` or ``PRESET:field=value,...``."""
    auth_token: str | None = None
    """When set, every RPC but health must carry ``authorization: Bearer <token>``."""
    tls: TLSConfig | None = None
    """When set, the port speaks TLS (mutual TLS when ``tls.client_ca`` is set); otherwise plaintext."""
    metrics_port: int | None = None
    """Port of the Prometheus metrics endpoint (HTTP ``/metrics`` on ``host``); None = no endpoint."""

    health_port: int | None = None
    """Port of a second, plaintext and unauthenticated gRPC server on ``host`` that serves only
    ``grpc.health.v1.Health`` (for Kubernetes probes when the main port speaks TLS or needs a token);
    None = no such port."""
    max_connection_age_s: float | None = None
    """Seconds after which the server asks a client connection to go away (HTTP/2 GOAWAY), so that
    L4 balancers spread long-lived connections again; None = never."""
    max_connection_age_grace_s: float | None = None
    """Seconds calls on a connection past its age may still run before it is closed; None = until
    they finish."""
    engine_id: str = dataclasses.field(default_factory=lambda: default_engine_id())
    """This engine's id in every response (``x-engine-id`` metadata, ``engine_id`` fields)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "host", bare_host(self.host))
        if self.auth_token is not None and not self.auth_token.strip():
            raise ValueError("the auth token must not be empty (leave it unset to serve without auth)")
        for name in ("port", "metrics_port", "health_port"):
            port = getattr(self, name)
            if port is not None and not 0 <= port <= 65535:
                raise ValueError(f"{name} must be between 0 and 65535, got {port}")
        if self.metrics_port and self.metrics_port == self.port:
            raise ValueError(f"the metrics port and the gRPC port must differ, both are {self.port}")
        if not 0 <= self.grace_s <= 86_400:  # also refuses NaN
            raise ValueError(f"the grace period must be between 0 and 86400 seconds, got {self.grace_s}")

    @property
    def address(self) -> str:
        """``host:port`` as gRPC writes it (an IPv6 host in brackets)."""
        return join_host_port(self.host, self.port)


def bare_host(host: str) -> str:
    """``host`` without the brackets of an IPv6 literal: ``[::1]`` -> ``::1``."""
    host = host.strip()
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def join_host_port(host: str, port: int | None) -> str:
    """``host:port``, with an IPv6 literal in brackets (``[::1]:50051``)."""
    host = bare_host(host)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def default_engine_id() -> str:
    """The host (pod) name, the process id and the start time in UTC with milliseconds, e.g.
    ``ditserve-7d9f-x2k4p/1/20261129T181502.123Z``: unique across restarts and replicas."""
    now = time.time()
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"
    return f"{socket.gethostname()}/{os.getpid()}/{stamp}"
