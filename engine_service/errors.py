"""Domain errors of the engine, transport-agnostic. The server maps each to a gRPC status.

EngineError
 ├ InvalidRequest       the request breaks a rule; carries (field, description) violations   recoverable
 ├ ModelNotFound        the request names a model this engine does not serve                   recoverable
 ├ LoraNotFound         the request names a LoRA adapter its model does not have               recoverable
 ├ DuplicateRequestId   a queued or running request already uses the id                         recoverable
 ├ UnknownRequest       Cancel names no queued or running request                               recoverable
 ├ QueueFull            the queue is at its limit; retry after ``retry_after`` seconds          recoverable
 ├ EngineNotReady       warming up or draining; retry after ``retry_after`` seconds             recoverable
 ├ JobCancelled         the request was cancelled (client, deadline or Cancel)                  recoverable
 └ JobFailed            the pipeline raised; the engine stays healthy                           recoverable
    └ JobOutOfMemory     the device ran out of memory for this call; retry smaller or later     recoverable

ModelLoadError           a model could not be loaded; fatal at start-up, never a request's status
"""

from __future__ import annotations

import dataclasses

#: The most characters of a client-given string an error message repeats.
ECHO_CHARS = 64


def excerpt(text: str, limit: int = ECHO_CHARS) -> str:
    """``text`` as an error message may echo it: quoted, at most ``limit`` characters, then its length."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text)} characters)"


class ModelLoadError(RuntimeError):
    """A model could not be loaded (missing directory, unsupported pipeline or checkpoint, bad weights).

    Fatal at start-up: the engine does not start serving. Raised by the model loaders and by a
    family's ``prepare_pipeline`` when it refuses a checkpoint it cannot serve."""


class EngineError(Exception):
    """Base of every error the engine reports to a caller."""


@dataclasses.dataclass(frozen=True)
class FieldViolation:
    """One bad request field: its proto field path and what is wrong with it."""

    field: str
    description: str


class InvalidRequest(EngineError):
    """Raised when request fields are out of range or inconsistent; names every bad field."""

    def __init__(self, violations: list[FieldViolation]):
        self.violations = tuple(violations)
        super().__init__("; ".join(f"{v.field}: {v.description}" for v in self.violations))


class ModelNotFound(EngineError):
    """Raised when the request names a model the engine does not serve."""

    def __init__(self, model: str, available: list[str]):
        self.model = model[:ECHO_CHARS]
        self.available = tuple(available)
        super().__init__(f"unknown model {excerpt(model)}; this engine serves: {', '.join(available)}")


class LoraNotFound(EngineError):
    """Raised when the request names a LoRA adapter its model does not have."""

    def __init__(self, lora: str, model: str, available: list[str]):
        self.lora = lora[:ECHO_CHARS]
        self.model = model
        self.available = tuple(available)
        loaded = ", ".join(available) if available else "none"
        super().__init__(f"unknown LoRA adapter {excerpt(lora)} for model {model!r}; its adapters: {loaded}")


class DuplicateRequestId(EngineError):
    """Raised when a queued or running request already has the request id."""

    def __init__(self, request_id: str):
        self.request_id = request_id[:ECHO_CHARS]
        super().__init__(f"request id {excerpt(request_id)} is already queued or running")


class UnknownRequest(EngineError):
    """Raised by Cancel for an id that is neither queued nor running."""

    def __init__(self, request_id: str):
        self.request_id = request_id[:ECHO_CHARS]
        super().__init__(f"no queued or running request has id {excerpt(request_id)}")


class QueueFull(EngineError):
    """Raised when the queue holds ``max_queue`` requests already."""

    def __init__(self, max_queue: int, retry_after: float):
        self.retry_after = retry_after
        super().__init__(f"the queue is full ({max_queue} requests waiting); retry in {retry_after:.1f} s")


class EngineNotReady(EngineError):
    """Raised while the engine is loading, warming up or shutting down."""

    def __init__(self, reason: str, retry_after: float = 1.0):
        self.retry_after = retry_after
        super().__init__(reason)


class RankLost(EngineNotReady):
    """Raised when a rank of a multi-process engine stopped answering: the engine stops serving for good."""

    def __init__(self, reason: str):
        super().__init__(reason, retry_after=0.0)


class JobCancelled(EngineError):
    """Raised inside the worker (and to waiters) when a request was cancelled."""

    def __init__(self, request_id: str, reason: str = "cancelled"):
        self.request_id = request_id
        self.reason = reason
        super().__init__(f"request {request_id!r} {reason}")


class JobFailed(EngineError):
    """Raised when the pipeline failed on a request; the engine itself stays healthy."""

    def __init__(self, request_id: str, message: str):
        self.request_id = request_id
        super().__init__(message)


class JobOutOfMemory(JobFailed):
    """Raised when the device ran out of memory during the request; its memory is freed, the engine stays healthy."""
