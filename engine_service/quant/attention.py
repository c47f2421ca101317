"""Attention backend selection through diffusers' attention dispatch (``set_attention_backend``).

diffusers checks that a backend's package is installed; the engine adds the
device check (the CUDA-only kernels) so a bad choice stops start-up instead of
failing the first request.
"""

from __future__ import annotations

import torch

from engine_service.quant.config import SpeedConfigError


def _backend_names() -> tuple[str, ...]:
    from diffusers.models.attention_dispatch import AttentionBackendName

    return tuple(member.value for member in AttentionBackendName)


#: Backends that run everywhere torch runs; every other one needs CUDA (or another accelerator).
PORTABLE_BACKENDS = frozenset({"native", "_native_math", "flex"})
#: Names users pick most (the full list is diffusers' ``AttentionBackendName``).
ATTENTION_BACKENDS = ("native", "flash", "_flash_3", "_native_cudnn", "_native_flash", "_native_efficient", "sage")


def check_attention_backend(name: str, device: torch.device) -> str:
    """The backend's diffusers name; SpeedConfigError when unknown, not installed, or not for ``device``."""
    from diffusers.models.attention_dispatch import AttentionBackendName, _check_attention_backend_requirements

    names = _backend_names()
    if name not in names:
        raise SpeedConfigError(f"--attention-backend: unknown backend {name!r}; diffusers has {', '.join(names)}")
    if name.endswith("_hub"):
        raise SpeedConfigError(
            f"--attention-backend {name} fetches its kernel from a model hub, which the engine never reaches; "
            "install the kernel's package and pick its local backend instead"
        )
    if name not in PORTABLE_BACKENDS and device.type == "cpu":
        raise SpeedConfigError(
            f"--attention-backend {name} needs an accelerator; on CPU use one of {', '.join(sorted(PORTABLE_BACKENDS))}"
        )
    try:
        _check_attention_backend_requirements(AttentionBackendName(name))
    except (RuntimeError, ImportError) as err:
        raise SpeedConfigError(f"--attention-backend {name} is not available: {err}") from err
    return name


def set_attention_backend(transformer: torch.nn.Module, name: str) -> None:
    """Route every attention layer of ``transformer`` through backend ``name``."""
    if not hasattr(transformer, "set_attention_backend"):
        raise SpeedConfigError(f"--attention-backend: {type(transformer).__name__} has no attention dispatch")
    try:
        transformer.set_attention_backend(name)
    except (ValueError, RuntimeError, ImportError) as err:
        raise SpeedConfigError(f"--attention-backend {name}: {err}") from err
