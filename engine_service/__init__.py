"""ditserve engine service: serves diffusers DiT pipelines over gRPC.

Layers, each talking only to the next:
    server/   grpc.aio servicer, validation, status mapping (translation only)
    runtime/  job queue, the worker that runs pipelines, output encoding, stats
    cache/    DBCache, DBPrune, calibrators, step masks (a library on its own)
    parallel/ multi-rank coordination, context and tensor parallel
    quant/    quantization, regional compile, attention backends, offload
    models/   the model registry: family entries (data), local loading, the builtin default

Importing this package does not import torch; the engine modules do.
"""

import logging

__version__ = "0.1.0"

# Importing diffusers imports torchao, which logs every optional kernel library this build of
# torch cannot load (CUDA kernels on a CPU build, no triton), and diffusers and torch add
# notes about torchao's types. None of it matters unless --quantize asks for a scheme, which
# is checked at start-up with a clear error; keep them out of every command's output.
for _name in ("torchao", "diffusers.quantizers.torchao", "torch.utils._pytree"):
    logging.getLogger(_name).setLevel(logging.ERROR)
del _name
