"""What a model's speed stack is made of, as data (one per model; the CLI sets it for all or per model)."""

from __future__ import annotations

import dataclasses

#: ``--offload`` modes: diffusers' ``enable_model_cpu_offload`` and ``enable_sequential_cpu_offload``.
OFFLOAD_MODES = ("model", "sequential")


class SpeedConfigError(ValueError):
    """A speed setting that is unknown, or unsupported on this device or with this model. Fatal at start-up."""


@dataclasses.dataclass(frozen=True)
class SpeedConfig:
    """How one model is made faster (or made to fit). The default changes nothing."""

    quantize: str | None = None
    """A torchao scheme of ``quant.SCHEMES`` for the transformer's repeated blocks; None = full precision."""
    quantize_text_encoder: bool = False
    """Quantize the text encoders' linear layers with the same scheme too."""
    compile: bool = False
    """Regional ``torch.compile`` of the transformer's repeated blocks, warmed up before SERVING."""
    compile_backend: str = "inductor"
    """The torch.compile backend (``inductor``; ``eager`` / ``aot_eager`` only check tracing)."""
    compile_mode: str | None = None
    """The torch.compile mode (``max-autotune-no-cudagraphs``, ...); None = the default."""
    attention_backend: str | None = None
    """A diffusers attention backend (``native``, ``flash``, ``_native_cudnn``, ...); None = as loaded."""
    offload: str | None = None
    """``model`` or ``sequential`` CPU offload (CUDA only); None = the whole pipeline on the device."""

    @property
    def is_default(self) -> bool:
        return self == SpeedConfig()
