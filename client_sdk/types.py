"""Value types of the ditserve client: request parts, results, stream events and engine info.

All are frozen dataclasses built from the engine's protobuf messages by the
client; only `CachePolicy`, `InputImage` and `InputVideo` are built by callers. Fields the
contract marks `optional` are None when the engine left them unset. The engine
info types (`ModelInfo`, `Limits`, `ModelList`, `Duration`, `ModelStats`,
`Stats`) live in `client_sdk._info` and are re-exported here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import math
import numbers
import os
import pathlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from client_sdk._info import Duration, Limits, LoraInfo, ModelInfo, ModelList, ModelStats, ServerInfo, Stats
from client_sdk._proto import engine_pb2

if TYPE_CHECKING:
    from collections.abc import Sequence

    from PIL import Image as PILImage

__all__ = [
    "CachePolicy",
    "CameraTrajectory",
    "InputImage",
    "InputVideo",
    "Output",
    "StepStat",
    "CacheStats",
    "Timings",
    "Result",
    "Queued",
    "Started",
    "Step",
    "Preview",
    "Completed",
    "Event",
    "LoraInfo",
    "ModelInfo",
    "Limits",
    "ModelList",
    "Duration",
    "ModelStats",
    "ServerInfo",
    "Stats",
]

DEFAULT_NAME = "{seed}-{index}"
"""The default file name template of `Result.save` and `ditserve generate --name`."""

_EXTENSION_BY_MIME = {
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/webp": "webp",
    "video/mp4": "mp4",
    "image/x-exr": "exr",
}


def _open_image(data: bytes, mime_type: str) -> PILImage.Image:
    """Decodes encoded image bytes with Pillow, imported only now."""
    if not mime_type.startswith("image/"):
        raise ValueError(f"a {mime_type or 'untyped'} output is not an image; use .data or .save() instead")
    if mime_type == "image/x-exr":
        raise ValueError(
            "an OpenEXR frame holds linear half-float light that Pillow cannot read; use .data or .save() "
            "and an OpenEXR reader (the OpenEXR package)"
        )
    try:
        from PIL import Image
    except ImportError as err:
        raise ImportError(
            "decoding outputs to images needs Pillow (pip install pillow); the raw bytes are in .data"
        ) from err
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


# --- request parts -----------------------------------------------------------


@dataclass(frozen=True)
class CachePolicy:
    """How the engine reuses transformer results across steps (cache-dit DBCache names).

    Fields left as None take the preset's value; see the engine contract for ranges.
    """

    preset: str = ""
    """Starting point: "none" (off), "default" (the server's), "dbcache", "slow", "medium", "fast",
    "ultra"; "" = the server's default, or "dbcache" when another field is set."""
    fn_compute_blocks: int | None = None
    """Leading transformer blocks that always run."""
    bn_compute_blocks: int | None = None
    """Trailing transformer blocks that always run."""
    residual_diff_threshold: float | None = None
    """Relative residual change below which a step reuses the cache; higher is faster, lower quality."""
    max_warmup_steps: int | None = None
    """Steps that always compute before caching may start."""
    warmup_interval: int | None = None
    """During warmup, compute every n-th step."""
    max_cached_steps: int | None = None
    """Most steps cached in one request; -1 means no cap."""
    max_continuous_cached_steps: int | None = None
    """Most consecutive cached steps; -1 means no cap."""
    enable_separate_cfg: bool | None = None
    """Separate cache state for the CFG branches; None lets the engine detect it."""
    steps_computation_mask: tuple[int, ...] | None = None
    """One entry per step: 1 must compute, 0 may reuse. Length must equal the step count."""
    steps_computation_policy: str = ""
    """"static" (every 0 reuses) or "dynamic" (0 may reuse if the threshold passes); "" is dynamic."""
    taylorseer_order: int | None = None
    """TaylorSeer calibrator order, 0 turns it off."""
    calibrator: str = ""
    """"taylorseer", "foca" or "none"; "" = TaylorSeer when taylorseer_order > 0."""
    max_accumulated_residual_diff_threshold: float | None = None
    """Stop caching once a request's residual diffs add up to this."""
    cfg_diff_compute_separate: bool | None = None
    """False: the CFG branch reuses the conditional branch's diff of the same step."""
    cache_type: str = ""
    """"dbcache" (default: one decision per step), "dbprune" (one decision per block), "teacache"
    (accumulated change of the first block's modulated input) or "magcache" (calibrated curve of
    residual magnitude ratios)."""
    non_prune_block_ids: tuple[int, ...] | None = None
    """DBPrune: block indices that always run."""
    enable_dynamic_prune_threshold: bool | None = None
    """DBPrune: relax the threshold per step from the step's first diffs."""
    teacache_coefficients: tuple[float, ...] | None = None
    """TeaCache: rescaling polynomial, highest power first; None = the model's calibration."""
    magcache_ratios: tuple[float, ...] | None = None
    """MagCache: magnitude ratio per step of a calibration run; None = the model's calibration."""
    magcache_retention_ratio: float | None = None
    """MagCache: leading fraction of the steps that always compute (default 0.2)."""

    def to_proto(self) -> engine_pb2.CachePolicy:
        """The policy as a `ditserve.v1.CachePolicy`, with None fields left unset."""
        msg = engine_pb2.CachePolicy(
            preset=self.preset,
            steps_computation_policy=self.steps_computation_policy,
            calibrator=self.calibrator,
            cache_type=self.cache_type,
        )
        for name in (
            "fn_compute_blocks",
            "bn_compute_blocks",
            "residual_diff_threshold",
            "max_warmup_steps",
            "warmup_interval",
            "max_cached_steps",
            "max_continuous_cached_steps",
            "enable_separate_cfg",
            "taylorseer_order",
            "max_accumulated_residual_diff_threshold",
            "cfg_diff_compute_separate",
            "enable_dynamic_prune_threshold",
            "magcache_retention_ratio",
        ):
            value = getattr(self, name)
            if value is not None:
                setattr(msg, name, value)
        if self.steps_computation_mask is not None:
            msg.steps_computation_mask.extend(self.steps_computation_mask)
        for name in ("non_prune_block_ids", "teacache_coefficients", "magcache_ratios"):
            values = getattr(self, name)
            if values is not None:
                getattr(msg, name).extend(values)
        return msg

    @classmethod
    def parse(cls, text: str) -> CachePolicy:
        """A policy from ``PRESET`` or ``PRESET:field=value,...`` (lists as ``1/1/0/1``).

        ``fast``, ``dbcache:residual_diff_threshold=0.2,taylorseer_order=1``. Field names
        are also read in cache-dit's spellings: its config names in any case
        (``Fn_compute_blocks``, ``Bn_compute_blocks``), with dashes for underscores
        (``max-warmup-steps``), and its command line's short names (``Fn``, ``Bn``,
        ``rdt``, ``mcc``). The preset may be a cache-dit tag, as cache-dit and the
        engine print it: ``F1B0_W8I1M0MC3_R0.12`` or ``DBCache_F8B0_W4MC3_R0.08``
        (a DBCache policy with those fields; ``M0`` and ``MC0`` mean no cap).
        Raises ValueError naming the part it cannot read; an unknown field name
        lists the valid ones.
        """
        preset, _, rest = text.strip().partition(":")
        values: dict[str, Any] = dict(_parse_tag(preset.strip()))
        if values:
            preset = "dbcache"
        types = {f.name: f.type for f in dataclasses.fields(cls) if f.name != "preset"}
        for item in filter(None, (part.strip() for part in rest.split(","))):
            key, sep, raw = (x.strip() for x in item.partition("="))
            if not sep:
                raise ValueError(f"{item!r} is not FIELD=VALUE")
            name = _field_name(key, types)
            kind = str(types[name])
            try:
                if "tuple[float" in kind:
                    values[name] = tuple(float(x) for x in raw.split("/") if x)
                elif "tuple" in kind:
                    values[name] = tuple(int(x) for x in raw.split("/") if x)
                elif "bool" in kind:
                    if raw.lower() not in ("true", "false", "1", "0"):
                        raise ValueError(raw)
                    values[name] = raw.lower() in ("true", "1")
                elif "float" in kind:
                    values[name] = float(raw)
                elif "int" in kind:
                    values[name] = int(raw)
                else:
                    values[name] = raw
            except ValueError as err:
                raise ValueError(f"bad value for {name}: {raw!r}") from err
        return cls(preset=preset.strip(), **values)


#: cache-dit's command-line short names (``cache_dit.generate --Fn 1 --Bn 0 --rdt 0.12 --mcc 3``).
CACHE_DIT_SHORT_NAMES = {
    "Fn": "fn_compute_blocks",
    "Bn": "bn_compute_blocks",
    "rdt": "residual_diff_threshold",
    "mcc": "max_continuous_cached_steps",
}
_TAG = re.compile(
    r"(?:DBCache_)?F(?P<fn>\d+)B(?P<bn>\d+)"
    r"(?:_W(?P<warmup>\d+)(?:I(?P<interval>\d+))?(?:M(?P<max_cached>\d+))?(?:MC(?P<mcc>\d+))?)?"
    r"(?:_R(?P<rdt>[0-9.]+))?",
    re.IGNORECASE,
)


def _parse_tag(text: str) -> dict[str, Any]:
    """The DBCache fields of a cache-dit tag (``F1B0_W8I1M0MC3_R0.12``); {} when ``text`` is not one."""
    match = _TAG.fullmatch(text)
    if match is None:
        return {}
    parts = match.groupdict()
    values: dict[str, Any] = {"fn_compute_blocks": int(parts["fn"]), "bn_compute_blocks": int(parts["bn"])}
    if parts["warmup"] is not None:
        values["max_warmup_steps"] = int(parts["warmup"])
    if parts["interval"] is not None:
        values["warmup_interval"] = int(parts["interval"])
    # cache-dit prints max(0, cap): 0 stands for "no cap" (-1), a cap of 0 would never cache.
    if parts["max_cached"] is not None:
        values["max_cached_steps"] = int(parts["max_cached"]) or -1
    if parts["mcc"] is not None:
        values["max_continuous_cached_steps"] = int(parts["mcc"]) or -1
    if parts["rdt"] is not None:
        values["residual_diff_threshold"] = float(parts["rdt"])
    return values


def _field_name(key: str, types: dict[str, Any]) -> str:
    """The CachePolicy field a key names, in our or cache-dit's spelling; ValueError listing the valid ones."""
    name = key.replace("-", "_").lower()
    name = {k.lower(): v for k, v in CACHE_DIT_SHORT_NAMES.items()}.get(name, name)
    if name not in types:
        valid = ", ".join(types)
        short = ", ".join(f"{k} ({v})" for k, v in CACHE_DIT_SHORT_NAMES.items())
        raise ValueError(f"unknown cache policy field {key!r}; valid fields: {valid}; cache-dit's short names: {short}")
    return name


@dataclass(frozen=True)
class InputImage:
    """An image passed to editing, fill, image-to-video or reference models."""

    data: bytes = field(repr=False)
    """PNG or JPEG bytes."""
    role: str = "image"
    """What the image is for: "image", "mask", "reference" or "control"."""
    controlnet_conditioning_scale: float | None = None
    """For a "control" image: how strongly its ControlNet steers; None = the engine's 1.0."""

    @classmethod
    def from_path(
        cls, path: str | os.PathLike[str], role: str = "image", controlnet_conditioning_scale: float | None = None
    ) -> InputImage:
        """Reads an image file as it is, without decoding it."""
        return cls(pathlib.Path(path).read_bytes(), role, controlnet_conditioning_scale)

    def to_proto(self) -> engine_pb2.InputImage:
        """The image as a `ditserve.v1.InputImage`."""
        message = engine_pb2.InputImage(data=self.data, role=self.role)
        if self.controlnet_conditioning_scale is not None:
            message.controlnet_conditioning_scale = self.controlnet_conditioning_scale
        return message


@dataclass(frozen=True)
class InputVideo:
    """A video passed to video-to-video models."""

    data: bytes = field(repr=False)
    """MP4, WebM or animated PNG bytes."""
    role: str = "video"
    """What the video is for: "video" (the one a video-to-video model transforms), "control" (a control
    video: per-frame depth, pose or edges), "reference" (an in-context reference video an IC-LoRA follows
    frame by frame), or Wan-Animate's "pose", "face", "background" and "mask", as the model takes them
    (``ModelInfo.video_roles``)."""

    @classmethod
    def from_path(cls, path: str | os.PathLike[str], role: str = "video") -> InputVideo:
        """Reads a video file (MP4, WebM, animated PNG) as it is, without decoding it."""
        return cls(pathlib.Path(path).read_bytes(), role)

    @classmethod
    def from_frames(cls, frames: Any, role: str = "video", fps: float | None = None) -> InputVideo:
        """A video of ``frames`` (PIL images, or uint8 arrays of shape (H, W, 3)), sent losslessly as one
        animated PNG (needs Pillow). ``fps`` states its frame rate (each frame lasts 1/fps s), which a
        video-to-video output keeps when the request leaves ``fps`` unset; without it the engine's default
        applies. Raises ValueError for no frames or an fps that is not positive and finite."""
        from PIL import Image

        images = [frame if isinstance(frame, Image.Image) else Image.fromarray(frame) for frame in frames]
        if not images:
            raise ValueError("a video needs at least one frame")
        if fps is not None and not (fps > 0 and math.isfinite(fps)):  # inf: a 0 ms frame, which states no rate
            raise ValueError(f"fps must be positive and finite, got {fps}")
        timing = {} if fps is None else {"duration": 1000.0 / fps}
        buffer = io.BytesIO()
        images[0].save(buffer, format="PNG", save_all=True, append_images=images[1:], **timing)
        return cls(buffer.getvalue(), role)

    def to_proto(self) -> engine_pb2.InputVideo:
        """The video as a `ditserve.v1.InputVideo`."""
        return engine_pb2.InputVideo(data=self.data, role=self.role)


@dataclass(frozen=True)
class CameraTrajectory:
    """The path the camera of a camera-controlled world model moves along (`ModelInfo.requires_camera`:
    Sana-WM), covering every frame of the video: either an `action` string or `c2w` poses, one per
    frame, and always the `intrinsics`.

        CameraTrajectory(action="w-80,jw-40", intrinsics=(800, 800, 640, 360))  # 121 frames
        CameraTrajectory.from_json("path.json")  # {"c2w": [[4x4], ...], "intrinsics": [fx, fy, cx, cy]}
        # or a list of 4x4 poses: dataclasses.replace(CameraTrajectory.from_json(...), intrinsics=(...))
    """

    intrinsics: Sequence[float]
    """Pinhole `[fx, fy, cx, cy]` in pixels of the input image as sent (fx, fy > 0)."""
    action: str = ""
    """Keys held for a number of frames, e.g. "w-80,jw-40,w-40": w/s forward/back, a/d left/right,
    i/k pitch up/down, j/l yaw left/right, "none" still; the durations sum to `num_frames - 1`."""
    c2w: Sequence[Any] = ()
    """Camera-to-world poses, one per frame: 4x4 rigid transforms (nested lists or arrays) or 16
    numbers each, row-major, in OpenCV axes (+x right, +y down, +z forward)."""

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> CameraTrajectory:
        """Reads a trajectory file: a JSON list of 4x4 camera-to-world poses (then set `intrinsics` with
        `dataclasses.replace`), or an object with "intrinsics" and "action" or "c2w" (as the fields above).
        Raises ValueError for an unreadable file, a file of another shape, or another key (a typo such as
        "intrinsic" would otherwise leave the intrinsics out)."""
        import json

        try:
            data = json.loads(pathlib.Path(path).read_text())
        except (OSError, ValueError) as err:
            raise ValueError(f"{path}: {err}") from None
        if isinstance(data, list):
            data = {"c2w": data}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a list of 4x4 poses or an object with intrinsics and action or c2w")
        unknown = sorted(set(data) - {"intrinsics", "action", "c2w"})
        if unknown:
            raise ValueError(f"{path}: unknown keys {', '.join(unknown)}; expected intrinsics and action or c2w")
        return cls(intrinsics=data.get("intrinsics", ()), action=data.get("action", ""), c2w=data.get("c2w", ()))

    def to_proto(self) -> engine_pb2.CameraTrajectory:
        """The trajectory as a `ditserve.v1.CameraTrajectory` (poses flattened, 16 numbers each). Raises
        TypeError for intrinsics that are not a flat sequence of numbers (a string, or a 3x3 K matrix:
        send its fx, fy, cx, cy) and for poses that are a string or hold anything but numbers."""
        flat: list[float] = []
        for pose in self.c2w:
            flat.extend(_flatten(pose))
        intrinsics = self.intrinsics.tolist() if hasattr(self.intrinsics, "tolist") else self.intrinsics
        if (
            not isinstance(intrinsics, Iterable)
            or isinstance(intrinsics, (str, bytes))
            or not all(_is_number(value) for value in intrinsics)
        ):
            raise TypeError(f"camera intrinsics must be the 4 numbers fx, fy, cx, cy, got {intrinsics!r:.80}")
        return engine_pb2.CameraTrajectory(
            action=self.action, c2w=flat, intrinsics=[float(value) for value in intrinsics]
        )


def _flatten(value: Any) -> list[float]:
    """The numbers of a nested list or array, row-major. Raises TypeError for anything else (a string)."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [number for item in value for number in _flatten(item)]
    if not _is_number(value):
        raise TypeError(f"camera c2w poses must hold numbers only, got {value!r:.40}")
    return [float(value)]


def _is_number(value: Any) -> bool:
    """A real number (numpy's scalars too), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


# --- results -----------------------------------------------------------------


@dataclass(frozen=True)
class Output:
    """One encoded output: an image, a video, or one video frame."""

    data: bytes = field(repr=False)
    """Encoded bytes (always complete; streamed chunks are reassembled)."""
    mime_type: str
    """MIME type of `data`, e.g. "image/png" or "video/mp4"."""
    width: int
    """Width in pixels."""
    height: int
    """Height in pixels."""
    num_frames: int
    """Frames in this output; 1 for an image."""
    size_bytes: int
    """Size of `data` in bytes as reported by the engine."""
    sha256: str
    """Lowercase hex SHA-256 of `data` as reported by the engine."""

    @property
    def extension(self) -> str:
        """File extension for the MIME type: "png", "jpg", "webp", "mp4", "exr" ("bin" if unknown)."""
        return _EXTENSION_BY_MIME.get(self.mime_type, "bin")

    @property
    def image(self) -> PILImage.Image:
        """The output decoded as a PIL image (needs Pillow; image MIME types only)."""
        return _open_image(self.data, self.mime_type)

    def verify(self) -> bool:
        """True when `data` matches the reported size and sha256."""
        return len(self.data) == self.size_bytes and hashlib.sha256(self.data).hexdigest() == self.sha256

    def save(self, path: str | os.PathLike[str]) -> pathlib.Path:
        """Writes the encoded bytes to `path` unchanged and returns the path."""
        target = pathlib.Path(path)
        target.write_bytes(self.data)
        return target


@dataclass(frozen=True)
class StepStat:
    """What the cache did at one denoising step."""

    step: int
    """Step index, 0-based."""
    cached: bool
    """True when the middle transformer blocks reused cached residuals."""
    residual_diff: float | None
    """Relative residual change against the last computed step; None when none was computed."""
    cfg_cached: bool | None
    """The unconditional CFG branch's decision; None unless cached separately."""
    cfg_residual_diff: float | None
    """The unconditional CFG branch's residual diff; None when none was computed."""
    pruned_blocks: int | None = None
    """DBPrune: blocks that reused their stored residual; None for other cache types."""
    calibrated: bool | None = None
    """Cached step with a calibrator: True when it forecast the residual, False when it reused it as is."""


@dataclass(frozen=True)
class CacheStats:
    """Per-request cache statistics."""

    policy: str
    """The effective policy, e.g. "none" or "DBCache_F1B0_W4I1M0MC3_R0.24"."""
    steps: tuple[StepStat, ...]
    """One entry per denoising step."""
    computed_steps: int
    """Steps whose middle blocks were computed."""
    cached_steps: int
    """Steps whose middle blocks reused the cache."""
    cfg_cached_steps: int = 0
    """Steps whose unconditional CFG branch reused the cache (separate CFG only)."""
    pruned_ratio: float | None = None
    """DBPrune: pruned over prunable blocks across the request; None for other cache types."""


@dataclass(frozen=True)
class Timings:
    """Where the time of one request went, in milliseconds."""

    queue_ms: float
    """Waiting in the queue."""
    prepare_ms: float
    """Prompt encoding and latent preparation."""
    denoise_ms: float
    """The denoising loop."""
    decode_ms: float
    """VAE decode and post-processing."""
    encode_ms: float
    """Encoding outputs to PNG/JPEG/WebP/MP4."""
    total_ms: float
    """From acceptance to the response."""


@dataclass(frozen=True)
class Result:
    """The finished outcome of one generation request."""

    outputs: tuple[Output, ...]
    """The outputs, in order."""
    cache_stats: CacheStats
    """Per-step cache statistics."""
    timings: Timings
    """Phase durations."""
    seed: int
    """The seed used (the caller's, or the one the engine drew)."""
    request_id: str
    """The request id (the caller's, or the one the engine assigned)."""
    model: str
    """The model that ran the request."""
    engine_id: str = ""
    """The engine that ran it (its host or pod name and start time; empty from engines before 0.2)."""
    loras: tuple[tuple[str, float], ...] = ()
    """The LoRA adapters the outputs were made with, as (name, scale) sorted by name; empty for the base model."""

    @property
    def images(self) -> list[PILImage.Image]:
        """Every output decoded as a PIL image (needs Pillow; fails on video outputs)."""
        return [output.image for output in self.outputs]

    def file_names(self, name: str = DEFAULT_NAME) -> list[str]:
        """The file name of each output under the template `name` (see `save`), extension included.

        Raises ValueError for a placeholder other than {request_id}, {seed}, {index} and {model},
        and for a template that gives two outputs the same name.
        """
        names = []
        for index, output in enumerate(self.outputs):
            fields = {"request_id": self.request_id, "seed": self.seed, "index": index, "model": self.model}
            try:
                stem = name.format(**fields)
            except (KeyError, IndexError, ValueError) as err:
                raise ValueError(
                    f"bad output name template {name!r} ({err}); it may use {{request_id}}, {{seed}}, {{index}} "
                    "and {model}"
                ) from None
            if not stem or "/" in stem or stem in (".", ".."):
                raise ValueError(f"output name template {name!r} gives the file name {stem!r}")
            names.append(f"{stem}.{output.extension}")
        if len(set(names)) != len(names):
            raise ValueError(f"output name template {name!r} gives several outputs the same name; add {{index}}")
        return names

    def save(self, directory: str | os.PathLike[str], name: str = DEFAULT_NAME) -> list[pathlib.Path]:
        """Writes each output to `directory` (created if needed) as `<name>.<ext>` and returns the paths.

        `name` is a template with the placeholders {request_id}, {seed}, {index} (the output's
        position, from 0) and {model}; the default, "{seed}-{index}", gives two runs with the same
        seeds the same names (what `ditserve metrics psnr A B` pairs) and overwrites a file of that
        name. Raises ValueError for a bad template (see `file_names`).
        """
        folder = pathlib.Path(directory)
        names = self.file_names(name)
        folder.mkdir(parents=True, exist_ok=True)
        return [output.save(folder / file) for file, output in zip(names, self.outputs, strict=True)]


# --- stream events -----------------------------------------------------------


@dataclass(frozen=True)
class Queued:
    """The request is waiting; sent on acceptance and whenever its position changes."""

    position: int
    """Requests ahead of this one; 0 means next to run."""
    request_id: str
    """The request id (the caller's, or the one the engine assigned)."""
    engine_id: str = ""
    """The engine that accepted the request (see `Result.engine_id`)."""


@dataclass(frozen=True)
class Started:
    """The request left the queue and its pipeline started."""

    seed: int
    """The seed this request runs with."""
    total_steps: int
    """Total denoising steps."""
    queue_ms: float
    """Milliseconds spent queued."""
    engine_id: str = ""
    """The engine that runs the request (see `Result.engine_id`)."""


@dataclass(frozen=True)
class Step:
    """One denoising step finished."""

    step: int
    """Step index, 0-based."""
    total_steps: int
    """Total denoising steps of the request."""
    timestep: float
    """The scheduler's timestep at this step."""
    cached: bool
    """True when the middle blocks reused the cache at this step."""
    residual_diff: float | None
    """Residual diff of this step; None when none was computed."""
    cfg_cached: bool | None
    """The unconditional CFG branch's decision; None unless cached separately."""
    cfg_residual_diff: float | None
    """The unconditional CFG branch's residual diff; None when none was computed."""
    elapsed_ms: float
    """Milliseconds since the pipeline started."""
    step_ms: float
    """Milliseconds this step took."""
    pruned_blocks: int | None = None
    """DBPrune: blocks that reused their stored residual; None for other cache types."""
    calibrated: bool | None = None
    """Cached step with a calibrator: True when it forecast the residual, False when it reused it as is."""


@dataclass(frozen=True)
class Preview:
    """A low-resolution look at the current result."""

    step: int
    """Step index after which the preview was made."""
    data: bytes = field(repr=False)
    """The preview image, encoded."""
    mime_type: str
    """MIME type of `data`."""
    width: int
    """Width in pixels."""
    height: int
    """Height in pixels."""

    @property
    def image(self) -> PILImage.Image:
        """The preview decoded as a PIL image (needs Pillow)."""
        return _open_image(self.data, self.mime_type)


@dataclass(frozen=True)
class Completed:
    """The request finished; always the last event of a stream."""

    result: Result
    """The full result, with every output's bytes reassembled."""


Event = Queued | Started | Step | Preview | Completed
"""Any event yielded by `Client.stream` and `AsyncClient.stream`."""
