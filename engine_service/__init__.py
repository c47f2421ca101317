"""ditserve engine service: serves diffusers DiT pipelines over gRPC.

Layers, each talking only to the next:
    server/   grpc.aio servicer, validation, status mapping (translation only)
    runtime/  job queue, the worker that runs pipelines, output encoding, stats
    models/   the model registry: family entries (data), local loading, the builtin default

Importing this package does not import torch; the engine modules do.
"""

__version__ = "0.1.0"
