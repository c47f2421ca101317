"""The speed stack: torchao quantization, regional torch.compile, attention backends, CPU offload.

Each technique is one module with a check that runs before any work (an unknown
or unsupported choice on this device is a clear start-up error) and an
``apply`` step; :func:`apply_speed` runs them on a loaded model in a fixed
order: attention backend, quantization, compile, offload.
"""

from engine_service.quant.apply import apply_speed, check_speed
from engine_service.quant.attention import ATTENTION_BACKENDS
from engine_service.quant.compile import CompileCache
from engine_service.quant.config import OFFLOAD_MODES, SpeedConfig, SpeedConfigError
from engine_service.quant.quantize import SCHEMES

__all__ = [
    "ATTENTION_BACKENDS",
    "OFFLOAD_MODES",
    "SCHEMES",
    "CompileCache",
    "SpeedConfig",
    "SpeedConfigError",
    "apply_speed",
    "check_speed",
]
