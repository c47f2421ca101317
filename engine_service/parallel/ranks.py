"""Starting the ranks of a multi-process engine under ``torchrun``."""

from __future__ import annotations

import datetime
import logging
import os
from collections.abc import Mapping

import torch
import torch.distributed as dist

from engine_service.parallel.config import ParallelConfig
from engine_service.parallel.lockstep import Lockstep
from engine_service.parallel.parallelize import ParallelPlanError, parallelize
from engine_service.parallel.plans import plan_for

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


def parallelize_models(models: Mapping, parallel: ParallelConfig, device: torch.device) -> None:
    """Split every loaded model's transformer as ``parallel`` asks; ValueError for a family without a plan."""
    for model in models.values():
        if not model.speed.is_default:
            # Quantized or compiled layers, offload hooks and a fixed attention backend meet the
            # parallel hooks and DTensor weights untested: refuse rather than guess.
            raise ParallelPlanError(
                f"model {model.name!r}: --parallel cannot be combined with the speed options "
                "(--quantize, --compile, --attention-backend, --offload) yet"
            )
        family = model.family
        if parallel.context_degree > 1 and not family.context_parallel:
            raise ParallelPlanError(f"model {model.name!r} ({family.name}) has no context-parallel plan")
        if parallel.tp > 1 and not family.tensor_parallel:
            raise ParallelPlanError(f"model {model.name!r} ({family.name}) has no tensor-parallel plan")
        parallelize(model.pipeline, family.name, plan_for(family.name), parallel, device)
        logger.info("model %r split: %s", model.name, parallel)


def stop_ranks(lockstep: Lockstep | None) -> None:
    """Rank 0: release the followers; every rank: leave the process group."""
    if lockstep is None:
        return
    if lockstep.is_leader:
        lockstep.stop()
    if dist.is_initialized():
        dist.destroy_process_group()
