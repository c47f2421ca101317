"""Shared messages of the engine: the validated job, its events, its result.

``JobSpec`` is what the server hands the engine after validation; events are
what the worker reports back. All are frozen dataclasses with no grpc or torch
types, so the runtime can be driven by any transport.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine_service.cache.presets import CachePlan


NO_CACHE_TAG = "none"
#: Frame rate of a video whose request leaves ``fps`` unset.
DEFAULT_FPS = 16


def denoising_steps(num_inference_steps: int, strength: float | None) -> int:
    """Steps an image-to-image pipeline runs for ``num_inference_steps`` at ``strength``: diffusers
    starts its schedule at ``int(steps - min(steps * strength, steps))``. Without a strength, all."""
    if strength is None:
        return num_inference_steps
    start = int(max(num_inference_steps - min(num_inference_steps * strength, num_inference_steps), 0))
    return num_inference_steps - start


class OutputFormat(enum.Enum):
    """Encodings the engine produces."""

    PNG = "png"
    JPEG = "jpeg"
    WEBP = "webp"
    MP4 = "mp4"
    PNG_FRAMES = "png_frames"


@dataclasses.dataclass(frozen=True)
class CameraTrajectory:
    """The path a camera-controlled world model's camera moves along (``GenerateRequest.camera``), as
    validated: exactly one of ``action`` and ``c2w``, covering the job's frames."""

    intrinsics: tuple[float, float, float, float]
    """Pinhole ``(fx, fy, cx, cy)`` in pixels of the input image as sent."""
    action: str = ""
    """Action string, e.g. ``"w-80,jw-40,w-40"`` (keys held for that many frames); empty with ``c2w``."""
    c2w: tuple[tuple[float, ...], ...] = ()
    """Camera-to-world poses, one per frame, each the 16 numbers of a row-major 4x4 rigid transform;
    empty with ``action``."""

    @classmethod
    def still(cls, frames: int, width: int, height: int) -> CameraTrajectory:
        """A camera at rest for ``frames`` frames, with a 90-degree horizontal field of view over a
        ``width`` x ``height`` image (the warm-up's)."""
        identity = (1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0)
        half = width / 2
        return cls(intrinsics=(half, half, half, height / 2), c2w=(identity,) * frames)


@dataclasses.dataclass(frozen=True)
class JobSpec:
    """A validated request: every value in range and resolved against the model's defaults."""

    request_id: str
    model: str
    prompt: str
    negative_prompt: str
    width: int
    height: int
    num_inference_steps: int
    guidance_scale: float
    seed: int
    num_outputs: int
    num_frames: int
    fps: int
    output_format: OutputFormat
    output_quality: int
    preview_every: int
    input_images: tuple[Any, ...] = ()
    """Decoded input images (PIL) with their roles, as ``(role, image)`` pairs."""
    input_videos: tuple[Any, ...] = ()
    """Input videos with their roles, as ``(role, frames)`` pairs: after decoding, ``frames`` is a tuple of
    PIL RGB images (for a family whose frames follow its video, exactly ``num_frames`` of them); before,
    the encoded bytes."""
    cache: CachePlan | None = None
    """The cache configuration to run with; ``None`` = no caching."""
    runs_alone: bool = False
    """Never batched with other jobs (its model's pipeline takes a single random generator)."""
    loras: tuple[tuple[str, float], ...] = ()
    """LoRA adapters to run with, as (name, scale) pairs sorted by name, none at scale 0; empty = the base model."""
    strength: float | None = None
    """Image-to-image / inpainting strength in (0, 1]; ``None`` for models that take none."""
    controlnet_conditioning_scales: tuple[float, ...] = ()
    """One ControlNet conditioning scale per ``"control"`` input image, in request order."""
    denoising_loops: int = 1
    """Whole denoising loops the pipeline runs for the job (a chunked video: one per chunk)."""
    loop_steps: tuple[int, ...] = ()
    """Steps of each denoising loop, in order, for a family whose loops do not each run
    ``num_inference_steps`` (``FamilySpec.loop_steps``) or that runs another number of steps at a
    strength than diffusers' usual count (``FamilySpec.strength_steps``: aMUSEd's image-to-image runs
    ``int(steps x strength)``); empty = ``denoising_loops`` loops of them."""
    task_prompt: str = ""
    """What every row of an in-context grid does (VisualCloze); empty for models that take none."""
    layers: int | None = None
    """RGBA layers each output is split into (a layered decomposition: ``num_outputs x layers``
    images come back, output by output); ``None`` for models that take none."""
    camera: CameraTrajectory | None = None
    """The camera's path for a camera-controlled world model (Sana-WM); ``None`` for models that take none."""

    @property
    def denoising_steps(self) -> int:
        """Steps the pipeline runs over all its loops: the sum of ``loop_steps`` when set, else per
        loop ``num_inference_steps``, or with a strength the last part of its schedule, as diffusers'
        image-to-image pipelines cut it (``get_timesteps``)."""
        if self.loop_steps:
            return sum(self.loop_steps)
        return denoising_steps(self.num_inference_steps, self.strength) * self.denoising_loops

    @property
    def cache_tag(self) -> str:
        """The cache plan's tag (equal tags, equal behaviour), or ``"none"``."""
        return self.cache.tag if self.cache is not None else NO_CACHE_TAG


class JobStatus(enum.IntEnum):
    """Life of a job; ordered, so ``status >= FINISHED`` means done."""

    QUEUED = 0
    RUNNING = 1
    FINISHED = 2
    FAILED = 3
    CANCELLED = 4


@dataclasses.dataclass(frozen=True)
class QueuedEvent:
    """The job waits with ``position`` jobs ahead of it."""

    position: int
    request_id: str


@dataclasses.dataclass(frozen=True)
class StartedEvent:
    """The job left the queue and its pipeline started."""

    seed: int
    total_steps: int
    queue_ms: float


@dataclasses.dataclass(frozen=True)
class StepEvent:
    """One denoising step finished."""

    step: int
    total_steps: int
    timestep: float
    elapsed_ms: float
    step_ms: float
    cached: bool = False
    residual_diff: float | None = None
    cfg_cached: bool | None = None
    cfg_residual_diff: float | None = None
    pruned_blocks: int | None = None
    calibrated: bool | None = None
    """On a cached step with a calibrator: whether it forecast the residual (False: reused as is)."""


@dataclasses.dataclass(frozen=True)
class PreviewEvent:
    """A PNG preview of the current latents after ``step``."""

    step: int
    data: bytes
    width: int
    height: int


@dataclasses.dataclass(frozen=True)
class EncodedOutput:
    """One encoded image, video, or video frame."""

    data: bytes
    mime_type: str
    width: int
    height: int
    num_frames: int
    sha256: str


@dataclasses.dataclass(frozen=True)
class StepRecord:
    """What happened at one step, for the response's cache statistics."""

    step: int
    cached: bool = False
    residual_diff: float | None = None
    cfg_cached: bool | None = None
    cfg_residual_diff: float | None = None
    pruned_blocks: int | None = None
    calibrated: bool | None = None
    """On a cached step with a calibrator: whether it forecast the residual (False: reused as is)."""


@dataclasses.dataclass(frozen=True)
class Timings:
    """Phase durations of one job, in milliseconds."""

    queue_ms: float = 0.0
    prepare_ms: float = 0.0
    denoise_ms: float = 0.0
    decode_ms: float = 0.0
    encode_ms: float = 0.0
    total_ms: float = 0.0


@dataclasses.dataclass(frozen=True)
class JobResult:
    """Everything a finished job returns."""

    request_id: str
    model: str
    seed: int
    outputs: tuple[EncodedOutput, ...]
    steps: tuple[StepRecord, ...]
    cache_policy: str
    timings: Timings
    pruned_ratio: float | None = None
    """Pruned over prunable blocks (DBPrune); ``None`` for other policies."""
    loras: tuple[tuple[str, float], ...] = ()
    """The LoRA adapters the outputs were made with, as (name, scale) pairs."""

    @property
    def cached_steps(self) -> int:
        return sum(1 for s in self.steps if s.cached)

    @property
    def computed_steps(self) -> int:
        return len(self.steps) - self.cached_steps

    @property
    def cfg_cached_steps(self) -> int:
        return sum(1 for s in self.steps if s.cfg_cached)


@dataclasses.dataclass(frozen=True)
class CompletedEvent:
    """The job finished; always the last event of a successful job."""

    result: JobResult


JobEvent = QueuedEvent | StartedEvent | StepEvent | PreviewEvent | CompletedEvent
