"""Loading models: local diffusers directories and the builtin default.

A model is a loaded pipeline plus the facts the engine validates requests
against (defaults, spatial factor, what it accepts). The family is detected
from the directory's ``model_index.json``; nothing is ever fetched from a hub.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import os
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from diffusers import DiffusionPipeline
from diffusers.utils import logging as diffusers_logging

from engine_service.cache.adapter import groups_for
from engine_service.errors import ModelLoadError
from engine_service.models.builtin import BUILTIN_CALL_DEFAULTS, BUILTIN_DEFAULTS, BUILTIN_DIR, BUILTIN_NAME
from engine_service.models.families import FAMILIES
from engine_service.models.lora import ModelLoras
from engine_service.models.omnigen_processor import provide_omnigen_processor
from engine_service.models.spec import FamilySpec
from engine_service.models.vl_processors import image_only_processors
from engine_service.quant import SpeedConfig, apply_speed
from engine_service.quant.compile import CompileStats

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class LoadedModel:
    """A pipeline ready to run, with the facts requests are validated against."""

    name: str
    """Name clients use in ``GenerateRequest.model``."""
    family: FamilySpec
    """The family entry that tells the engine how to drive the pipeline."""
    pipeline: DiffusionPipeline
    """The diffusers pipeline, on its device, in eval mode."""
    source: str
    """The local directory it was loaded from, or ``"builtin"``."""
    default_width: int
    default_height: int
    default_steps: int
    default_guidance_scale: float
    default_frames: int
    default_layers: int | None
    """Layers a request gets when it sends none, for a family that splits its input image into layers
    (the family's, or the directory's ``layers``); ``None`` for other families."""
    spatial_factor: int
    """Width and height must be multiples of this (VAE scale factor x the family's latent patch)."""
    call_defaults: Mapping[str, Any]
    """Fixed keyword arguments added to every pipeline call."""
    speed: SpeedConfig = dataclasses.field(default_factory=SpeedConfig)
    """The speed stack applied at load (quantization, compile, attention backend, offload)."""
    warmup_sizes: tuple[tuple[int, int], ...] = ()
    """(width, height) pairs run before SERVING (compiled graphs are built for them); empty = the default size."""
    native_size: tuple[int, int] | None = None
    """The only (width, height) the pipeline renders, for families with one size; ``None`` = any."""
    control_images: int = 0
    """Control images every request must send (one per ControlNet); 0 for pipelines without one."""
    loras: ModelLoras | None = None
    """Its LoRA adapters (``--lora``), chosen per request; ``None`` = none loaded."""
    cache_calibration: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """The ``cache`` entry of the directory's ``ditserve.json``: TeaCache coefficients and the
    MagCache curve written by ``ditserve calibrate-cache``; empty = not calibrated."""
    speed_pending: bool = False
    """The speed stack is still to be applied (:func:`apply_model_speed`): a multi-rank engine splits first."""
    compile_stats: CompileStats | None = None
    """What the compiled blocks did (graphs built, compiled and eager calls); None when not compiled."""

    @property
    def num_transformer_blocks(self) -> int:
        """Blocks over all of the transformer's repeated block lists."""
        transformer = self.pipeline.transformer
        return sum(len(getattr(transformer, attr, ())) for attr in self.family.block_lists)

    @functools.cached_property
    def cache_group_sizes(self) -> tuple[int, ...]:
        """Blocks in each group the cache splits into Fn / middle / Bn (FLUX: one group of all blocks)."""
        return tuple(len(group.blocks()) for group in groups_for(self.pipeline, None))


def family_for_pipeline(pipeline_class: str) -> FamilySpec:
    """The family entry serving ``pipeline_class``; ModelLoadError naming it when none does."""
    for family in FAMILIES:
        if pipeline_class in family.pipeline_classes:
            if family.unsupported_reason is not None:
                raise ModelLoadError(f"pipeline {pipeline_class!r} is not supported: {family.unsupported_reason}")
            return family
    supported = sorted(
        name for family in FAMILIES if family.unsupported_reason is None for name in family.pipeline_classes
    )
    raise ModelLoadError(f"unsupported pipeline {pipeline_class!r}; supported pipelines: {', '.join(supported)}")


#: Pipeline attributes holding the VAE's spatial compression, under the names diffusers pipelines use.
_VAE_SPATIAL_ATTRIBUTES = (
    "vae_scale_factor_spatial",
    "vae_spatial_compression_ratio",  # LTX-Video
    "vae_spatial_scale_factor",  # Mochi
    "vae_scale_factor",
)


def _spatial_factor(pipeline: DiffusionPipeline, family: FamilySpec) -> int:
    vae_scale = next((getattr(pipeline, name) for name in _VAE_SPATIAL_ATTRIBUTES if getattr(pipeline, name, None)), 8)
    return int(vae_scale) * family.latent_patch


def _finish(
    name: str,
    family: FamilySpec,
    pipeline: DiffusionPipeline,
    source: str,
    device: torch.device,
    overrides: Mapping[str, Any] | None = None,
    speed: SpeedConfig | None = None,
    defer_speed: bool = False,
) -> LoadedModel:
    speed = speed or SpeedConfig()
    if speed.offload is None:
        pipeline.to(device)  # with offload, diffusers' hooks move each component when it runs
    pipeline.set_progress_bar_config(disable=True)
    if family.prepare_pipeline is not None:
        try:
            family.prepare_pipeline(pipeline)
        except ModelLoadError as err:
            raise ModelLoadError(f"model {name!r}: {err}") from err
    overrides = dict(overrides or {})
    native = family.native_size(pipeline) if family.native_size is not None else None
    default_size = native or (family.default_size(pipeline) if family.default_size is not None else None)
    if default_size is not None:
        overrides.setdefault("width", default_size[0])
        overrides.setdefault("height", default_size[1])
    if family.native_frames is not None:
        overrides.setdefault("frames", family.native_frames(pipeline))
    _check_default_frames(name, family, pipeline, overrides.get("frames"))
    clash = sorted(set(overrides.get("call_defaults", {})) & set(family.request_call_arguments))
    if clash:
        raise ModelLoadError(
            f"model {name!r}: call_defaults may not set {', '.join(clash)}: {family.name} sets them from each request"
        )
    call_defaults = {**family.call_defaults, **overrides.pop("call_defaults", {})}
    schedule = sorted({"sigmas", "timesteps"} & set(call_defaults))
    if schedule and family.schedule_steps is None:
        raise ModelLoadError(
            f"model {name!r}: call_defaults may not set {', '.join(schedule)}: {family.name} runs each request's "
            "num_inference_steps, and a fixed schedule would run another count than progress, the step mask and "
            "the cache follow (set steps instead)"
        )
    if family.schedule_steps is not None:
        overrides["steps"] = _schedule_steps(name, family, call_defaults, overrides.get("steps"))
    if "guidance_scale" in overrides and not family.takes_guidance:
        raise ModelLoadError(  # every request would run without it, and one sending it is refused
            f"model {name!r}: {family.name} takes no guidance scale; guidance_scale is "
            f"{overrides['guidance_scale']!r} (leave it unset)"
        )
    model = LoadedModel(
        name=name,
        family=family,
        pipeline=pipeline,
        source=source,
        default_width=overrides.pop("width", family.default_width),
        default_height=overrides.pop("height", family.default_height),
        default_steps=overrides.pop("steps", family.default_steps),
        default_guidance_scale=overrides.pop("guidance_scale", family.default_guidance_scale),
        default_frames=overrides.pop("frames", family.default_frames),
        default_layers=_default_layers(name, family, overrides.pop("layers", None)),
        spatial_factor=_spatial_factor(pipeline, family),
        call_defaults=call_defaults,
        speed=speed,
        native_size=native,
        control_images=family.control_count(pipeline) if family.control_count is not None else 0,
        cache_calibration=dict(overrides.pop("cache", {})),
        speed_pending=not speed.is_default,
    )
    _check_loop_frames(model)
    if not defer_speed:
        apply_model_speed(model, device)
    return model


def _check_loop_frames(model: LoadedModel) -> None:
    """ModelLoadError for a video model whose default frame count its denoising loops do not make
    (``FamilySpec.denoising_loops``, with the model's ``call_defaults``: Wan-Animate segments that start
    on more conditioning frames than they add make none): every request would be INVALID_ARGUMENT. So is one
    whose call_defaults that size the chunks are no sizes (the plan's ValueError)."""
    plan, frames = model.family.denoising_loops, model.default_frames
    if plan is None or model.family.output_kind != "video":
        return
    try:
        loops, made = plan(frames, model.call_defaults)
    except ValueError as err:  # a call default that sizes the chunks is no such size
        raise ModelLoadError(f"model {model.name!r}: {err}") from err
    if made != frames:
        raise ModelLoadError(
            f"model {model.name!r}: {model.family.name} samples its video in whole chunks or segments, and its "
            f"default {frames} frames take {loops}, which make {made}; set frames, or the call_defaults that "
            "size the chunks, so that they make what they are asked"
        )


def _schedule_steps(name: str, family: FamilySpec, call_defaults: Mapping[str, Any], steps: int | None) -> int:
    """The steps of the fixed sigma schedule a model runs (``FamilySpec.schedule_steps``); ModelLoadError
    for a schedule that is no list of sigmas, or a model default ``steps`` other than its length (every
    request leaving ``num_inference_steps`` unset would be INVALID_ARGUMENT)."""
    sigmas = call_defaults.get("sigmas")
    if sigmas is not None and not (
        isinstance(sigmas, list | tuple)
        and sigmas
        and all(isinstance(s, int | float) and not isinstance(s, bool) for s in sigmas)
    ):
        raise ModelLoadError(
            f"model {name!r}: call_defaults sigmas must be a non-empty list of numbers, got {sigmas!r}"
        )
    schedule = family.schedule_steps(call_defaults)
    if steps is not None and steps != schedule:
        raise ModelLoadError(
            f"model {name!r}: {family.name} runs its sigma schedule of {schedule} steps and takes no step count; "
            f"steps is {steps} (leave it unset, or set call_defaults sigmas)"
        )
    return schedule


def _check_default_frames(name: str, family: FamilySpec, pipeline: DiffusionPipeline, frames: int | None) -> None:
    """ModelLoadError for a model default frame count (``frames`` in ``ditserve.json``) that the
    family's frame rule refuses: every request leaving ``num_frames`` unset would be INVALID_ARGUMENT."""
    if frames is None or family.output_kind != "video":
        return
    native = family.native_frames(pipeline) if family.native_frames is not None else None
    counts = (native,) if native is not None else family.frame_counts
    if counts is not None and frames not in counts:
        allowed = ", ".join(map(str, counts))
        raise ModelLoadError(f"model {name!r}: frames must be {allowed} for {family.name}, got {frames}")
    if frames < family.min_frames or (frames - 1) % family.frame_stride:
        raise ModelLoadError(
            f"model {name!r}: frames must be a multiple of {family.frame_stride} plus 1 for {family.name}, "
            f"at least {family.min_frames}; got {frames}"
        )


def _default_layers(name: str, family: FamilySpec, layers: int | None) -> int | None:
    """The model's default layer count: its own (``layers`` in ``ditserve.json``) or its family's.
    ModelLoadError for one its family takes none of, or beyond the family's ``max_layers``."""
    if layers is None:
        return family.default_layers
    if family.default_layers is None:
        raise ModelLoadError(f"model {name!r}: layers is set, but {family.name} splits no image into layers")
    if not 1 <= layers <= family.max_layers:
        raise ModelLoadError(f"model {name!r}: layers must be between 1 and {family.max_layers}, got {layers}")
    return layers


def apply_model_speed(model: LoadedModel, device: torch.device) -> None:
    """Apply ``model.speed`` (attention backend, quantization, compile, offload) if still pending.

    Loading applies it unless asked to defer: a multi-rank engine splits the transformer
    across ranks first, then quantizes and compiles the split layers."""
    if not model.speed_pending:
        return
    model.compile_stats = apply_speed(model.pipeline, model.family.block_lists, model.speed, device, model.name)
    model.speed_pending = False


def _load_directory(name: str, directory: pathlib.Path, dtype: torch.dtype) -> tuple[FamilySpec, DiffusionPipeline]:
    index_file = directory / "model_index.json"
    if not directory.is_dir():
        what = "is a file, not a pipeline directory" if directory.exists() else "does not exist"
        raise ModelLoadError(f"model {name!r}: {directory} {what}")
    if not index_file.is_file():
        raise ModelLoadError(f"model {name!r}: {directory} is not a diffusers pipeline directory (no model_index.json)")
    try:
        index = json.loads(index_file.read_text())
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"model {name!r}: unreadable {index_file}: {err}") from err
    pipeline_class = index.get("_class_name") if isinstance(index, dict) else None
    if not isinstance(pipeline_class, str):
        raise ModelLoadError(f"model {name!r}: {index_file} must be a JSON object with a string _class_name")
    family = family_for_pipeline(pipeline_class)
    logger.info("loading model %r (%s, family %s) from %s", name, pipeline_class, family.name, directory)
    try:
        with _quiet_loading():
            # Qwen-VL processors whose video processor cannot be built here load without it, and
            # OmniGen's pipeline gets its processor without torchvision.
            processors = image_only_processors(directory, index)
            provide_omnigen_processor()
            pipeline = DiffusionPipeline.from_pretrained(
                str(directory), local_files_only=True, dtype=dtype, **processors
            )
    except Exception as err:  # diffusers raises many types for a broken directory
        raise ModelLoadError(f"model {name!r}: loading {directory} failed: {err}") from err
    return family, pipeline


@contextlib.contextmanager
def _quiet_loading():
    """No per-component progress bars while loading: the engine logs what it loads."""
    from transformers.utils import logging as transformers_logging

    libraries = [lib for lib in (diffusers_logging, transformers_logging) if lib.is_progress_bar_enabled()]
    for lib in libraries:
        lib.disable_progress_bar()
    try:
        yield
    finally:
        for lib in libraries:
            lib.enable_progress_bar()


#: Optional file in a model directory with the model's own defaults, in place of its family's.
MODEL_DEFAULTS_FILE = "ditserve.json"
#: What that file may set: request defaults, and fixed keyword arguments added to every pipeline call.
MODEL_DEFAULT_KEYS = ("width", "height", "steps", "guidance_scale", "frames", "layers", "call_defaults", "cache")


def _directory_defaults(name: str, directory: pathlib.Path) -> dict[str, Any]:
    """The defaults of ``directory/ditserve.json`` (e.g. a few-step distilled model: steps 8, guidance 1)."""
    path = directory / MODEL_DEFAULTS_FILE
    if not path.is_file():
        return {}
    try:
        defaults = json.loads(path.read_text())
    except ValueError as err:
        raise ModelLoadError(f"model {name!r}: unreadable {path}: {err}") from err
    if not isinstance(defaults, dict):
        raise ModelLoadError(f"model {name!r}: {path} must hold a JSON object")
    unknown = sorted(set(defaults) - set(MODEL_DEFAULT_KEYS))
    if unknown:
        raise ModelLoadError(
            f"model {name!r}: {path} sets unknown keys {', '.join(unknown)}; known: {', '.join(MODEL_DEFAULT_KEYS)}"
        )
    problems = check_model_defaults(defaults)
    if problems:
        raise ModelLoadError(f"model {name!r}: {path}: {'; '.join(problems)}")
    return defaults


#: Pipeline call arguments the engine sets on every call (from the request or itself): ``call_defaults``
#: may not set them, since the request's value would silently win or the call would get the name twice.
ENGINE_CALL_ARGUMENTS = (
    "prompt",
    "negative_prompt",
    "width",
    "height",
    "num_inference_steps",
    "guidance_scale",
    "num_images_per_prompt",
    "num_videos_per_prompt",
    "num_frames",
    "image",
    "mask_image",
    "layers",
    "generator",
    "latents",
    "output_type",
    "return_dict",
    "callback_on_step_end",
    "callback_on_step_end_tensor_inputs",
)


def check_model_defaults(defaults: Mapping[str, Any]) -> list[str]:
    """What is wrong with the values of a model's defaults (``ditserve.json``); empty when nothing is."""

    def whole(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    problems = []
    for key in ("width", "height", "steps", "frames", "layers"):
        if key in defaults and not (whole(defaults[key]) and defaults[key] >= 1):
            problems.append(f"{key} must be a positive whole number, got {defaults[key]!r}")
    if "guidance_scale" in defaults:
        value = defaults["guidance_scale"]
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 100:
            problems.append(f"guidance_scale must be a number between 0 and 100, got {value!r}")
    call = defaults.get("call_defaults", {})
    if not isinstance(call, dict):
        problems.append("call_defaults must be a JSON object of pipeline keyword arguments")
    else:
        clash = sorted(set(call) & set(ENGINE_CALL_ARGUMENTS))
        if clash:
            problems.append(f"call_defaults may not set {', '.join(clash)}: the engine sets them on every call")
    return problems


#: Config keys a ControlNet shares with the transformer it steers; where both configs have one, the
#: values must agree (the ControlNet's residuals are added to the transformer's hidden states).
_CONTROLNET_MATCHING_KEYS = (
    "in_channels",
    "patch_size",
    "num_attention_heads",
    "attention_head_dim",
    "joint_attention_dim",
    "pooled_projection_dim",
    "caption_channels",
    "cross_attention_dim",
)


def _load_controlnet(name: str, path: str, dtype: torch.dtype, accepted: tuple[type, ...]) -> torch.nn.Module:
    """One ControlNet model directory (``config.json`` + weights), checked against the classes the
    pipeline takes."""
    import diffusers

    directory = pathlib.Path(path)
    config_file = directory / "config.json"
    if not config_file.is_file():
        what = "has no config.json" if directory.is_dir() else "does not exist"
        raise ModelLoadError(f"model {name!r}: ControlNet {directory} {what} (a ControlNet model directory)")
    try:
        class_name = json.loads(config_file.read_text()).get("_class_name")
    except (OSError, ValueError, AttributeError) as err:
        raise ModelLoadError(f"model {name!r}: unreadable {config_file}: {err}") from err
    names = sorted({kind.__name__ for kind in accepted if isinstance(kind, type)})
    if class_name not in names:
        raise ModelLoadError(
            f"model {name!r}: ControlNet {directory} is a {class_name}; this model takes {' or '.join(names)}"
        )
    try:
        with _quiet_loading():
            return getattr(diffusers, class_name).from_pretrained(str(directory), local_files_only=True, dtype=dtype)
    except Exception as err:  # diffusers raises many types for broken weights
        raise ModelLoadError(f"model {name!r}: loading ControlNet {directory} failed: {err}") from err


def _check_controlnet_fits(name: str, path: str, controlnet: torch.nn.Module, transformer: torch.nn.Module) -> None:
    theirs, ours = controlnet.config, transformer.config
    for key in _CONTROLNET_MATCHING_KEYS:
        if key in theirs and key in ours and theirs[key] != ours[key]:
            raise ModelLoadError(
                f"model {name!r}: ControlNet {path} does not fit the model's transformer: "
                f"{key} is {theirs[key]!r} there and {ours[key]!r} in the transformer"
            )


def attach_controlnets(
    name: str, family: FamilySpec, pipeline: DiffusionPipeline, paths: Sequence[str], dtype: torch.dtype
) -> tuple[FamilySpec, DiffusionPipeline]:
    """The family's ControlNet pipeline (``FamilySpec.controlnet_pipeline``) over ``pipeline``'s
    components, steered by the ControlNets at ``paths`` (several: a multi-ControlNet model, one
    ``control`` image each, in this order).

    Raises ModelLoadError naming the path for a family that takes no ControlNet, a ControlNet of
    another model class, or one whose dimensions do not fit the transformer."""
    import diffusers

    if family.controlnet_pipeline is None:
        takers = sorted(f.name for f in FAMILIES if f.controlnet_pipeline is not None)
        raise ModelLoadError(
            f"model {name!r}: a {family.name} model takes no ControlNet (families that do: {', '.join(takers)})"
        )
    if not paths:
        raise ModelLoadError(f"model {name!r}: no ControlNet given")
    variant = getattr(diffusers, family.controlnet_pipeline)
    most = family_for_pipeline(variant.__name__).max_controlnets
    if most is not None and len(paths) > most:
        raise ModelLoadError(
            f"model {name!r}: {variant.__name__} runs at most {most} ControlNet(s) at once, got {len(paths)}: "
            f"{', '.join(paths)}"
        )
    accepted = variant._get_signature_types()["controlnet"]
    nets = [_load_controlnet(name, path, dtype, accepted) for path in paths]
    for path, net in zip(paths, nets, strict=True):
        _check_controlnet_fits(name, path, net, pipeline.transformer)
    controlnet: Any = nets[0]
    if len(nets) > 1:
        multi = [kind for kind in accepted if isinstance(kind, type) and "Multi" in kind.__name__]
        if not multi:
            raise ModelLoadError(f"model {name!r}: {family.controlnet_pipeline} takes one ControlNet, got {len(nets)}")
        controlnet = multi[0](nets)
    with _quiet_loading():
        steered = variant.from_pipe(pipeline, controlnet=controlnet)
    return family_for_pipeline(variant.__name__), steered


def load_local_model(
    name: str,
    path: str | os.PathLike[str],
    device: torch.device,
    dtype: torch.dtype,
    speed: SpeedConfig | None = None,
    defer_speed: bool = False,
    controlnets: Sequence[str] = (),
) -> LoadedModel:
    """Load a diffusers pipeline directory (``save_pretrained`` layout) without touching the network.

    A ``ditserve.json`` in the directory may set the model's defaults (:data:`MODEL_DEFAULT_KEYS`).
    ``defer_speed`` leaves ``speed`` for :func:`apply_model_speed`. ``controlnets`` are ControlNet
    model directories to attach (:func:`attach_controlnets`): the model then runs the family's
    ControlNet pipeline. A directory's own ``controlnet`` component, like an attached one, must fit
    the transformer: else ModelLoadError naming ``PATH/controlnet``."""
    directory = pathlib.Path(path)
    defaults = _directory_defaults(name, directory)
    family, pipeline = _load_directory(name, directory, dtype)
    if family.control_count is not None and getattr(pipeline, "controlnet", None) is not None:
        # A directory's own ``controlnet/`` component is held to what an attached ControlNet is.
        for net in getattr(pipeline.controlnet, "nets", None) or [pipeline.controlnet]:
            _check_controlnet_fits(name, str(directory / "controlnet"), net, pipeline.transformer)
    source = str(directory)
    if controlnets:
        family, pipeline = attach_controlnets(name, family, pipeline, controlnets, dtype)
        source = f"{directory} + ControlNet {', '.join(controlnets)}"
    return _finish(name, family, pipeline, source, device, defaults, speed=speed, defer_speed=defer_speed)


def model_from_pipeline(
    name: str,
    pipeline: DiffusionPipeline,
    device: torch.device,
    defaults: Mapping[str, Any] | None = None,
    speed: SpeedConfig | None = None,
    defer_speed: bool = False,
) -> LoadedModel:
    """Serve a pipeline built in code. ``defaults`` may set width, height, steps, guidance_scale,
    frames and call_defaults in place of the family's; ``speed`` applies a speed stack (or is left
    for :func:`apply_model_speed` with ``defer_speed``)."""
    family = family_for_pipeline(type(pipeline).__name__)
    return _finish(name, family, pipeline, "in-process", device, defaults, speed, defer_speed)


def load_builtin_default(
    device: torch.device,
    dtype: torch.dtype,
    speed: SpeedConfig | None = None,
    name: str = BUILTIN_NAME,
    defer_speed: bool = False,
) -> LoadedModel:
    """The trained tiny FLUX pipeline shipped in the package (64x64, 20 steps), served as ``name``."""
    family, pipeline = _load_directory(name, BUILTIN_DIR, dtype)
    calibration = _directory_defaults(name, BUILTIN_DIR).get("cache", {})
    overrides = {**BUILTIN_DEFAULTS, "call_defaults": BUILTIN_CALL_DEFAULTS, "cache": calibration}
    return _finish(name, family, pipeline, "builtin", device, overrides, speed, defer_speed)
