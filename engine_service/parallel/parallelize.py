"""Applying a family's parallel plan to a loaded pipeline's transformer.

Context parallel goes through diffusers (``ContextParallelConfig`` and
``ModelMixin.enable_parallelism``: its split/gather hooks and its templated
Ulysses / Ring attention). Tensor parallel goes through DTensor's
``parallelize_module`` with the family's plan from ``plans.py``; diffusers 0.42's
own tensor parallel refuses CPU device meshes, and Wan has no plan there.
"""

from __future__ import annotations

import logging
import types
from collections.abc import Mapping

import torch
import torch.distributed as dist
from torch.distributed.device_mesh import DeviceMesh, init_device_mesh
from torch.distributed.tensor import Replicate
from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, parallelize_module

from engine_service.cache import EXPERT_TRANSFORMERS
from engine_service.parallel import attention
from engine_service.parallel.config import ParallelConfig
from engine_service.parallel.plans import (
    COLWISE,
    COLWISE_GATHERED,
    MODEL_PLAN,
    ROWWISE,
    PackedRowwise,
    ParallelPlan,
    TPStyle,
)

logger = logging.getLogger(__name__)

#: Pipeline components split by the transformer plans (a CFG branch's own transformer runs whole).
TRANSFORMERS = EXPERT_TRANSFORMERS


class ParallelPlanError(ValueError):
    """A model cannot be split the way ``--parallel`` asks."""


def device_mesh(parallel: ParallelConfig, device: torch.device) -> DeviceMesh:
    """The engine's one device mesh: dimensions ``ring`` x ``ulysses`` x ``tp`` (tensor parallel innermost, so
    the ranks that exchange activations at every layer are neighbours)."""
    return init_device_mesh(
        device.type, (parallel.ring, parallel.ulysses, parallel.tp), mesh_dim_names=("ring", "ulysses", "tp")
    )


def parallelize(
    pipe,
    family: str,
    plan: ParallelPlan,
    parallel: ParallelConfig,
    device: torch.device,
    attention_backend: str | None = None,
    compiled: bool = False,
) -> None:
    """Split ``pipe.transformer`` across the ranks of the default process group, as ``parallel`` asks.

    Context and tensor parallel combine on one mesh (:func:`device_mesh`): the sequence is split over
    the ``ring`` x ``ulysses`` ranks, the weights over the ``tp`` ranks of each context shard.
    ``attention_backend`` (``--attention-backend``) is the backend context parallel runs on; None =
    :func:`attention.backend_for`'s choice. ``compiled``: the blocks will be compiled, so context parallel
    attention runs as one opaque op inside their graphs (:func:`attention.make_opaque`). Raises
    ParallelPlanError (or AttentionBackendError, both ValueError) before anything is split when the plan,
    the head count or the backend cannot serve the split."""
    if not parallel.enabled:
        return
    if not dist.is_initialized() or dist.get_world_size() != parallel.world_size:
        world = dist.get_world_size() if dist.is_initialized() else 1
        raise ParallelPlanError(f"--parallel {parallel} needs {parallel.world_size} processes, this run has {world}")
    if parallel.context_degree > 1 and plan.context is None:
        raise ParallelPlanError(f"family {family!r} has no context-parallel plan")
    if parallel.tp > 1 and plan.tensor is None:
        raise ParallelPlanError(f"family {family!r} has no tensor-parallel plan")
    transformers = [getattr(pipe, name) for name in TRANSFORMERS if getattr(pipe, name, None) is not None]
    if parallel.ulysses > 1:
        for transformer in transformers:
            _check_ulysses_heads(transformer, parallel)
    backend = attention.backend_for(parallel, device, attention_backend) if parallel.context_degree > 1 else None
    mesh = device_mesh(parallel, device)
    if parallel.tp > 1:
        for transformer in transformers:
            apply_tensor_plan(transformer, plan.tensor, mesh["tp"])
        for component, encoder_plan in plan.text_encoders.items():
            encoder = getattr(pipe, component, None)
            if encoder is None:
                continue
            try:
                apply_tensor_plan(encoder, encoder_plan.layers, mesh["tp"], encoder_plan.per_rank, optional=True)
            except ParallelPlanError as err:
                # Checked before anything is split: the encoder stays whole on every rank.
                logger.warning("%s runs whole on every rank: %s", component, err)
    if parallel.context_degree > 1:
        for transformer in transformers:
            enable_context_parallel(transformer, plan.context, parallel, device, mesh, backend)
            if compiled:
                attention.make_opaque(backend, transformer._parallel_config)


def _check_ulysses_heads(transformer, parallel: ParallelConfig) -> None:
    """ParallelPlanError when Ulysses cannot share the attention heads each tensor-parallel rank keeps.

    diffusers' Ulysses pads a head count that does not divide evenly, but only by fewer heads than
    each rank then holds (H=3 over 2 ranks: yes; H=1 over 2: no); combined with Ring it pads nothing."""
    heads = getattr(transformer.config, "num_attention_heads", None) if hasattr(transformer, "config") else None
    if not isinstance(heads, int):
        return
    local = heads // parallel.tp
    pad = -local % parallel.ulysses
    if local == 0 or (pad and (parallel.ring > 1 or pad >= (local + pad) // parallel.ulysses)):
        kept = f"; tensor parallel leaves {local} per rank" if parallel.tp > 1 else ""
        raise ParallelPlanError(
            f"--parallel {parallel}: {type(transformer).__name__} has {heads} attention heads{kept}, too few for "
            f"Ulysses to share over {parallel.ulysses} ranks; use fewer ranks for ulysses or tp, or ring"
        )


def enable_context_parallel(
    transformer,
    context_plan,
    parallel: ParallelConfig,
    device: torch.device,
    mesh: DeviceMesh | None = None,
    backend: str | None = None,
) -> None:
    """diffusers' context parallel on ``transformer`` over ``mesh``'s ``ring`` and ``ulysses`` dimensions
    (default: :func:`device_mesh`), attention on ``backend`` (default: :func:`attention.backend_for`'s
    choice); uneven sequence lengths when one kind is used alone."""
    from diffusers import ContextParallelConfig
    from diffusers.models._modeling_parallel import ParallelConfig as DiffusersParallelConfig

    mesh = mesh if mesh is not None else device_mesh(parallel, device)
    config = ContextParallelConfig(
        ulysses_degree=parallel.ulysses,
        ring_degree=parallel.ring,
        # The "anything" variants split with tensor_split and exchange sizes: any sequence length
        # (and, for Ulysses, any head count). diffusers has them for Ulysses or Ring alone.
        ulysses_anything=parallel.ulysses > 1 and parallel.ring == 1,
        ring_anything=parallel.ring > 1 and parallel.ulysses == 1,
    )

    def resolve(model, cp_config):
        # enable_parallelism builds its mesh on "the" accelerator and divides by the accelerator
        # count, which is 0 on a CPU-only host; it gets the engine's mesh instead.
        resolved = DiffusersParallelConfig(context_parallel_config=cp_config)
        resolved.setup(dist.get_rank(), dist.get_world_size(), device, mesh=mesh)
        model._parallel_config = resolved
        return resolved

    if config.ulysses_anything or config.ring_anything:
        _gather_uneven_with_padding()
    transformer.set_attention_backend(backend or attention.backend_for(parallel, device))
    transformer._resolve_parallel_config = types.MethodType(resolve, transformer)
    try:
        transformer.enable_parallelism(config=config, cp_plan=None if context_plan == MODEL_PLAN else context_plan)
    finally:
        del transformer._resolve_parallel_config


_UNEVEN_GATHER_PATCHED = False


def _gather_uneven_with_padding() -> None:
    """Let diffusers gather uneven shards over gloo: pad each shard to the largest, gather, trim.

    diffusers' "anything" mode gathers the sequence back with one ``all_gather`` of
    differently sized tensors, which NCCL accepts and gloo refuses ("invalid tensor
    size"). The padded gather below gives the same result on every backend.
    """
    global _UNEVEN_GATHER_PATCHED
    if _UNEVEN_GATHER_PATCHED:
        return
    from diffusers.hooks import context_parallel
    from diffusers.models._modeling_parallel import gather_size_by_comm

    def all_gather_padded(tensor: torch.Tensor, dim: int, group) -> torch.Tensor:
        tensor = tensor.contiguous()
        sizes = gather_size_by_comm(tensor.shape[dim], group)
        longest = max(sizes)
        if tensor.shape[dim] < longest:
            pad_shape = list(tensor.shape)
            pad_shape[dim] = longest - tensor.shape[dim]
            tensor = torch.cat([tensor, tensor.new_zeros(pad_shape)], dim=dim)
        shards = [torch.empty_like(tensor) for _ in sizes]
        dist.all_gather(shards, tensor, group=group)
        return torch.cat([shard.narrow(dim, 0, size) for shard, size in zip(shards, sizes, strict=True)], dim=dim)

    context_parallel._all_gather_anything = all_gather_padded
    _UNEVEN_GATHER_PATCHED = True


def apply_tensor_plan(
    module: torch.nn.Module,
    plan: Mapping[str, TPStyle],
    mesh: DeviceMesh,
    per_rank: Mapping[str, tuple[str, ...]] | None = None,
    optional: bool = False,
) -> int:
    """Split every layer ``plan`` names over ``mesh``; returns how many were split.

    ``per_rank`` names modules whose attributes (head counts, widths) become per-rank values.
    With ``optional``, entries may match nothing (one plan for several variants of a model).
    Every layer is checked before any is split: ParallelPlanError names the first that cannot be.
    """
    degree = mesh.size()
    entries = []
    for pattern, style in plan.items():
        matches = list(_matching(module, pattern))
        if not matches and not optional:
            raise ParallelPlanError(f"tensor-parallel plan entry {pattern!r} matches no module")
        entries.extend((parent, name, layer, style) for parent, name, layer in matches)
    if not entries:
        raise ParallelPlanError(f"the tensor-parallel plan matches no layer of {type(module).__name__}")
    for _, name, layer, style in entries:
        _check_split(name, layer, style, degree)
    attributes = [
        (name, target, attribute)
        for pattern, names in (per_rank or {}).items()
        for _, name, target in _matching(module, pattern)
        for attribute in names
    ]
    for name, target, attribute in attributes:
        if getattr(target, attribute) % degree:
            raise ParallelPlanError(
                f"{name}.{attribute} = {getattr(target, attribute)} does not split evenly over {degree} ranks"
            )
    for parent, _, layer, style in entries:
        if isinstance(style, PackedRowwise):
            sizes = [parent.get_submodule(part).out_features for part in style.parts]
            _interleave_input_blocks(layer, sizes, degree)
        parallelize_module(layer, mesh, _torch_style(style))
    for _, target, attribute in attributes:
        setattr(target, attribute, getattr(target, attribute) // degree)
    logger.info("tensor parallel: %d layers of %s split over %d ranks", len(entries), type(module).__name__, degree)
    return len(entries)


def _check_split(name: str, layer: torch.nn.Module, style: TPStyle, degree: int) -> None:
    if isinstance(layer, torch.nn.Embedding) and style == COLWISE:
        features = layer.embedding_dim
    elif isinstance(layer, torch.nn.Linear):
        features = layer.in_features if style == ROWWISE or isinstance(style, PackedRowwise) else layer.out_features
    else:
        raise ParallelPlanError(f"{name}: {type(layer).__name__} cannot be split {style}")
    if features % degree:
        raise ParallelPlanError(f"{name}: {features} features do not split evenly over {degree} ranks")


def _torch_style(style: TPStyle):
    if style == COLWISE:
        return ColwiseParallel()
    if style == COLWISE_GATHERED:
        return ColwiseParallel(output_layouts=Replicate())
    if style == ROWWISE or isinstance(style, PackedRowwise):
        return RowwiseParallel()
    raise ParallelPlanError(f"unknown tensor-parallel style {style!r}")


def _interleave_input_blocks(linear: torch.nn.Linear, sizes: list[int], degree: int) -> None:
    """Reorder input columns from [part0 | part1 | ...] to [part0 rank0, part1 rank0, part0 rank1, ...].

    Each rank's input is the concatenation of its own shards of the parts, so after this
    reordering a plain row-wise split hands every rank exactly the columns its input holds.
    """
    if sum(sizes) != linear.in_features:
        raise ParallelPlanError(f"packed parts {sizes} do not add up to {linear.in_features} input features")
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    order = []
    for rank in range(degree):
        for start, size in zip(starts, sizes, strict=True):
            shard = size // degree
            order.extend(range(start + rank * shard, start + (rank + 1) * shard))
    with torch.no_grad():
        linear.weight.copy_(linear.weight[:, order].clone())


def _matching(root: torch.nn.Module, pattern: str):
    """(parent of the block, full name, module) for every module ``pattern`` names; ``*`` = every child."""
    found = [(root, root, "")]
    for atom in pattern.split("."):
        following = []
        for block, module, name in found:
            children = list(module.named_children()) if atom == "*" else [(atom, getattr(module, atom, None))]
            for child_name, child in children:
                if child is None or not isinstance(child, torch.nn.Module):
                    continue
                # The first child under a wildcard is the block the packed parts are named from.
                parent = child if atom == "*" else block
                following.append((parent, child, f"{name}.{child_name}" if name else child_name))
        found = following
    for block, module, name in found:
        yield block, name, module
