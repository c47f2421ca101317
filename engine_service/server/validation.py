"""Validation of GenerateRequest before any work: every field range-checked against the
engine's limits and the model's facts, all violations reported together.

Violations name proto field paths (``width``, ``input_images[1].data``), which
travel to the client in a ``google.rpc.BadRequest``.
"""

from __future__ import annotations

import io
import math
import re
import secrets
import uuid

from PIL import Image, UnidentifiedImageError

from client_sdk._proto import engine_pb2 as pb
from engine_service.config import Limits
from engine_service.errors import FieldViolation, InvalidRequest, ModelNotFound
from engine_service.jobs import DEFAULT_FPS, JobSpec, OutputFormat, denoising_steps
from engine_service.models import LoadedModel
from engine_service.server import cache_policy

MAX_SEED = 2**63 - 1
MAX_GUIDANCE = 100.0
MAX_FPS = 120
#: Largest ControlNet conditioning scale a control image may carry.
MAX_CONTROL_SCALE = 10.0
DEFAULT_QUALITY = 90
REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_IMAGE_FORMATS = {
    pb.OUTPUT_FORMAT_PNG: OutputFormat.PNG,
    pb.OUTPUT_FORMAT_JPEG: OutputFormat.JPEG,
    pb.OUTPUT_FORMAT_WEBP: OutputFormat.WEBP,
}
_VIDEO_FORMATS = {pb.OUTPUT_FORMAT_MP4: OutputFormat.MP4, pb.OUTPUT_FORMAT_PNG_FRAMES: OutputFormat.PNG_FRAMES}


def resolve_model(request: pb.GenerateRequest, models: dict[str, LoadedModel], default_model: str) -> LoadedModel:
    """The model the request names (empty = default); ModelNotFound otherwise."""
    name = request.model or default_model
    if name not in models:
        raise ModelNotFound(name, sorted(models))
    return models[name]


def validate(
    request: pb.GenerateRequest, model: LoadedModel, limits: Limits, default_cache: pb.CachePolicy | None = None
) -> JobSpec:
    """Turn a request into a JobSpec, or raise InvalidRequest naming every bad field.

    ``default_cache`` is the server's default cache policy (none when omitted).
    """
    v = _Violations()
    prompt = _text(v, "prompt", request.prompt, limits, required=True)
    negative = _text(v, "negative_prompt", request.negative_prompt, limits, required=False)
    if negative and not model.family.uses_negative_prompt:
        v.add("negative_prompt", f"model {model.name!r} ({model.family.name}) does not use a negative prompt")
    width = _size(v, request, "width", model.default_width, limits.max_width, model.spatial_factor)
    height = _size(v, request, "height", model.default_height, limits.max_height, model.spatial_factor)
    if width and height and width * height > limits.max_pixels:
        v.add("width", f"width x height = {width * height} pixels exceeds the limit of {limits.max_pixels}")
    native = model.native_size
    if native is not None and width and height and (width, height) != native:
        v.add("width", f"model {model.name!r} ({model.family.name}) renders {native[0]}x{native[1]} only")
    check_prompt = model.family.check_prompt
    if check_prompt is not None and prompt.strip():
        problem = check_prompt(model.pipeline, prompt)
        if problem:
            v.add("prompt", problem)
    steps = _int_range(v, request, "num_inference_steps", model.default_steps, 1, limits.max_steps)
    guidance = _guidance(v, request, model.default_guidance_scale)
    seed = _int_range(v, request, "seed", secrets.randbelow(MAX_SEED + 1), 0, MAX_SEED)
    outputs = _int_range(v, request, "num_outputs", 1, 1, limits.max_outputs)
    is_video = model.family.output_kind == "video"
    frames, fps = _video_fields(v, request, model, limits, is_video)
    output_format = _output_format(v, request.output_format, is_video)
    quality = _int_range(v, request, "output_quality", DEFAULT_QUALITY, 1, 100)
    images = _input_images(v, request, model, limits)
    scales = _control_scales(v, request, model)
    strength = _strength(v, request, model)
    preview_every = request.preview_every
    if not 0 <= preview_every <= limits.max_steps:
        v.add("preview_every", f"must be between 0 and {limits.max_steps}, got {preview_every}")
    elif preview_every and model.family.decode_latents is None:
        v.add("preview_every", f"model {model.name!r} ({model.family.name}) has no previews; use 0")
    request_id = request.request_id
    if request_id and not REQUEST_ID_PATTERN.fullmatch(request_id):
        v.add("request_id", "must be 1 to 128 characters of A-Z a-z 0-9 . _ : -")
    policy = cache_policy.effective_policy(request, default_cache or pb.CachePolicy(preset="none"))
    # The cache's step mask covers the steps the pipeline runs (fewer than requested with a strength).
    run_steps = denoising_steps(steps, strength) if steps else 0
    cache = cache_policy.plan_for(policy, run_steps, model.cache_group_sizes, v.add) if run_steps else None
    v.raise_if_any()
    return JobSpec(
        request_id=request_id or uuid.uuid4().hex,
        model=model.name,
        prompt=prompt,
        negative_prompt=negative,
        width=width,
        height=height,
        num_inference_steps=steps,
        guidance_scale=guidance,
        seed=seed,
        num_outputs=outputs,
        num_frames=frames,
        fps=fps,
        output_format=output_format,
        output_quality=quality,
        preview_every=preview_every,
        input_images=images,
        cache=cache,
        runs_alone=not model.family.generator_per_output,
        strength=strength,
        controlnet_conditioning_scales=scales,
    )


class _Violations:
    def __init__(self) -> None:
        self.items: list[FieldViolation] = []

    def add(self, field: str, description: str) -> None:
        self.items.append(FieldViolation(field, description))

    def raise_if_any(self) -> None:
        if self.items:
            raise InvalidRequest(self.items)


def _text(v: _Violations, field: str, value: str, limits: Limits, *, required: bool) -> str:
    if len(value) > limits.max_prompt_chars:
        v.add(field, f"is {len(value)} characters long; the limit is {limits.max_prompt_chars}")
        return ""
    if required and not value.strip():
        v.add(field, "must not be empty")
    return value


def _size(v: _Violations, request: pb.GenerateRequest, field: str, default: int, limit: int, factor: int) -> int:
    value = getattr(request, field) if request.HasField(field) else default
    origin = "" if request.HasField(field) else f" (the model's default {field})"
    if value <= 0:
        v.add(field, f"must be positive, got {value}")
        return 0
    if value > limit:
        v.add(field, f"{value}{origin} exceeds the limit of {limit}")
        return 0
    if value % factor:
        lower, upper = value // factor * factor, (value // factor + 1) * factor
        hint = f"{lower} or {upper}" if lower else f"{upper}"
        v.add(field, f"must be a multiple of {factor} for this model (VAE scale x patch size), got {value}; try {hint}")
        return 0
    return value


def _int_range(v: _Violations, request, field: str, default: int | None, low: int, high: int) -> int | None:
    if not request.HasField(field):
        return default
    value = getattr(request, field)
    if not low <= value <= high:
        v.add(field, f"must be between {low} and {high}, got {value}")
        return default
    return value


def _guidance(v: _Violations, request: pb.GenerateRequest, default: float) -> float:
    if not request.HasField("guidance_scale"):
        return default
    value = request.guidance_scale
    if not math.isfinite(value) or not 0.0 <= value <= MAX_GUIDANCE:
        v.add("guidance_scale", f"must be a finite number between 0 and {MAX_GUIDANCE:g}, got {value}")
        return default
    return value


def _video_fields(v: _Violations, request, model: LoadedModel, limits: Limits, is_video: bool) -> tuple[int, int]:
    if not is_video:
        if request.HasField("num_frames") and request.num_frames != 1:
            v.add("num_frames", f"model {model.name!r} produces images; leave num_frames unset")
        if request.HasField("fps"):
            v.add("fps", f"model {model.name!r} produces images; leave fps unset")
        return 1, 0
    frames = _int_range(v, request, "num_frames", model.default_frames, 1, limits.max_frames)
    stride = model.family.frame_stride
    if frames and (frames - 1) % stride:
        v.add(
            "num_frames",
            f"must be a multiple of {stride} plus 1 for {model.family.name} (e.g. {stride + 1}); got {frames}",
        )
    counts = model.family.frame_counts
    if frames and counts is not None and frames not in counts:
        allowed = ", ".join(map(str, counts))
        v.add("num_frames", f"{model.family.name} makes only {allowed} frames; got {frames}")
    fps = _int_range(v, request, "fps", DEFAULT_FPS, 1, MAX_FPS)
    return frames or 1, fps or DEFAULT_FPS


def _output_format(v: _Violations, value: int, is_video: bool) -> OutputFormat:
    if value == pb.OUTPUT_FORMAT_UNSPECIFIED:
        return OutputFormat.MP4 if is_video else OutputFormat.PNG
    if value in _IMAGE_FORMATS and not is_video:
        return _IMAGE_FORMATS[value]
    if value in _VIDEO_FORMATS and is_video:
        return _VIDEO_FORMATS[value]
    if value in _VIDEO_FORMATS:
        v.add("output_format", f"{pb.OutputFormat.Name(value)} is for video models; this model produces images")
    elif value in _IMAGE_FORMATS:
        v.add("output_format", f"{pb.OutputFormat.Name(value)} is for image models; this model produces videos")
    else:
        v.add("output_format", f"unknown output format {value}")
    return OutputFormat.PNG


def _input_images(v: _Violations, request, model: LoadedModel, limits: Limits) -> tuple:
    items = request.input_images
    given = {item.role or "image" for item in items}
    for role in model.family.required_roles:
        if role not in given:
            v.add("input_images", f"model {model.name!r} ({model.family.name}) needs an input image with role {role!r}")
    if not items:
        return ()
    if not model.family.input_roles:
        v.add("input_images", f"model {model.name!r} ({model.family.name}) takes no input images")
        return ()
    if len(items) > limits.max_input_images:
        v.add("input_images", f"{len(items)} images exceed the limit of {limits.max_input_images}")
        return ()
    decoded, indices = [], []
    for index, item in enumerate(items):
        role = item.role or "image"
        if role not in model.family.input_roles:
            v.add(f"input_images[{index}].role", f"{role!r} is not one of {', '.join(model.family.input_roles)}")
        if len(item.data) > limits.max_input_image_bytes:
            v.add(
                f"input_images[{index}].data",
                f"{len(item.data)} bytes exceed the limit of {limits.max_input_image_bytes}",
            )
            continue
        try:
            image = Image.open(io.BytesIO(item.data))
            image.load()
        except (UnidentifiedImageError, OSError, ValueError) as err:
            v.add(f"input_images[{index}].data", f"not a decodable PNG or JPEG image ({err})")
            continue
        least = model.family.min_input_side
        if min(image.size) < least:
            v.add(
                f"input_images[{index}].data",
                f"{image.width}x{image.height} is too small: {model.family.name} needs {least} pixels a side at least",
            )
            continue
        decoded.append((role, image.convert("RGB")))
        indices.append(index)
    _check_mask_sizes(v, decoded, indices)
    return tuple(decoded)


def _check_mask_sizes(v: _Violations, decoded: list, indices: list[int]) -> None:
    """A mask must have the size of the first image it masks (role ``image``)."""
    image = next((picture for role, picture in decoded if role == "image"), None)
    if image is None:
        return
    for (role, mask), index in zip(decoded, indices, strict=True):
        if role == "mask" and mask.size != image.size:
            v.add(
                f"input_images[{index}].data",
                f"the mask is {mask.width}x{mask.height} but the image is {image.width}x{image.height}; "
                "send a mask of the image's size",
            )


def _strength(v: _Violations, request: pb.GenerateRequest, model: LoadedModel) -> float | None:
    """The request's strength (or the model's default) for image-to-image / inpainting models."""
    default = model.family.default_strength
    if not request.HasField("strength"):
        return default
    # The float32 the wire carries, back to the decimal the client wrote (0.3, not 0.30000001): the
    # steps that run are a floor of strength x steps, and 0.30000001 x 10 would run 4 of them, not 3.
    value = float(f"{request.strength:.7g}")
    if default is None:
        v.add("strength", f"model {model.name!r} ({model.family.name}) takes no strength; leave it unset")
        return None
    if not math.isfinite(value) or not 0.0 < value <= 1.0:
        # At 0 the pipeline would run no step; any strength above runs at least one.
        v.add("strength", f"must be a number in (0, 1], got {value}")
        return default
    return value


def _control_scales(v: _Violations, request: pb.GenerateRequest, model: LoadedModel) -> tuple[float, ...]:
    """One ControlNet conditioning scale per control image; the count must match the model's ControlNets."""
    scales = []
    for index, item in enumerate(request.input_images):
        role = item.role or "image"
        field = f"input_images[{index}].controlnet_conditioning_scale"
        if role != "control" or model.family.control_count is None:
            if item.HasField("controlnet_conditioning_scale"):
                why = f"this one has role {role!r}" if role != "control" else f"model {model.name!r} has no ControlNet"
                v.add(field, f"only a 'control' image of a ControlNet model carries a ControlNet scale; {why}")
            continue
        value = item.controlnet_conditioning_scale if item.HasField("controlnet_conditioning_scale") else 1.0
        if not math.isfinite(value) or not 0.0 <= value <= MAX_CONTROL_SCALE:
            v.add(field, f"must be a finite number between 0 and {MAX_CONTROL_SCALE:g}, got {value}")
            value = 1.0
        scales.append(value)
    wanted = model.control_images
    if wanted and len(scales) != wanted:
        v.add(
            "input_images",
            f"model {model.name!r} ({model.family.name}) has {wanted} ControlNet(s): send {wanted} image(s) with "
            f"role 'control', got {len(scales)}",
        )
    return tuple(scales)
