"""Engine configuration: limits enforced on every request and server settings."""

from __future__ import annotations

import dataclasses


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

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            if getattr(self, field.name) < 1:
                raise ValueError(f"{field.name} must be at least 1, got {getattr(self, field.name)}")


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
    """Interface to bind; ``0.0.0.0`` for all."""
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
