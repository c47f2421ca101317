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
