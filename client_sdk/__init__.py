"""Python client for ditserve, the gRPC engine for diffusion transformers.

    from client_sdk import Client

    with Client("localhost:50051") as client:
        client.wait_ready()
        result = client.generate("a lighthouse at dusk", num_inference_steps=28, seed=7)
        result.save("out")

`Client` blocks, `AsyncClient` is its asyncio twin; both raise the exceptions
of `client_sdk.errors`. `client_sdk.console` renders results for terminals.
"""

from client_sdk import errors
from client_sdk.async_client import AsyncClient
from client_sdk.client import Client
from client_sdk.retry import RetryPolicy
from client_sdk.types import (
    CachePolicy,
    CacheStats,
    CameraTrajectory,
    Completed,
    Duration,
    Event,
    InputImage,
    InputVideo,
    Limits,
    LoraInfo,
    ModelInfo,
    ModelList,
    ModelStats,
    Output,
    Preview,
    Queued,
    Result,
    ServerInfo,
    Started,
    Stats,
    Step,
    StepStat,
    Timings,
)

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "AsyncClient",
    "CachePolicy",
    "CacheStats",
    "CameraTrajectory",
    "Client",
    "Completed",
    "Duration",
    "Event",
    "InputImage",
    "InputVideo",
    "Limits",
    "LoraInfo",
    "ModelInfo",
    "ModelList",
    "ModelStats",
    "Output",
    "Preview",
    "Queued",
    "Result",
    "RetryPolicy",
    "ServerInfo",
    "Started",
    "Stats",
    "Step",
    "StepStat",
    "Timings",
    "errors",
]
