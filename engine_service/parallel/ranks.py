"""Starting the ranks of a multi-process engine under ``torchrun``."""

from __future__ import annotations

import datetime
import functools
import logging
import os
from collections.abc import Mapping

import torch
import torch.distributed as dist

from engine_service.models import apply_model_speed
from engine_service.parallel.config import ParallelConfig
from engine_service.parallel.lockstep import Lockstep
from engine_service.parallel.parallelize import TRANSFORMERS, ParallelPlanError, parallelize
from engine_service.parallel.plans import plan_for
from engine_service.quant import SCHEMES, SpeedConfig

logger = logging.getLogger(__name__)

#: Seconds a collective (a step's communication, the end-of-call barrier) may wait for the other ranks.
DEFAULT_TIMEOUT_S = 300.0


def start_ranks(parallel: ParallelConfig, device_choice: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> Lockstep:
    """Join the process group torchrun set up (``RANK``, ``WORLD_SIZE``, ...): NCCL on GPUs, gloo on CPU."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        raise ValueError(
            f"--parallel {parallel} runs one process per rank: start it with "
            f"`torchrun --nproc-per-node {parallel.world_size} -m engine_service serve --parallel {parallel}`"
        )
    world = int(os.environ["WORLD_SIZE"])
    if world != parallel.world_size:
        raise ValueError(f"--parallel {parallel} needs {parallel.world_size} processes, torchrun started {world}")
    use_cuda = device_choice != "cpu" and torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend="nccl" if use_cuda else "gloo", timeout=datetime.timedelta(seconds=timeout_s))
    lockstep = Lockstep(timeout_s=timeout_s)
    logger.info("rank %d of %d joined (%s)", lockstep.rank, lockstep.world_size, dist.get_backend())
    return lockstep


def check_combination(speed: SpeedConfig, parallel: ParallelConfig) -> None:
    """ParallelPlanError naming both flags for a speed setting that cannot run split ``parallel``'s way.

    The attention backend is checked when the model is split (``attention.backend_for``)."""
    scheme = SCHEMES.get(speed.quantize) if speed.quantize is not None else None
    if parallel.tp > 1 and scheme is not None and scheme.tensor_parallel_refusal is not None:
        raise ParallelPlanError(
            f"--quantize {speed.quantize} with --parallel {parallel}: {scheme.tensor_parallel_refusal}"
        )
    if speed.offload is not None:
        raise ParallelPlanError(
            f"--offload {speed.offload} with --parallel {parallel}: offload moves whole components between "
            "host and device on every call, while a split model keeps each rank's shard on its own device; "
            "split over more devices instead"
        )


def parallelize_models(models: Mapping, parallel: ParallelConfig, device: torch.device) -> None:
    """Split every loaded model's transformer as ``parallel`` asks, then apply its speed stack to the split
    layers (quantization of the local shards, compile of the split blocks). ValueError (ParallelPlanError)
    for a family without a plan or a speed setting that cannot be split, before anything is split."""
    for model in models.values():
        family = model.family
        if parallel.context_degree > 1 and not family.context_parallel:
            raise ParallelPlanError(f"model {model.name!r} ({family.name}) has no context-parallel plan")
        if parallel.tp > 1 and not family.tensor_parallel:
            raise ParallelPlanError(f"model {model.name!r} ({family.name}) has no tensor-parallel plan")
        if not model.speed.is_default and not model.speed_pending:
            raise ParallelPlanError(
                f"model {model.name!r}: its speed stack was applied before the split; load it with defer_speed"
            )
        try:
            check_combination(model.speed, parallel)
        except ParallelPlanError as err:
            raise ParallelPlanError(f"model {model.name!r}: {err}") from err
    for model in models.values():
        speed = model.speed
        plan = plan_for(model.family.name)
        parallelize(model.pipeline, model.family.name, plan, parallel, device, speed.attention_backend, speed.compile)
        apply_model_speed(model, device)
        if parallel.tp > 1 and speed.quantize is not None:
            for module in _quantized_split_modules(model.pipeline, speed):
                _run_outside_inference_mode(module)
        logger.info("model %r split: %s", model.name, parallel)


def _quantized_split_modules(pipeline, speed: SpeedConfig) -> list[torch.nn.Module]:
    """The components whose weights are torchao tensors over DTensor shards."""
    names = list(TRANSFORMERS)
    if speed.quantize_text_encoder:
        names += [name for name in pipeline.components if name.startswith("text_encoder")]
    return [module for name in names if isinstance(module := getattr(pipeline, name, None), torch.nn.Module)]


def _run_outside_inference_mode(module: torch.nn.Module) -> None:
    """Run ``module``'s forward under ``no_grad`` instead of ``inference_mode``.

    A torchao tensor whose data is a DTensor shard cannot make views in inference mode ("Cannot set
    version_counter for inference tensor"); under ``no_grad`` it computes the same values. Inputs
    made in inference mode are read as they are; the outputs are ordinary tensors.
    """
    forward = module.forward

    @functools.wraps(forward)
    def outside(*args, **kwargs):
        with torch.inference_mode(False), torch.no_grad():
            return forward(*args, **kwargs)

    module.forward = outside


def stop_ranks(lockstep: Lockstep | None) -> None:
    """Rank 0: release the followers; every rank: leave the process group."""
    if lockstep is None:
        return
    if lockstep.is_leader:
        lockstep.stop()
    if dist.is_initialized():
        dist.destroy_process_group()
