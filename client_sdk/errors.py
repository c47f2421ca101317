"""Exceptions raised by the ditserve client.

Every failure of a call surfaces as one of these, so callers can catch at the
level they care about::

    DitServeError
     ├ APIError                      the engine answered with a non-OK gRPC status
     │  ├ InvalidArgumentError       INVALID_ARGUMENT (+ field violations)
     │  ├ NotFoundError              NOT_FOUND
     │  ├ AlreadyExistsError         ALREADY_EXISTS
     │  ├ FailedPreconditionError    FAILED_PRECONDITION
     │  ├ UnimplementedError         UNIMPLEMENTED
     │  ├ UnauthenticatedError       UNAUTHENTICATED
     │  ├ PermissionDeniedError      PERMISSION_DENIED
     │  ├ ResourceExhaustedError     RESOURCE_EXHAUSTED (+ retry_after)
     │  ├ UnavailableError           UNAVAILABLE (+ retry_after)
     │  ├ DeadlineExceededError      DEADLINE_EXCEEDED
     │  ├ RequestCancelledError      CANCELLED
     │  └ InternalError              INTERNAL
     └ ChunkIntegrityError           a streamed output failed its size or sha256 check

Any other status code (UNKNOWN, ABORTED, OUT_OF_RANGE, DATA_LOSS) raises
`APIError` itself. `from_rpc_error` is the one place that turns a
`grpc.RpcError` into these classes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

__all__ = [
    "DitServeError",
    "APIError",
    "InvalidArgumentError",
    "NotFoundError",
    "AlreadyExistsError",
    "FailedPreconditionError",
    "UnimplementedError",
    "UnauthenticatedError",
    "PermissionDeniedError",
    "ResourceExhaustedError",
    "UnavailableError",
    "DeadlineExceededError",
    "RequestCancelledError",
    "InternalError",
    "ChunkIntegrityError",
    "FieldViolation",
    "from_rpc_error",
]

REQUEST_ID_METADATA_KEY = "x-request-id"
"""Trailing metadata key under which the engine reports the request id."""

# google.rpc detail types we unpack from `google.protobuf.Any`, by full name.
_DETAIL_TYPES: dict[str, type[Message]] = {
    cls.DESCRIPTOR.full_name: cls
    for cls in (
        error_details_pb2.BadRequest,
        error_details_pb2.RetryInfo,
        error_details_pb2.ErrorInfo,
        error_details_pb2.DebugInfo,
        error_details_pb2.QuotaFailure,
        error_details_pb2.PreconditionFailure,
        error_details_pb2.ResourceInfo,
        error_details_pb2.RequestInfo,
        error_details_pb2.Help,
        error_details_pb2.LocalizedMessage,
    )
}


class DitServeError(Exception):
    """Base class of every error raised by the ditserve client."""


@dataclass(frozen=True)
class FieldViolation:
    """One bad request field, from a google.rpc.BadRequest detail."""

    field: str
    """Path of the offending field, e.g. "width" or "cache.fn_compute_blocks"."""
    description: str
    """Why the value was rejected."""

    def __str__(self) -> str:
        return f"{self.field}: {self.description}"


class APIError(DitServeError):
    """Raised when the engine ends a call with a non-OK gRPC status."""

    message: str
    """The status message sent by the engine."""
    code: grpc.StatusCode
    """The gRPC status code."""
    details: tuple[Any, ...]
    """Unpacked google.rpc detail messages (BadRequest, RetryInfo, ...); unknown
    detail types stay packed as `google.protobuf.Any`."""
    request_id: str | None
    """The request id the engine reported, or None when it reported none."""

    def __init__(
        self,
        message: str,
        *,
        code: grpc.StatusCode | None = None,
        details: tuple[Any, ...] = (),
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code if code is not None else _CODE_BY_ERROR.get(type(self), grpc.StatusCode.UNKNOWN)
        self.details = tuple(details)
        self.request_id = request_id

    def __str__(self) -> str:
        text = f"{self.code.name}: {self.message}"
        if self.request_id:
            text += f" (request {self.request_id})"
        return text

    def __repr__(self) -> str:
        return f"{type(self).__name__}(message={self.message!r}, code={self.code.name}, request_id={self.request_id!r})"

    @property
    def reason(self) -> str | None:
        """The engine's reason for the error, from its google.rpc.ErrorInfo: "QUEUE_FULL",
        "DEVICE_OUT_OF_MEMORY", "MODEL_NOT_FOUND", "INVALID_REQUEST", ...; None when it sent none."""
        infos = self._find_details(error_details_pb2.ErrorInfo)
        return infos[0].reason if infos else None

    @property
    def domain(self) -> str | None:
        """The ErrorInfo's domain ("ditserve" for the engine's own errors); None when it sent none."""
        infos = self._find_details(error_details_pb2.ErrorInfo)
        return infos[0].domain if infos else None

    def _find_details(self, kind: type[Message]) -> list[Any]:
        return [d for d in self.details if isinstance(d, kind)]


class InvalidArgumentError(APIError):
    """Raised when the engine rejects a request field (INVALID_ARGUMENT)."""

    @property
    def field_violations(self) -> tuple[FieldViolation, ...]:
        """Every bad field listed in the google.rpc.BadRequest details."""
        return tuple(
            FieldViolation(field=v.field, description=v.description)
            for detail in self._find_details(error_details_pb2.BadRequest)
            for v in detail.field_violations
        )

    def __str__(self) -> str:
        text = super().__str__()
        extra = [str(v) for v in self.field_violations if str(v) not in self.message]
        return text + "".join(f"\n  {line}" for line in extra)


class NotFoundError(APIError):
    """Raised when the model or request id does not exist (NOT_FOUND)."""


class AlreadyExistsError(APIError):
    """Raised when a request id is already queued or running (ALREADY_EXISTS)."""


class FailedPreconditionError(APIError):
    """Raised when the engine is not in a state to run the call (FAILED_PRECONDITION)."""


class UnimplementedError(APIError):
    """Raised when the engine build or model lacks a feature (UNIMPLEMENTED)."""


class UnauthenticatedError(APIError):
    """Raised when the call carries no valid credentials (UNAUTHENTICATED)."""


class PermissionDeniedError(APIError):
    """Raised when the caller may not perform the call (PERMISSION_DENIED)."""


class _RetryableError(APIError):
    """An APIError whose details may carry a google.rpc.RetryInfo hint."""

    @property
    def retry_after(self) -> float | None:
        """Seconds the engine asks the caller to wait before retrying, or None."""
        for info in self._find_details(error_details_pb2.RetryInfo):
            delay = info.retry_delay
            return float(delay.seconds + delay.nanos / 1e9)
        return None


class ResourceExhaustedError(_RetryableError):
    """Raised when the engine's queue is full (RESOURCE_EXHAUSTED)."""


class UnavailableError(_RetryableError):
    """Raised when the engine cannot be reached, is warming up or draining (UNAVAILABLE)."""


class DeadlineExceededError(APIError):
    """Raised when the call's deadline passed before it finished (DEADLINE_EXCEEDED)."""


class RequestCancelledError(APIError):
    """Raised when the request was cancelled, by the caller or by Cancel (CANCELLED)."""


class InternalError(APIError):
    """Raised when the pipeline failed unexpectedly inside the engine (INTERNAL)."""


class ChunkIntegrityError(DitServeError):
    """Raised when a streamed output, reassembled from chunks, fails its size or sha256 check."""


_ERROR_BY_CODE: dict[grpc.StatusCode, type[APIError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExistsError,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPreconditionError,
    grpc.StatusCode.UNIMPLEMENTED: UnimplementedError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
    grpc.StatusCode.CANCELLED: RequestCancelledError,
    grpc.StatusCode.INTERNAL: InternalError,
}
_CODE_BY_ERROR: dict[type[APIError], grpc.StatusCode] = {cls: code for code, cls in _ERROR_BY_CODE.items()}


def from_rpc_error(err: grpc.RpcError, *, request_id: str | None = None) -> APIError:
    """Converts a failed gRPC call (sync or grpc.aio) into the matching APIError.

    Rich google.rpc.Status details are read from the `grpc-status-details-bin`
    trailer; when it is missing or inconsistent, only the code and message are
    used. `request_id` is a fallback for when the engine reported none.
    """
    code = _call_attr(err, "code") or grpc.StatusCode.UNKNOWN
    message = _call_attr(err, "details") or ""
    trailing = _call_attr(err, "trailing_metadata") or ()

    status: status_pb2.Status | None
    try:
        status = rpc_status.from_call(err)
    except Exception:  # inconsistent trailer, or an error object that is not a call
        status = None
    details = tuple(_unpack(any_detail) for any_detail in status.details) if status is not None else ()

    reported_id = _metadata_value(trailing, REQUEST_ID_METADATA_KEY)
    if reported_id is None:
        reported_id = next((d.request_id for d in details if isinstance(d, error_details_pb2.RequestInfo)), None)
    error_cls = _ERROR_BY_CODE.get(code, APIError)
    return error_cls(message, code=code, details=details, request_id=reported_id or request_id)


def _call_attr(err: grpc.RpcError, name: str) -> Any:
    """Calls err.<name>() when the error object provides it, else None."""
    method = getattr(err, name, None)
    if not callable(method):
        return None
    try:
        return method()
    except Exception:
        return None


def _metadata_value(metadata: Any, key: str) -> str | None:
    """The first value of `key` in gRPC metadata, decoded to str, or None."""
    try:
        for item_key, value in metadata:
            if item_key == key:
                return value.decode() if isinstance(value, bytes) else str(value)
    except (TypeError, ValueError):
        return None
    return None


def _unpack(detail: any_pb2.Any) -> Any:
    """Unpacks a google.rpc detail from Any; unknown types are returned packed."""
    cls = _DETAIL_TYPES.get(detail.TypeName())
    if cls is None:
        return detail
    message = cls()
    detail.Unpack(message)
    return message
