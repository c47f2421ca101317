"""torchao weight (and activation) quantization of the transformer's repeated blocks.

Only the ``nn.Linear`` layers inside the family's repeated block lists are
quantized: embeddings, norms, the time/text projections and the final
projection keep the model's dtype, where quantization error costs the most
quality for the least speed. Text encoders are quantized only on request.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from typing import Any

import torch

from engine_service.quant.config import SpeedConfigError

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Scheme:
    """One quantization scheme: its torchao config and what the device must offer."""

    description: str
    make_config: Callable[[], Any]
    """Builds the torchao ``AOBaseConfig`` passed to ``quantize_`` (imported only when used)."""
    needs_cuda: bool = False
    min_capability: tuple[int, int] | None = None
    """Lowest CUDA compute capability with the kernels (FP8 matmuls need 8.9: Ada, Hopper)."""
    dtypes: tuple[torch.dtype, ...] | None = None
    """Weight dtypes the kernels take; None = any."""
    tensor_parallel_refusal: str | None = None
    """Why the scheme cannot run on tensor-parallel (DTensor) shards; None = it can."""


def _float8_row():
    from torchao.quantization import Float8DynamicActivationFloat8WeightConfig, PerRow

    return Float8DynamicActivationFloat8WeightConfig(granularity=PerRow())


def _int8_dynamic():
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig

    return Int8DynamicActivationInt8WeightConfig()


def _int8_weight_only():
    from torchao.quantization import Int8WeightOnlyConfig

    return Int8WeightOnlyConfig()


def _int4_weight_only():
    from torchao.quantization import Int4WeightOnlyConfig

    # The tinygemm layout runs on CUDA with bfloat16 activations; needs no extra kernel package.
    return Int4WeightOnlyConfig(group_size=128, int4_packing_format="tile_packed_to_4d")


#: ``--quantize`` schemes by name.
SCHEMES: dict[str, Scheme] = {
    "float8": Scheme(
        "FP8 (e4m3) dynamic activations and FP8 weights, one scale per row (Ada/Hopper)",
        _float8_row,
        needs_cuda=True,
        min_capability=(8, 9),
    ),
    "int8-dynamic": Scheme(
        "int8 dynamic per-token activations and int8 per-channel weights",
        _int8_dynamic,
        tensor_parallel_refusal="its int8 x int8 matmul (aten._int_mm) has no DTensor sharding rule, so split "
        "activations cannot reach it; int8-weight-only splits",
    ),
    "int8-weight-only": Scheme("int8 per-channel weights, activations in the model dtype", _int8_weight_only),
    "int4-weight-only": Scheme(
        "int4 weights in groups of 128 (tinygemm), bfloat16 activations",
        _int4_weight_only,
        needs_cuda=True,
        dtypes=(torch.bfloat16,),
    ),
}


def check_scheme(name: str, device: torch.device, dtype: torch.dtype) -> Scheme:
    """The scheme ``name``; SpeedConfigError when it is unknown or this device or dtype cannot run it."""
    scheme = SCHEMES.get(name)
    if scheme is None:
        raise SpeedConfigError(f"--quantize: unknown scheme {name!r}; choose from {', '.join(SCHEMES)}")
    try:
        import torchao  # noqa: F401
    except ImportError as err:
        raise SpeedConfigError(f"--quantize {name} needs torchao: pip install 'ditserve[engine]' ({err})") from err
    if scheme.needs_cuda and device.type != "cuda":
        raise SpeedConfigError(
            f"--quantize {name} ({scheme.description}) needs a CUDA device; this engine runs on {device}"
        )
    if scheme.min_capability is not None:
        capability = torch.cuda.get_device_capability(device)
        if capability < scheme.min_capability:
            need = ".".join(map(str, scheme.min_capability))
            have = ".".join(map(str, capability))
            raise SpeedConfigError(
                f"--quantize {name} needs CUDA compute capability {need} or newer (FP8 matmuls); "
                f"{torch.cuda.get_device_name(device)} has {have}"
            )
    if scheme.dtypes is not None and dtype not in scheme.dtypes:
        allowed = ", ".join(str(d).removeprefix("torch.") for d in scheme.dtypes)
        raise SpeedConfigError(f"--quantize {name} needs --dtype {allowed}; the model is {dtype}")
    return scheme


def _inside(prefixes: Sequence[str]) -> Callable[[torch.nn.Module, str], bool]:
    """torchao ``filter_fn``: linear layers whose name lies under one of ``prefixes``."""
    dotted = tuple(p + "." for p in prefixes)

    def keep(module: torch.nn.Module, fqn: str) -> bool:
        return isinstance(module, torch.nn.Linear) and fqn.startswith(dotted)

    return keep


def _is_linear(module: torch.nn.Module, _fqn: str) -> bool:
    return isinstance(module, torch.nn.Linear)


def quantize_blocks(transformer: torch.nn.Module, block_lists: Sequence[str], scheme: Scheme) -> int:
    """Quantize the linear layers of ``transformer``'s repeated blocks in place; the number quantized."""
    from torchao.quantization import quantize_

    keep = _inside(block_lists)
    count = sum(1 for fqn, module in transformer.named_modules() if keep(module, fqn))
    if not count:
        raise SpeedConfigError(f"--quantize: no linear layer in the block lists {', '.join(block_lists)}")
    quantize_(transformer, scheme.make_config(), filter_fn=keep)
    return count


def quantize_module(module: torch.nn.Module, scheme: Scheme) -> int:
    """Quantize every linear layer of ``module`` (a text encoder) in place; the number quantized."""
    from torchao.quantization import quantize_

    count = sum(1 for fqn, child in module.named_modules() if _is_linear(child, fqn))
    if count:
        quantize_(module, scheme.make_config(), filter_fn=_is_linear)
    return count
