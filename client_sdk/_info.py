"""What the engine reports about itself: served models, limits and counters.

Returned by `Client.list_models` and `Client.stats`; re-exported by
`client_sdk.types`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["ServerInfo", "LoraInfo", "ModelInfo", "Limits", "ModelList", "Duration", "ModelStats", "Stats"]


@dataclass(frozen=True)
class ServerInfo:
    """What the engine is and what it runs on (after Triton's ServerMetadata)."""

    name: str = ""
    """"ditserve"; empty for an engine too old to say."""
    version: str = ""
    """The engine's version, e.g. "0.1.0"."""
    api: str = ""
    """The contract's protobuf package, "ditserve.v1"."""
    build: dict[str, str] = field(default_factory=dict)
    """Versions of what runs the models: "python", "torch", "diffusers", ..."""


@dataclass(frozen=True)
class LoraInfo:
    """One LoRA adapter the engine loaded for a model."""

    name: str
    """Name to pass in `loras=`."""
    source: str
    """The file or directory it was loaded from."""
    rank: int
    """Its largest rank over its layers."""
    layers: int
    """How many layers of the model it adapts."""
    components: tuple[str, ...]
    """The pipeline components it adapts, e.g. ("transformer",)."""


@dataclass(frozen=True)
class ModelInfo:
    """One model the engine serves, with its defaults."""

    name: str
    """Name to pass as `model=`."""
    family: str
    """Model family, e.g. "flux"."""
    pipeline_class: str
    """The diffusers pipeline class, e.g. "FluxPipeline"."""
    is_default: bool
    """True for the engine's default model."""
    output_kind: str
    """"image" or "video"."""
    default_width: int
    """Width used when a request leaves it unset; 0 when the model renders a size that follows its
    input image (leave width and height unset, or send that size)."""
    default_height: int
    """Height used when a request leaves it unset; 0 as `default_width`."""
    default_steps: int
    """Denoising steps used when a request leaves them unset."""
    default_guidance_scale: float
    """Guidance scale used when a request leaves it unset."""
    default_frames: int
    """Frames of a default video; 1 for image models."""
    spatial_factor: int
    """Width and height must be multiples of this."""
    supports_negative_prompt: bool
    """Whether the model uses the negative prompt."""
    input_roles: tuple[str, ...]
    """Roles of the input images it accepts; empty for text-only models."""
    source: str
    """Where it was loaded from: a local directory, or "builtin"."""
    num_transformer_blocks: int
    """Number of transformer blocks the cache can split."""
    parameters: tuple[str, ...] = ()
    """Request parameters beyond the common ones it takes: "strength", "controlnet_conditioning_scale",
    "layers"."""
    required_roles: tuple[str, ...] = ()
    """Roles of `input_roles` that every request must send."""
    default_strength: float | None = None
    """Strength when a request sends none (image-to-image and inpainting models); None otherwise."""
    control_images: int = 0
    """Control images every request must send (one per ControlNet); 0 for models without one."""
    repeated_roles: tuple[str, ...] = ()
    """Roles of `input_roles` a request may send several images of, in order (reference images); any
    other role sent twice is refused (`InvalidArgumentError`)."""
    refuses_guidance_scale: bool = False
    """True when the model takes no guidance scale: a request that sets one is refused."""
    default_layers: int = 0
    """Layers each output is split into when a request sends none (layered decomposition models); 0 otherwise."""
    max_layers: int = 0
    """Most layers a request may ask for (layered decomposition models); 0 otherwise."""
    outputs_alpha: bool = False
    """True when the outputs are RGBA images: PNG and WebP keep the alpha channel, JPEG is refused."""
    loras: tuple[LoraInfo, ...] = ()
    """The LoRA adapters loaded for this model."""
    max_loras_per_request: int = 0
    """Most adapters one request may combine; 0 when the model has none."""
    video_roles: tuple[str, ...] = ()
    """Roles of the input videos it accepts (video-to-video models: "video"); empty for the others."""
    required_video_roles: tuple[str, ...] = ()
    """Roles of `video_roles` that every request must send."""
    frames_from_video: str = ""
    """The video role whose frame count the output has: a request that leaves `num_frames` unset gets
    that video's frames (cut to the model's frame rule), one that sets it the first that many; "" = none."""
    refuses_prompt: bool = False
    """True when the model takes no prompt (a video upscaler): requests must leave it empty."""
    continues_video: str = ""
    """The video role the model continues: its output holds that video's frames followed by `num_frames`
    new ones; "" = none (the output holds `num_frames` frames)."""
    requires_camera: bool = False
    """True for a camera-controlled world model (Sana-WM): every request sends a `CameraTrajectory`
    (`camera=`); other models refuse one."""


@dataclass(frozen=True)
class Limits:
    """Limits the engine enforces on every request."""

    max_width: int
    """Largest width in pixels."""
    max_height: int
    """Largest height in pixels."""
    max_pixels: int
    """Largest width*height."""
    max_steps: int
    """Most denoising steps."""
    max_outputs: int
    """Most outputs per request."""
    max_frames: int
    """Most frames per video."""
    max_prompt_chars: int
    """Longest prompt, in characters."""
    max_input_images: int
    """Most input images per request."""
    max_input_image_bytes: int
    """Largest input image, in bytes."""
    max_request_bytes: int
    """Largest request message, in bytes."""
    max_queue: int
    """Requests that may wait at once; beyond it calls fail with ResourceExhaustedError."""
    max_input_pixels: int = 0
    """Largest input image, width x height from its header."""
    max_queued_input_pixels: int = 0
    """Decoded input-image and input-video pixels waiting requests may hold together."""
    max_input_video_bytes: int = 0
    """Largest input video, in bytes."""
    max_input_video_frames: int = 0
    """Most frames of an input video."""
    max_input_video_pixels: int = 0
    """Largest input video frame, width x height."""


@dataclass(frozen=True)
class ModelList:
    """The models an engine serves and the limits it enforces."""

    models: tuple[ModelInfo, ...]
    """Every served model."""
    limits: Limits
    """The engine's request limits."""
    server: ServerInfo = field(default_factory=ServerInfo)
    """The engine's name, version and build."""

    @property
    def default(self) -> ModelInfo | None:
        """The engine's default model, or None when none is marked default."""
        return next((m for m in self.models if m.is_default), None)


@dataclass(frozen=True)
class Duration:
    """Count and total duration of one kind of event."""

    count: int
    """Number of events."""
    total_ms: float
    """Total milliseconds over all events."""

    @property
    def mean_ms(self) -> float:
        """Mean milliseconds per event; 0.0 when there were none."""
        return self.total_ms / self.count if self.count else 0.0


@dataclass(frozen=True)
class ModelStats:
    """Cumulative counters of one model since the engine started."""

    model: str
    """Model name."""
    success: Duration
    """Requests that finished successfully, with their total time."""
    failure: Duration
    """Requests that failed inside the engine."""
    cancelled: Duration
    """Requests cancelled by the client, its deadline, or Cancel."""
    rejected: int
    """Requests rejected before queueing (validation, queue full)."""
    queue: Duration
    """Time spent queued."""
    prepare: Duration
    """Time spent preparing (prompt encoding, latents)."""
    denoise: Duration
    """Time spent in the denoising loop."""
    decode: Duration
    """Time spent decoding latents."""
    encode: Duration
    """Time spent encoding outputs."""
    outputs: int
    """Outputs produced."""
    steps: int
    """Denoising steps run."""
    computed_steps: int
    """Steps whose middle blocks were computed."""
    cached_steps: int
    """Steps whose middle blocks reused the cache."""
    last_request_unix_ms: int
    """Unix epoch milliseconds of the last finished request; 0 when none yet."""
    cancelled_steps: int = 0
    """Denoising steps run by requests that were then cancelled."""
    lora_requests: Mapping[str, int] = field(default_factory=dict)
    """Requests that finished successfully with each LoRA adapter, by name."""
    compile_graphs: int = 0
    """With --compile: graphs built for the transformer's repeated blocks (warm-up included)."""
    compiled_calls: int = 0
    """With --compile: transformer calls in which every repeated block ran a compiled graph."""
    eager_calls: int = 0
    """With --compile: transformer calls in which some block ran uncompiled (past torch's recompile limit)."""


@dataclass(frozen=True)
class Stats:
    """A snapshot of the engine's counters."""

    models: tuple[ModelStats, ...]
    """One entry per model (or the one asked for)."""
    queue_depth: int
    """Requests waiting now."""
    running: int
    """Requests running now."""
    uptime_s: float
    """Seconds since the engine started."""
    device: str
    """The engine's device, e.g. "cuda:0" or "cpu"."""
    engine_id: str = ""
    """The engine's id (see `Result.engine_id`)."""
    server: ServerInfo = field(default_factory=ServerInfo)
    """The engine's name, version and build."""
