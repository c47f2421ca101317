"""Assembling an engine from settings: device, dtype, models."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from engine_service.config import BatchingConfig, Limits

if TYPE_CHECKING:
    from engine_service.models.lora import LoraSource
    from engine_service.quant import SpeedConfig

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ModelSource:
    """A model to load: its name and a local diffusers directory (``None`` = the builtin default)."""

    name: str
    path: str | None = None
    speed: SpeedConfig | None = None
    """This model's speed stack; None = the engine-wide one given to ``build_engine``."""
    controlnets: tuple[str, ...] = ()
    """ControlNet model directories attached to the pipeline at ``path`` (``--controlnet``)."""


def parse_model_arg(value: str) -> ModelSource:
    """Parse ``NAME=PATH`` from ``--model``."""
    name, sep, path = value.partition("=")
    if not sep or not name or not path:
        raise ValueError(f"--model expects NAME=PATH, got {value!r}")
    return ModelSource(name=name, path=path)


def parse_controlnet_arg(value: str, sources: Sequence[ModelSource]) -> ModelSource:
    """Parse ``NAME=PATH[,PATH...]:MODEL`` from ``--controlnet``: a model NAME that runs the
    ``--model`` MODEL's directory (with its speed stack) steered by the ControlNet(s) at PATH."""
    name, sep, rest = value.partition("=")
    paths, colon, base = rest.rpartition(":")
    # Every comma-separated PATH must name a directory: an empty one would attach fewer ControlNets
    # than written (none at all: NAME would serve MODEL unsteered).
    if not sep or not name or not colon or not base or not all(paths.split(",")):
        raise ValueError(
            f"--controlnet expects NAME=PATH:MODEL (PATH may list several, comma-separated), got {value!r}"
        )
    by_name = {source.name: source for source in sources if source.path is not None}
    if base not in by_name:
        served = ", ".join(by_name) or "none"
        raise ValueError(f"--controlnet {name}: MODEL {base!r} is not a --model NAME=PATH (those given: {served})")
    return dataclasses.replace(by_name[base], name=name, controlnets=tuple(paths.split(",")))


def _loras_by_model(loras: Sequence[LoraSource], names: list[str], default_model: str) -> dict[str, list[LoraSource]]:
    """The adapters of each model, in order; ValueError for a model that is not served."""
    grouped: dict[str, list[LoraSource]] = {}
    for source in loras:
        model = source.model or default_model
        if model not in names:
            raise ValueError(f"--lora {source.name}: no model named {model!r} (models: {', '.join(names)})")
        grouped.setdefault(model, []).append(source)
    return grouped


def parse_size(value: str) -> tuple[int, int]:
    """Parse ``WxH`` (or ``N`` for a square) from ``--warmup-size``."""
    width, sep, height = value.lower().partition("x")
    try:
        size = (int(width), int(height if sep else width))
    except ValueError:
        raise ValueError(f"--warmup-size expects WIDTHxHEIGHT, got {value!r}") from None
    if min(size) < 1:
        raise ValueError(f"--warmup-size must be positive, got {value!r}")
    return size


def resolve_device(choice: str):
    """``auto`` picks CUDA when available, else CPU."""
    import torch

    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda: no CUDA device is available")
    return torch.device(choice)


def resolve_dtype(choice: str, device):
    """``auto``: bfloat16 on CUDA, float32 on CPU."""
    import torch

    if choice == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[choice]


def build_engine(
    sources: list[ModelSource],
    *,
    device: str = "auto",
    dtype: str = "auto",
    default_model: str | None = None,
    limits: Limits | None = None,
    batching: BatchingConfig | None = None,
    speed: SpeedConfig | None = None,
    warmup_sizes: tuple[tuple[int, int], ...] = (),
    compile_cache: str | os.PathLike[str] | None = None,
    parallel=None,
    lockstep=None,
    loras: Sequence[LoraSource] = (),
    max_loras_per_request: int | None = None,
):
    """Load every model and return an AsyncEngine (not started). No source = the builtin default.

    ``speed`` is every model's speed stack unless its source sets its own; each is checked
    against the device before anything loads. ``warmup_sizes`` are run before SERVING (the
    model's default size when empty). ``compile_cache`` is a directory that keeps compiled
    graphs across restarts. With ``parallel`` (a ParallelConfig, inside a process group) every
    model's transformer is split across the ranks; with ``lockstep`` (rank 0's transport) the
    engine runs every call on all ranks (``runtime.executor.LockstepExecutor``). ``loras`` are
    LoRA adapters loaded into their model (the default model when a source names none), which a
    request may combine up to ``max_loras_per_request``; one that does not fit its model raises
    LoraLoadError naming its file (default of ``max_loras_per_request``:
    ``models.lora.DEFAULT_MAX_LORAS_PER_REQUEST``).
    """
    # Never reach for a model hub: every model comes from a local directory or from code.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from engine_service.models import load_builtin_default, load_local_model
    from engine_service.models.lora import DEFAULT_MAX_LORAS_PER_REQUEST, load_loras
    from engine_service.models.lora import check_quantize as check_lora_quantize
    from engine_service.quant import CompileCache, SpeedConfig, check_speed
    from engine_service.runtime.engine import AsyncEngine
    from engine_service.runtime.executor import LockstepExecutor

    limits = limits or Limits()
    for width, height in warmup_sizes:
        if width > limits.max_width or height > limits.max_height or width * height > limits.max_pixels:
            raise ValueError(
                f"--warmup-size {width}x{height} exceeds the limits (--max-width {limits.max_width}, "
                f"--max-height {limits.max_height}, --max-pixels {limits.max_pixels})"
            )
    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, torch_device)
    sources = sources or [ModelSource(name="default")]
    names = [s.name for s in sources]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"model names must be unique; repeated: {', '.join(duplicates)}")
    speeds = {s.name: s.speed or speed or SpeedConfig() for s in sources}
    for name, config in speeds.items():
        try:
            check_speed(config, torch_device, torch_dtype)
        except ValueError as err:
            raise type(err)(f"model {name!r}: {err}") from err
    loras_of = _loras_by_model(loras, names, default_model or names[0])
    per_request = DEFAULT_MAX_LORAS_PER_REQUEST if max_loras_per_request is None else max_loras_per_request
    if per_request < 1:
        raise ValueError(f"--max-loras-per-request must be at least 1, got {per_request}")
    if loras_of and parallel is not None and parallel.enabled:
        raise ValueError("--lora with --parallel is not supported yet: adapters load into one process's model")
    for name in loras_of:
        check_lora_quantize(speeds[name].quantize, name)
    cache = None
    if compile_cache is not None:
        cache = CompileCache(compile_cache)
        cache.activate()
    models = {}
    split = parallel is not None and parallel.enabled
    for source in sources:
        config = speeds[source.name]
        # With offload, the weights stay in host memory until diffusers' hooks move them.
        place = torch.device("cpu") if config.offload else torch_device
        if source.path is None:
            model = load_builtin_default(place, torch_dtype, config, name=source.name, defer_speed=split)
        else:
            model = load_local_model(
                source.name, source.path, place, torch_dtype, config, defer_speed=split, controlnets=source.controlnets
            )
        history = model.family.history_frames(model.call_defaults) if model.family.history_frames else 0
        if history > limits.max_input_video_frames:
            raise ValueError(
                f"model {source.name!r} continues a video from its last {history} frames, more than "
                f"--max-input-video-frames {limits.max_input_video_frames}: every request would be refused"
            )
        for width, height in warmup_sizes:
            factor = model.spatial_factor
            if width % factor or height % factor:
                raise ValueError(f"--warmup-size {width}x{height}: model {source.name!r} needs multiples of {factor}")
        adapters = None
        if source.name in loras_of:
            adapters = load_loras(
                source.name,
                model.pipeline,
                loras_of[source.name],
                max_per_request=per_request,
                compiled=config.compile,
            )
        models[source.name] = dataclasses.replace(model, warmup_sizes=tuple(warmup_sizes), loras=adapters)
    default_model = default_model or names[0]
    if default_model not in models:
        raise ValueError(f"--default-model {default_model!r} is not among the loaded models: {', '.join(names)}")
    logger.info("loaded %d model(s) on %s (%s)", len(models), torch_device, torch_dtype)
    if split:
        from engine_service.parallel.ranks import parallelize_models

        # Split first, then quantize and compile the split layers.
        parallelize_models(models, parallel, torch_device)
    return AsyncEngine(
        models,
        default_model,
        limits,
        str(torch_device),
        batching,
        compile_cache=cache,
        executor=LockstepExecutor(models, lockstep) if lockstep is not None and lockstep.is_leader else None,
    )
