"""CPU offload for accelerators too small for the model (diffusers' own hooks).

``model``: each component (text encoders, transformer, VAE) moves to the
accelerator when it runs and back after, so one component at a time holds device
memory; a small cost per call. ``sequential``: every submodule moves for its own
forward, the least memory and many times slower. Both only make sense with an
accelerator: on CPU there is nothing to offload from.
"""

from __future__ import annotations

import torch

from engine_service.quant.config import OFFLOAD_MODES, SpeedConfigError


def check_offload(mode: str, device: torch.device, compile: bool) -> None:
    if mode not in OFFLOAD_MODES:
        raise SpeedConfigError(f"--offload: unknown mode {mode!r}; choose from {', '.join(OFFLOAD_MODES)}")
    if device.type != "cuda":
        raise SpeedConfigError(
            f"--offload {mode} moves weights between host and a CUDA device; this engine runs on {device}, "
            "where everything already lives in host memory"
        )
    if mode == "sequential" and compile:
        raise SpeedConfigError(
            "--offload sequential moves every submodule's weights on each call, which defeats --compile; "
            "use --offload model with --compile"
        )


def enable_offload(pipeline, mode: str, device: torch.device) -> None:
    """Install diffusers' offload hooks; the pipeline must still be on the CPU."""
    if mode == "model":
        pipeline.enable_model_cpu_offload(device=device)
    else:
        pipeline.enable_sequential_cpu_offload(device=device)
