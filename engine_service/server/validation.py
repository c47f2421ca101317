"""Validation of GenerateRequest before any work: every field range-checked against the
engine's limits and the model's facts, all violations reported together.

Violations name proto field paths (``width``, ``input_images[1].data``), which
travel to the client in a ``google.rpc.BadRequest``.
"""

from __future__ import annotations

import collections
import dataclasses
import io
import math
import re
import secrets
import uuid
import warnings

from PIL import Image

from client_sdk._proto import engine_pb2 as pb
from engine_service.config import Limits
from engine_service.errors import FieldViolation, InvalidRequest, LoraNotFound, ModelNotFound, excerpt
from engine_service.jobs import DEFAULT_FPS, CameraTrajectory, JobSpec, OutputFormat, denoising_steps
from engine_service.models import LoadedModel, lora
from engine_service.server import cache_policy, video_inputs

MAX_SEED = 2**63 - 1
MAX_GUIDANCE = 100.0
MAX_FPS = 120
#: Largest ControlNet conditioning scale a control image may carry.
MAX_CONTROL_SCALE = 10.0
DEFAULT_QUALITY = 90
REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,128}")
#: Longest model name a request may give.
MAX_MODEL_CHARS = 256
#: The encodings an input image may have (Pillow format names); the contract names PNG and JPEG.
INPUT_IMAGE_FORMATS = ("PNG", "JPEG")
_IMAGE_FORMATS = {
    pb.OUTPUT_FORMAT_PNG: OutputFormat.PNG,
    pb.OUTPUT_FORMAT_JPEG: OutputFormat.JPEG,
    pb.OUTPUT_FORMAT_WEBP: OutputFormat.WEBP,
}
_VIDEO_FORMATS = {
    pb.OUTPUT_FORMAT_MP4: OutputFormat.MP4,
    pb.OUTPUT_FORMAT_PNG_FRAMES: OutputFormat.PNG_FRAMES,
    pb.OUTPUT_FORMAT_EXR_FRAMES: OutputFormat.EXR_FRAMES,
}


def resolve_model(request: pb.GenerateRequest, models: dict[str, LoadedModel], default_model: str) -> LoadedModel:
    """The model the request names (empty = default); ModelNotFound otherwise."""
    name = request.model or default_model
    if len(name) > MAX_MODEL_CHARS:
        raise InvalidRequest(
            [FieldViolation("model", f"is {len(name)} characters long; the limit is {MAX_MODEL_CHARS}")]
        )
    if name not in models:
        raise ModelNotFound(name, sorted(models))
    return models[name]


def validate(
    request: pb.GenerateRequest,
    model: LoadedModel,
    limits: Limits,
    default_cache: pb.CachePolicy | None = None,
    *,
    decode: bool = True,
) -> JobSpec:
    """Turn a request into a JobSpec, or raise InvalidRequest naming every bad field.

    ``default_cache`` is the server's default cache policy (none when omitted). Input images
    are checked from their headers; with ``decode=False`` they stay undecoded (opened lazily)
    and the caller runs ``decode_inputs`` off the event loop (input videos likewise: their bytes
    wait, and where the model's frames follow the video, ``num_frames`` is 0 until they decode).
    """
    v = _Violations()
    prompt = _text(v, "prompt", request.prompt, limits, required=model.family.takes_prompt)
    if request.prompt and not model.family.takes_prompt:
        v.add("prompt", f"model {model.name!r} ({model.family.name}) takes no prompt; leave it empty")
    negative = _text(v, "negative_prompt", request.negative_prompt, limits, required=False)
    task_prompt = _text(v, "task_prompt", request.task_prompt, limits, required=model.family.takes_task_prompt)
    if task_prompt and not model.family.takes_task_prompt:
        v.add("task_prompt", f"model {model.name!r} ({model.family.name}) takes no task prompt; leave it empty")
    if negative and not model.family.uses_negative_prompt:
        v.add("negative_prompt", f"model {model.name!r} ({model.family.name}) does not use a negative prompt")
    width = _size(v, request, "width", model.default_width, limits.max_width, model.spatial_factor)
    height = _size(v, request, "height", model.default_height, limits.max_height, model.spatial_factor)
    if width and height and width * height > limits.max_pixels:
        v.add("width", f"width x height = {width * height} pixels exceeds the limit of {limits.max_pixels}")
    native = model.native_size
    if native is not None and width and height and (width, height) != native:
        v.add("width", f"model {model.name!r} ({model.family.name}) renders {native[0]}x{native[1]} only")
    check_size = model.family.check_size
    if check_size is not None and width and height:
        problem = check_size(model.pipeline, width, height)
        if problem:
            v.add("width", problem)
    check_prompt = model.family.check_prompt
    if check_prompt is not None and prompt.strip():
        problem = check_prompt(model.pipeline, prompt, model.call_defaults)
        if problem:
            v.add("prompt", problem)
    steps = _int_range(v, request, "num_inference_steps", model.default_steps, 1, limits.max_steps, limit_default=True)
    if steps and steps != model.default_steps and model.family.schedule_steps is not None:
        v.add(
            "num_inference_steps",
            f"model {model.name!r} ({model.family.name}) runs its distilled sigma schedule of {model.default_steps} "
            f"steps; leave num_inference_steps unset or send {model.default_steps}",
        )
        steps = 0
    guidance = _guidance(v, request, model.default_guidance_scale)
    if request.HasField("guidance_scale") and not model.family.takes_guidance:
        v.add("guidance_scale", f"model {model.name!r} ({model.family.name}) takes no guidance scale; leave it unset")
    seed = _int_range(v, request, "seed", secrets.randbelow(MAX_SEED + 1), 0, MAX_SEED)
    most = limits.max_outputs if model.family.max_outputs is None else min(limits.max_outputs, model.family.max_outputs)
    outputs = _int_range(v, request, "num_outputs", 1, 1, most)
    is_video = model.family.output_kind == "video"
    frames, fps, loops = _video_fields(v, request, model, limits, is_video)
    output_format = _output_format(v, request.output_format, is_video)
    quality = _int_range(v, request, "output_quality", DEFAULT_QUALITY, 1, 100)
    images = _input_images(v, request, model, limits)
    videos = _input_videos(v, request, model, limits)
    follows = model.family.frames_from_video
    if any(role == follows for role, _ in videos) and not request.HasField("num_frames"):
        frames = 0  # the video's: set once it is decoded (decode_inputs)
    timed_by = {follows, model.family.continues_video} - {None}
    if any(role in timed_by for role, _ in videos) and not request.HasField("fps"):
        fps = 0  # the video's own frame rate: read once it is decoded (decode_inputs)
    if model.family.size_from_video is not None and any(role == follows for role, _ in videos):
        # The size the video gives, set once it is decoded (decode_inputs); one the request sets must match it.
        width = width if request.HasField("width") else 0
        height = height if request.HasField("height") else 0
    check_prompt_images = model.family.check_prompt_images
    if check_prompt_images is not None and prompt.strip():
        sent = collections.Counter(item.role or "image" for item in request.input_images)
        problem = check_prompt_images(prompt, sent)
        if problem:
            v.add("prompt", problem)
    width, height = _size_from_input(v, request, model, limits, images, width, height)
    scales = _control_scales(v, request, model)
    strength = _strength(v, request, model)
    refused_frames = any(item.field == "num_frames" for item in v.items)
    camera = _camera(v, request, model, 0 if refused_frames else frames, limits)
    layers = _layers(v, request, model)
    if layers and outputs and layers * outputs > limits.max_outputs:
        # Every layer comes back as an output of its own: the response's count is what the limit bounds.
        v.add(
            "layers",
            f"{outputs} outputs x {layers} layers make {outputs * layers} images, more than the engine's "
            f"max_outputs ({limits.max_outputs}) per request; ask for fewer layers or outputs",
        )
    if output_format is OutputFormat.JPEG and model.family.outputs_alpha:
        v.add(
            "output_format",
            f"model {model.name!r} ({model.family.name}) makes RGBA images and JPEG has no alpha channel; "
            "use PNG or WebP",
        )
    if output_format is OutputFormat.EXR_FRAMES and not model.family.outputs_hdr:
        v.add(
            "output_format",
            f"model {model.name!r} ({model.family.name}) makes 8-bit frames, not high-dynamic-range video "
            "(ListModels: outputs_hdr); use MP4 or PNG frames",
        )
    preview_every = request.preview_every
    if not 0 <= preview_every <= limits.max_steps:
        v.add("preview_every", f"must be between 0 and {limits.max_steps}, got {preview_every}")
    elif preview_every and model.family.decode_latents is None:
        v.add("preview_every", f"model {model.name!r} ({model.family.name}) has no previews; use 0")
    request_id = request.request_id
    if request_id and not REQUEST_ID_PATTERN.fullmatch(request_id):
        v.add("request_id", "must be 1 to 128 characters of A-Z a-z 0-9 . _ : -")
    policy = cache_policy.effective_policy(request, default_cache or pb.CachePolicy(preset="none"))
    # The cache's step mask covers the steps the pipeline runs (fewer than requested with a strength),
    # per denoising loop: each loop is a run of the cache (loops of another count resample it).
    loop_steps = _loop_steps(v, request, model, steps, loops, strength)
    run_steps = (loop_steps[-1] if loop_steps else denoising_steps(steps, strength)) if steps else 0
    cache = (
        cache_policy.plan_for(
            policy, run_steps, model.cache_group_sizes, v.add, limits.max_steps, model.cache_calibration
        )
        if run_steps
        else None
    )
    loras = _loras(v, request, model)
    v.raise_if_any()
    spec = JobSpec(
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
        input_videos=videos,
        cache=cache,
        runs_alone=not model.family.generator_per_output or model.family.seeds_process_rng,
        strength=strength,
        controlnet_conditioning_scales=scales,
        loras=loras,
        denoising_loops=loops,
        loop_steps=loop_steps,
        layers=layers,
        task_prompt=task_prompt,
        camera=camera,
    )
    return decode_inputs(spec, model, limits) if decode and (images or videos) else spec


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


def _int_range(
    v: _Violations, request, field: str, default: int | None, low: int, high: int, limit_default: bool = False
) -> int | None:
    """The request's ``field`` if set and in ``[low, high]``, else its ``default``. With ``limit_default``,
    a default above ``high`` (a model's own default beyond the server's limit) is a violation too."""
    if not request.HasField(field):
        if limit_default and default is not None and default > high:
            v.add(field, f"{default} (the model's default {field}) exceeds the limit of {high}")
            return None
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


def _video_fields(v: _Violations, request, model: LoadedModel, limits: Limits, is_video: bool) -> tuple[int, int, int]:
    """(frames, fps, denoising loops) of the request."""
    if not is_video:
        if request.HasField("num_frames") and request.num_frames != 1:
            v.add("num_frames", f"model {model.name!r} produces images; leave num_frames unset")
        if request.HasField("fps"):
            v.add("fps", f"model {model.name!r} produces images; leave fps unset")
        plan = model.family.denoising_loops  # an image pipeline of several passes (VisualCloze)
        return 1, 0, plan(1, model.call_defaults)[0] if plan is not None else 1
    # A model's default frames beyond the limit is refused, unless an input video sets the count.
    limit_default = model.family.frames_from_video is None
    frames = _int_range(v, request, "num_frames", model.default_frames, 1, limits.max_frames, limit_default)
    stride = model.family.frame_stride
    fewest = model.family.min_frames
    counts = model.family.frame_counts
    if model.family.native_frames is not None:
        counts = (model.family.native_frames(model.pipeline),)
    if frames and (frames - 1) % stride:
        near = _nearest_rule_count(model, counts, frames, limits.max_frames)
        v.add(
            "num_frames",
            f"must be a multiple of {stride} plus 1 for {model.family.name}"
            + (f" (e.g. {near})" if near else "")
            + f"; got {frames}",
        )
    if frames and frames < fewest:
        v.add("num_frames", f"{model.family.name} makes at least {fewest} frames; got {frames}")
    if frames and counts is not None and frames not in counts:
        allowed = ", ".join(map(str, counts))
        v.add("num_frames", f"{model.family.name} makes only {allowed} frames; got {frames}")
    loops = 1
    plan = model.family.denoising_loops
    if frames and frames >= fewest and plan is not None and not (frames - 1) % stride:
        loops, made = plan(frames, model.call_defaults)
        if made != frames:
            near = _nearest_made(plan, model.call_defaults, frames, made, stride, limits.max_frames)
            v.add(
                "num_frames",
                f"{model.family.name} samples its video in whole chunks or windows: {frames} frames take "
                f"{loops}, which make {made} frames; "
                + (f"ask for {near}" if near else "no count of its rule near it comes out as asked"),
            )
    fps = _int_range(v, request, "fps", DEFAULT_FPS, 1, MAX_FPS)
    return frames or 1, fps or DEFAULT_FPS, loops


def _nearest_rule_count(model: LoadedModel, counts, frames: int, most: int) -> int | None:
    """The count of the family's ``k * stride + 1`` rule nearest ``frames`` (the lower on a tie) that a
    request may ask for: at least the family's least count, one of its only ``counts`` where it has them,
    and one its denoising loops make as asked (a continued video's windows sample none within its
    history); ``None`` for none up to ``most``."""
    family = model.family
    plan = family.denoising_loops
    rule = sorted(range(1, most + 1, family.frame_stride), key=lambda count: (abs(count - frames), count))
    for count in rule:
        if count < family.min_frames or (counts is not None and count not in counts):
            continue
        if plan is None or plan(count, model.call_defaults)[1] == count:
            return count
    return None


def _nearest_made(plan, defaults, frames: int, made: int, stride: int, most: int) -> int | None:
    """The frame count to suggest for ``frames``, which the loops make into ``made``: ``made`` when the
    loops make it as asked, else the nearest count of the stride rule they do (the lower on a tie)."""
    if made <= most and plan(made, defaults)[1] == made:
        return made
    for distance in range(stride, most + 1, stride):
        for count in (frames - distance, frames + distance):
            if 1 <= count <= most and plan(count, defaults)[1] == count:
                return count
    return None


def _loop_steps(
    v: _Violations, request, model: LoadedModel, steps: int, loops: int, strength: float | None
) -> tuple[int, ...]:
    """The steps of each denoising loop, for a family whose loops do not each run the request's
    steps (``FamilySpec.loop_steps``), that counts a strength's steps its own way
    (``FamilySpec.strength_steps``) or whose strength cuts only its last loop
    (``FamilySpec.strength_on_last_loop``: the others run every step); empty for the others, or when
    ``steps`` is already refused."""
    if not steps:
        return ()
    if model.family.strength_on_last_loop and loops > 1:
        return (steps,) * (loops - 1) + (model.family.steps_run(steps, strength),)
    if strength is not None and model.family.strength_steps is not None:
        counted = model.family.steps_run(steps, strength)
        if counted < 1:
            v.add(
                "strength" if request.HasField("strength") else "num_inference_steps",
                f"model {model.name!r} ({model.family.name}) runs no denoising step at strength {strength} with "
                f"{steps} steps; raise strength or num_inference_steps",
            )
            return ()
        return (counted,) * loops
    plan = model.family.loop_steps
    if plan is None:
        return ()
    counts = plan(model.pipeline, steps, loops, model.call_defaults)
    if min(counts, default=0) < 1:
        v.add(
            "num_inference_steps",
            f"{model.family.name} runs {min(counts, default=0)} step(s) in a denoising loop for "
            f"num_inference_steps={steps}; every loop needs at least one: ask for more",
        )
        return ()
    return tuple(counts)


#: How far a pose's rotation part may stray from a rotation (entries of R^T R - I, and det R from 1), and
#: its last row from 0 0 0 1: float32 poses computed in float64 come within 1e-6.
POSE_TOLERANCE = 1e-3


def _camera(v: _Violations, request, model: LoadedModel, frames: int, limits: Limits) -> CameraTrajectory | None:
    """The request's camera trajectory, for a model that takes one (``FamilySpec.camera_actions``):
    exactly one of an action string the model's grammar reads and ``frames`` poses, each a rigid
    transform, and four intrinsics (positive focal lengths), every number finite. ``frames`` is 0
    when ``num_frames`` is already refused: the count is then not checked."""
    family = model.family
    sent = request.HasField("camera")
    if not family.takes_camera:
        if sent:
            v.add("camera", f"model {model.name!r} ({family.name}) takes no camera trajectory; leave it unset")
        return None
    if not sent:
        v.add("camera", f"model {model.name!r} ({family.name}) needs a camera trajectory: an action string or poses")
        return None
    before = len(v.items)
    camera = request.camera
    action, c2w = camera.action, tuple(camera.c2w)
    covered = 0
    if action and c2w:
        v.add("camera", "give either an action string or c2w poses, not both")
    elif not action and not c2w:
        v.add("camera", "give an action string (e.g. 'w-80,jw-40') or c2w poses, one per frame")
    elif action:
        if len(action) > limits.max_prompt_chars:
            v.add("camera.action", f"is {len(action)} characters long; the limit is {limits.max_prompt_chars}")
        else:
            try:
                covered = family.camera_actions(action)
            except ValueError as problem:
                v.add("camera.action", str(problem))
    else:
        covered = _poses(v, c2w, frames or limits.max_frames)
    if covered and frames and covered != frames:
        field = "camera.action" if action else "camera.c2w"
        what = f"moves the camera over {covered} frames" if action else f"holds {covered} poses"
        v.add(field, f"{what}; the video has {frames} (num_frames): the trajectory must cover every frame")
    intrinsics = tuple(camera.intrinsics)
    if len(intrinsics) != 4:
        v.add("camera.intrinsics", f"must be 4 numbers fx, fy, cx, cy; got {len(intrinsics)} numbers")
    elif not all(math.isfinite(value) for value in intrinsics):
        v.add("camera.intrinsics", "must be 4 finite numbers fx, fy, cx, cy")
    elif intrinsics[0] <= 0 or intrinsics[1] <= 0:
        v.add("camera.intrinsics", f"focal lengths fx and fy must be positive, got {intrinsics[0]}, {intrinsics[1]}")
    if len(v.items) > before:
        return None
    poses = tuple(c2w[index : index + 16] for index in range(0, len(c2w), 16))
    return CameraTrajectory(intrinsics=intrinsics, action=action, c2w=poses)  # type: ignore[arg-type]


def _poses(v: _Violations, c2w: tuple[float, ...], most: int) -> int:
    """How many 4x4 poses ``c2w`` holds, 0 after a violation: 16 finite numbers each, each a rigid
    transform (a rotation, a translation, the last row 0 0 0 1). Poses are read one by one only when
    they are at most ``most`` (the frames): the count of a longer list is returned as it is."""
    if len(c2w) % 16:
        v.add("camera.c2w", f"holds {len(c2w)} numbers; each pose is 16 (a row-major 4x4 matrix)")
        return 0
    if len(c2w) // 16 > most:
        return len(c2w) // 16
    if not all(math.isfinite(value) for value in c2w):
        v.add("camera.c2w", "must hold finite numbers only")
        return 0
    for index in range(0, len(c2w), 16):
        problem = _rigid_problem(c2w[index : index + 16])
        if problem:
            v.add("camera.c2w", f"pose {index // 16} {problem}")
            return 0
    return len(c2w) // 16


def _rigid_problem(pose: tuple[float, ...]) -> str | None:
    """Why the row-major 4x4 ``pose`` is no rigid transform, or ``None``."""
    if any(abs(value - want) > POSE_TOLERANCE for value, want in zip(pose[12:], (0.0, 0.0, 0.0, 1.0), strict=True)):
        return "must end in the row 0 0 0 1"
    r = [pose[row * 4 : row * 4 + 3] for row in range(3)]
    det = (
        r[0][0] * (r[1][1] * r[2][2] - r[1][2] * r[2][1])
        - r[0][1] * (r[1][0] * r[2][2] - r[1][2] * r[2][0])
        + r[0][2] * (r[1][0] * r[2][1] - r[1][1] * r[2][0])
    )
    orthonormal = all(
        abs(sum(r[k][i] * r[k][j] for k in range(3)) - (i == j)) <= POSE_TOLERANCE for i in range(3) for j in range(3)
    )
    if abs(det - 1.0) > POSE_TOLERANCE or not orthonormal:
        return f"has a rotation part that is no rotation (determinant {det:.4g}; a singular or scaled matrix)"
    return None


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


def _loras(v: _Violations, request: pb.GenerateRequest, model: LoadedModel) -> lora.AdapterSet:
    """The request's adapter set. Bad scales, repeated names and too many adapters are violations;
    an unknown name (once the rest is valid) is LoraNotFound."""
    items = request.loras
    if not items:
        return ()
    if model.loras is None:
        raise LoraNotFound(items[0].name, model.name, [])
    loaded, limit = model.loras.adapters, model.loras.max_per_request
    if len(items) > limit:
        v.add("loras", f"{len(items)} adapters exceed the limit of {limit} per request for model {model.name!r}")
    pairs, seen, unknown = [], set(), []
    for index, item in enumerate(items):
        scale = item.scale if item.HasField("scale") else 1.0
        problem = lora.validate_scale(scale)
        if problem:
            v.add(f"loras[{index}].scale", problem)
        if not item.name:
            v.add(f"loras[{index}].name", "must not be empty")
            continue
        if item.name in seen:
            v.add(f"loras[{index}].name", f"adapter {item.name!r} is named more than once")
        seen.add(item.name)
        if item.name not in loaded:
            unknown.append(item.name)
        pairs.append((item.name, scale))
    if unknown and not v.items:
        raise LoraNotFound(unknown[0], model.name, sorted(loaded))
    return lora.as_adapter_set(pairs) if not v.items else ()


def _input_images(v: _Violations, request, model: LoadedModel, limits: Limits) -> tuple:
    """Check every input image's role, byte size, format and header size; decode none of them.

    The images come back opened lazily (only their headers read): ``decode_input_images``
    decodes them, off the event loop.
    """
    items = request.input_images
    before = len(v.items)
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
    opened, indices, seen = [], [], set()
    for index, item in enumerate(items):
        field = f"input_images[{index}]"
        role = item.role or "image"
        if role not in model.family.input_roles:
            v.add(f"{field}.role", f"{excerpt(role)} is not one of {', '.join(model.family.input_roles)}")
        elif role in seen and role != "control" and role not in model.family.repeated_roles:
            v.add(
                f"{field}.role",
                f"model {model.name!r} ({model.family.name}) takes one {role!r} image; this is a second",
            )
        seen.add(role)
        image = _open_image(v, f"{field}.data", item.data, model, limits)
        if image is not None:
            opened.append((role, image))
            indices.append(index)
    _check_mask_sizes(v, opened, indices)
    check_roles = model.family.check_roles
    # Laid out only when every image is sound: a refused one would leave its row short.
    problem = check_roles([role for role, _ in opened]) if check_roles is not None and len(v.items) == before else None
    if problem:
        v.add("input_images", problem)
    return tuple(opened)


def _input_videos(v: _Violations, request, model: LoadedModel, limits: Limits) -> tuple:
    """Check every input video's role, byte size and container; decode none of them (``decode_inputs``
    does, off the event loop). Returns ``(role, data)`` pairs."""
    items, family = request.input_videos, model.family
    given = {item.role or "video" for item in items}
    for role in family.required_video_roles:
        if role not in given:
            v.add("input_videos", f"model {model.name!r} ({family.name}) needs an input video with role {role!r}")
    if not items:
        return ()
    if not family.video_roles:
        v.add("input_videos", f"model {model.name!r} ({family.name}) takes no input videos")
        return ()
    videos, seen = [], set()
    for index, item in enumerate(items):
        field = f"input_videos[{index}]"
        role = item.role or "video"
        if role not in family.video_roles:
            v.add(f"{field}.role", f"{excerpt(role)} is not one of {', '.join(family.video_roles)}")
        elif role in seen:
            v.add(f"{field}.role", f"model {model.name!r} ({family.name}) takes one {role!r} video; this is a second")
        seen.add(role)
        if len(item.data) > limits.max_input_video_bytes:
            v.add(f"{field}.data", f"{len(item.data)} bytes exceed the limit of {limits.max_input_video_bytes}")
        elif video_inputs.container_of(item.data) is None:
            v.add(f"{field}.data", f"is not {video_inputs.VIDEO_FORMATS}")
        else:
            videos.append((role, item.data))
    check = family.check_video_roles
    problem = check([item.role or "video" for item in items]) if check is not None else None
    if problem:
        v.add("input_videos", problem)
    return tuple(videos)


def decode_inputs(spec: JobSpec, model: LoadedModel, limits: Limits) -> JobSpec:
    """``spec`` with its input images (:func:`decode_input_images`) and videos decoded. Blocking (run it
    off the event loop).

    A video becomes a tuple of PIL RGB frames. Where the model's frames follow an input video
    (``FamilySpec.frames_from_video``), a ``num_frames`` of 0 (the request left it unset) becomes that
    video's frame count cut to the family's frame rule, and the video keeps exactly ``num_frames`` frames;
    a request that asks for more frames than the video holds, or than ``max_input_video_frames``, is
    refused on ``num_frames`` (the latter before decoding). The videos that go frame by frame with it
    (``FamilySpec.aligned_video_roles``) must hold as many frames as it and are cut alike. A family of
    several denoising loops (``FamilySpec.denoising_loops``) gets the loops of the frames so found.

    Raises InvalidRequest naming ``input_videos[i].data`` for a video that does not decode, holds no
    frames, too many frames (``max_input_video_frames``), frames too large (``max_input_video_pixels``),
    too few frames for the family's least count or its denoising loops, another count than the video
    it goes frame by frame with, or (for a video the model continues) fewer than the frames it continues
    from (``FamilySpec.history_frames``); a continued video whose frames and the ``num_frames`` new ones
    exceed ``max_frames`` is refused on ``num_frames``. A request that left ``fps`` unset (``fps`` 0) gets
    the frame rate of the video its output follows or continues (rounded; ``DEFAULT_FPS`` for a video that
    states none, such as a still PNG). Where the model's size follows that video
    (``FamilySpec.size_from_video``), the job gets the size and denoising loops it gives, and a video the
    pipeline cannot take is refused naming it (a size the request sets otherwise, on ``width``). An image
    of a role the family reads only in a video of more than one latent frame
    (``FamilySpec.video_only_roles``) is refused naming ``input_images[i].role`` when the request makes one.
    """
    if spec.input_images:
        spec = decode_input_images(spec, input_mode(model))
    v, family = _Violations(), model.family
    if not spec.input_videos:
        _video_only_images(v, spec, model, spec.num_frames)
        v.raise_if_any()
        return spec
    frames, decoded, sized = spec.num_frames, [], {}
    aligned = family.aligned_video_roles
    # The video the frames follow first: the videos aligned with it are checked against its frames.
    order = sorted(range(len(spec.input_videos)), key=lambda i: spec.input_videos[i][0] != family.frames_from_video)
    followed: tuple[int, int] | None = None  # (index, frames decoded) of the video the frames follow
    for index in order:
        role, data = spec.input_videos[index]
        field = f"input_videos[{index}].data"
        follows = role == family.frames_from_video
        if follows and frames > limits.max_input_video_frames:  # its first frames would be over the limit
            fits = video_inputs.frames_of_rule(limits.max_input_video_frames, family.frame_stride)
            v.add(
                "num_frames",
                f"asks for the input video's first {frames} frames; the limit is "
                f"{limits.max_input_video_frames} input video frames, so ask for {fits} or fewer",
            )
            continue
        # The first num_frames frames of the videos the request's frames count, when it sets them.
        cut = (follows or role in aligned) and spec.num_frames
        got = video_inputs.decode_video(
            v.add, field, data, limits, spec.num_frames if cut else None, cut=follows or role in aligned
        )
        if got is None:
            continue
        history = family.history_frames(model.call_defaults) if family.history_frames is not None else 0
        if role == family.continues_video and len(got) < history:
            v.add(
                field,
                f"has {len(got)} frames; {family.name} continues a video from its last {history} frames, "
                f"so send at least {history}",
            )
        if role == family.continues_video and len(got) + spec.num_frames > limits.max_frames:
            v.add(
                "num_frames",
                f"{family.name} returns the input video's {len(got)} frames followed by num_frames new ones: "
                f"{len(got)} + {spec.num_frames} frames exceed the limit of {limits.max_frames}; ask for at most "
                f"{max(limits.max_frames - len(got), 0)} or send a shorter video",
            )
        if follows:
            followed = (index, len(got))
        if follows and frames and len(got) < frames:
            fits = video_inputs.frames_of_rule(len(got), family.frame_stride)
            v.add("num_frames", f"the input video has {len(got)} frames, fewer than {frames}; ask for {fits} or fewer")
        elif follows and not frames:
            frames = video_inputs.frames_of_rule(min(len(got), limits.max_frames), family.frame_stride)
            if frames < max(family.min_frames, 1):
                v.add(field, f"has {len(got)} frames; {family.name} makes at least {family.min_frames}")
        # An aligned video is not blamed where the followed video has fewer than num_frames: num_frames is.
        elif role in aligned and spec.num_frames and followed is not None and len(got) < spec.num_frames <= followed[1]:
            v.add(
                field,
                f"has {len(got)} frames; {family.name} takes the first {spec.num_frames} (num_frames) of its "
                f"{role} video frame by frame with those of its {family.frames_from_video} video: send at least "
                f"{spec.num_frames}",
            )
        elif role in aligned and not spec.num_frames and followed is not None and len(got) != followed[1]:
            v.add(
                field,
                f"has {len(got)} frames; {family.name} takes its {role} video frame by frame with its "
                f"{family.frames_from_video} video (input_videos[{followed[0]}]), which has {followed[1]}: "
                "send as many frames",
            )
        decoded.append((index, role, tuple(got[:frames] if follows or role in aligned else got)))
        if follows and family.size_from_video is not None:
            sized = _size_from_video(v, field, spec, model, limits, got[0].size)
    loops = spec.denoising_loops
    plan = family.denoising_loops
    if plan is not None and followed is not None and not spec.num_frames and frames and not v.items:
        loops, made = plan(frames, model.call_defaults)
        if made != frames:
            v.add(
                f"input_videos[{followed[0]}].data",
                f"has {followed[1]} frames; {family.name} samples its video in whole chunks or segments, and "
                f"{frames} frames take {loops}, which make {made}: send {made} frames or more",
            )
    if frames:  # a video that set no count is refused already
        _video_only_images(v, spec, model, frames)
    v.raise_if_any()
    videos = tuple((role, got) for _index, role, got in sorted(decoded, key=lambda item: item[0]))
    fields = {"denoising_loops": loops, **sized}  # a size from the video counts its loops
    if not spec.fps:  # left unset: the rate of the video the output follows or continues
        timed = next(
            data for role, data in spec.input_videos if role in (family.frames_from_video, family.continues_video)
        )
        rate = video_inputs.frame_rate(timed)
        fields["fps"] = min(max(round(rate), 1), MAX_FPS) if rate else DEFAULT_FPS
    return dataclasses.replace(spec, input_videos=videos, num_frames=frames, **fields)


def _size_from_video(
    v: _Violations, field: str, spec: JobSpec, model: LoadedModel, limits: Limits, size: tuple[int, int]
) -> dict:
    """The width, height and denoising loops of a job whose model renders a size it derives from its input
    video (``FamilySpec.size_from_video``), for a video of ``size``; empty after a violation: on ``field``
    for a video the pipeline cannot take, on ``width`` for a size the request sets otherwise (0 = unset)
    or one beyond the engine's limits."""
    plan = model.family.size_from_video(model.pipeline, *size, model.call_defaults)
    if isinstance(plan, str):
        v.add(field, plan)
        return {}
    width, height, loops = plan
    sent = ((spec.width, width), (spec.height, height))
    if any(value and value != rendered for value, rendered in sent):
        v.add(
            "width",
            f"model {model.name!r} ({model.family.name}) renders {width}x{height} for this {size[0]}x{size[1]} "
            "input video (its size follows the video); leave width and height unset or send that size",
        )
        return {}
    if width > limits.max_width or height > limits.max_height or width * height > limits.max_pixels:
        v.add(
            "width",
            f"model {model.name!r} ({model.family.name}) renders {width}x{height} for this input video, beyond "
            f"the limits of {limits.max_width}x{limits.max_height} and {limits.max_pixels} pixels",
        )
        return {}
    return {"width": width, "height": height, "denoising_loops": loops * spec.num_outputs}


def _video_only_images(v: _Violations, spec: JobSpec, model: LoadedModel, frames: int) -> None:
    """Refuses an input image of a role the pipeline reads only for a video of more than one latent frame
    (``FamilySpec.video_only_roles``) in a request for ``frames`` frames that make one."""
    family = model.family
    if frames > family.frame_stride:
        return
    for index, (role, _) in enumerate(spec.input_images):
        if role in family.video_only_roles:
            v.add(
                f"input_images[{index}].role",
                f"{family.name} reads a {role!r} image only for a video of more than {family.frame_stride} frames "
                f"(one latent frame); this request makes {frames}",
            )


def _size_from_input(
    v: _Violations, request, model: LoadedModel, limits: Limits, images: tuple, width: int, height: int
) -> tuple[int, int]:
    """The size a family that derives it from its input image renders for the request's first ``image``
    (``FamilySpec.size_from_input``), or ``(width, height)`` unchanged for any other family or without
    such an image (a violation names it already). A width or height the request sets to another size
    is a violation on ``width``."""
    rule = model.family.size_from_input
    first = next((image for role, image in images if role == "image"), None)
    if rule is None or first is None:
        return width, height
    rendered = rule(model.pipeline, *first.size, model.call_defaults)
    sent = {"width": (width, rendered[0]), "height": (height, rendered[1])}
    if any(request.HasField(field) and value and value != size for field, (value, size) in sent.items()):
        v.add(
            "width",
            f"model {model.name!r} ({model.family.name}) renders {rendered[0]}x{rendered[1]} for this "
            f"{first.size[0]}x{first.size[1]} input image (its size follows the input image); leave width and "
            "height unset or send that size",
        )
    elif (
        rendered[0] > limits.max_width
        or rendered[1] > limits.max_height
        or rendered[0] * rendered[1] > limits.max_pixels
    ):
        v.add(
            "width",
            f"model {model.name!r} ({model.family.name}) renders {rendered[0]}x{rendered[1]} for this input image, "
            f"beyond the limits of {limits.max_width}x{limits.max_height} and {limits.max_pixels} pixels",
        )
    return rendered


def _open_image(v: _Violations, field: str, data: bytes, model: LoadedModel, limits: Limits) -> Image.Image | None:
    """``data`` opened as a PNG or JPEG, its header checked against the limits; None after a violation."""
    if len(data) > limits.max_input_image_bytes:
        v.add(field, f"{len(data)} bytes exceed the limit of {limits.max_input_image_bytes}")
        return None
    try:
        # Reads the header only. Pillow raises many types on hostile headers; none of their text is sent.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the limit below is ours
            image = Image.open(io.BytesIO(data), formats=INPUT_IMAGE_FORMATS)
        width, height = image.size
    except Image.DecompressionBombError:  # a header that claims far more than Pillow's own ceiling
        v.add(field, f"exceeds the limit of {limits.max_input_pixels} pixels")
        return None
    except Exception:
        v.add(field, "is not a PNG or JPEG image")
        return None
    if width * height > limits.max_input_pixels:
        v.add(field, f"{width}x{height} exceeds the limit of {limits.max_input_pixels} pixels")
        return None
    least = max(model.family.min_input_side, model.spatial_factor)
    if min(width, height) < least:
        v.add(field, f"{width}x{height} is too small: {model.family.name} needs {least} pixels a side at least")
        return None
    most = model.family.max_input_aspect
    if most and max(width, height) > most * min(width, height):
        v.add(field, f"{width}x{height} is too elongated: {model.family.name} takes up to {most:g}:1")
        return None
    return image


def input_mode(model: LoadedModel) -> str:
    """The Pillow mode the model's input images are decoded to: ``"RGBA"`` for a family that reads their
    alpha channel (``FamilySpec.outputs_alpha``; an image without one becomes opaque), else ``"RGB"``."""
    return "RGBA" if model.family.outputs_alpha else "RGB"


def decode_input_images(spec: JobSpec, mode: str = "RGB") -> JobSpec:
    """``spec`` with its input images decoded to ``mode`` (:func:`input_mode`). Blocking (run it off the
    event loop).

    Raises InvalidRequest naming ``input_images[i].data`` for an image that is truncated or
    corrupt. The decoded size is the header's, which validation bounded by ``max_input_pixels``.
    """
    v = _Violations()
    decoded = []
    for index, (role, image) in enumerate(spec.input_images):
        try:
            image.load()
            decoded.append((role, image.convert(mode)))
        except Exception:
            v.add(f"input_images[{index}].data", "is truncated or corrupt: its image data does not decode")
        finally:
            image.close()
    v.raise_if_any()
    return dataclasses.replace(spec, input_images=tuple(decoded))


def _check_mask_sizes(v: _Violations, decoded: list, indices: list[int]) -> None:
    """A mask must have the size of the first image it masks: role ``image``, or ``control`` for a
    ControlNet inpainting pipeline that masks its control image (and takes no ``image``)."""
    masked = next((role for role in ("image", "control") if any(r == role for r, _ in decoded)), None)
    if masked is None:
        return
    image = next(picture for role, picture in decoded if role == masked)
    name = "image" if masked == "image" else "control image"
    for (role, mask), index in zip(decoded, indices, strict=True):
        if role == "mask" and mask.size != image.size:
            v.add(
                f"input_images[{index}].data",
                f"the mask is {mask.width}x{mask.height} but the {name} is {image.width}x{image.height}; "
                f"send a mask of the {name}'s size",
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
    if value == 1.0 and model.family.full_strength_problem is not None:
        v.add(
            "strength",
            f"model {model.name!r} ({model.family.name}) takes a strength below 1: "
            f"{model.family.full_strength_problem}",
        )
        return default
    return value


def _layers(v: _Violations, request: pb.GenerateRequest, model: LoadedModel) -> int | None:
    """The request's layer count (or the model's default) for a model that splits its input image into
    layers; ``None`` for any other."""
    default, most = model.default_layers, model.family.max_layers
    if not request.HasField("layers"):
        return default
    if default is None:
        v.add("layers", f"model {model.name!r} ({model.family.name}) makes no layers; leave it unset")
        return None
    if not 1 <= request.layers <= most:
        v.add("layers", f"must be between 1 and {most}, got {request.layers}")
        return default
    return request.layers


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
