"""Engine configuration: limits enforced on every request and server settings."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Limits:
    """Bounds every request is checked against before any work; reported by ListModels."""

    max_width: int = 2048
    """Largest width in pixels."""
    max_height: int = 2048
    """Largest height in pixels."""
    max_pixels: int = 2048 * 2048
    """Largest width x height; bounds memory for non-square sizes."""
    max_steps: int = 1000
    """Most denoising steps per request."""
    max_outputs: int = 8
    """Most outputs per request (batch size of one pipeline call)."""
    max_frames: int = 257
    """Most video frames per request."""
    max_prompt_chars: int = 4096
    """Longest prompt or negative prompt in characters; text encoders truncate far earlier."""
    max_input_images: int = 4
    """Most input images per request."""
    max_input_image_bytes: int = 16 * 1024 * 1024
    """Largest encoded input image."""
    max_request_bytes: int = 32 * 1024 * 1024
    """Largest request message gRPC accepts; larger ones get RESOURCE_EXHAUSTED from gRPC itself."""
    max_queue: int = 64
    """Requests that may wait at once; more get RESOURCE_EXHAUSTED with a retry hint."""


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
