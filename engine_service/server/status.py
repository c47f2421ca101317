"""Engine errors to gRPC statuses with google.rpc details, in one table.

Every error status carries a ``google.rpc.ErrorInfo`` (domain ``ditserve``, a
reason such as ``QUEUE_FULL`` or ``DEVICE_OUT_OF_MEMORY``) so clients tell causes
apart without reading messages, and the RPC's request id in the ``x-request-id``
trailer. Statuses that ask the caller to come back later also carry
``grpc-retry-pushback-ms``, which gRPC's own retry policy honours.
Unknown exceptions become INTERNAL with a generic message and the request id;
the traceback is logged, never sent.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import uuid
from collections.abc import Callable

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from engine_service import errors
from engine_service.server.validation import REQUEST_ID_PATTERN

logger = logging.getLogger(__name__)

REQUEST_ID_KEY = "x-request-id"
#: Metadata key of the engine's id, in the trailing metadata of every Engine RPC and in the initial
#: metadata of an accepted Generate or Stream.
ENGINE_ID_KEY = "x-engine-id"
#: Trailer read by gRPC's retry policy: how long to wait before retrying, in milliseconds.
RETRY_PUSHBACK_KEY = "grpc-retry-pushback-ms"
#: The ``google.rpc.ErrorInfo`` domain of every error this engine sends.
ERROR_DOMAIN = "ditserve"
#: The id of the request the current RPC handles; sent with every error status.
current_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("current_request_id", default=None)
#: The id of the engine answering the current RPC; sent with every status.
current_engine_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("current_engine_id", default=None)


def incoming_request_id(context: grpc.aio.ServicerContext) -> str:
    """The caller's ``x-request-id`` header when it is a valid id, else a new one."""
    for key, value in context.invocation_metadata() or ():
        if key == REQUEST_ID_KEY:
            text = value if isinstance(value, str) else value.decode(errors="replace")
            if REQUEST_ID_PATTERN.fullmatch(text):
                return text
            logger.warning("ignored an invalid %s header %r", REQUEST_ID_KEY, text[:200])
            break
    return uuid.uuid4().hex


def _pack(*messages) -> list[any_pb2.Any]:
    packed = []
    for message in messages:
        item = any_pb2.Any()
        item.Pack(message)
        packed.append(item)
    return packed


def _retry_info(seconds: float) -> error_details_pb2.RetryInfo:
    delay = duration_pb2.Duration()
    delay.FromMilliseconds(int(seconds * 1000))
    return error_details_pb2.RetryInfo(retry_delay=delay)


def _bad_request(err: errors.InvalidRequest) -> list[any_pb2.Any]:
    violations = [
        error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description) for v in err.violations
    ]
    return _pack(error_details_pb2.BadRequest(field_violations=violations))


def _resource(kind: str, name: str, description: str) -> list[any_pb2.Any]:
    return _pack(error_details_pb2.ResourceInfo(resource_type=kind, resource_name=name, description=description))


#: Domain error type -> (status code, details builder).
_STATUS_TABLE: dict[type[errors.EngineError], tuple[int, Callable[[errors.EngineError], list[any_pb2.Any]]]] = {
    errors.InvalidRequest: (code_pb2.INVALID_ARGUMENT, _bad_request),
    errors.ModelNotFound: (code_pb2.NOT_FOUND, lambda e: _resource("model", e.model, str(e))),
    errors.LoraNotFound: (code_pb2.NOT_FOUND, lambda e: _resource("lora", e.lora, str(e))),
    errors.UnknownRequest: (code_pb2.NOT_FOUND, lambda e: _resource("request", e.request_id, str(e))),
    errors.DuplicateRequestId: (code_pb2.ALREADY_EXISTS, lambda e: _resource("request", e.request_id, str(e))),
    errors.QueueFull: (code_pb2.RESOURCE_EXHAUSTED, lambda e: _pack(_retry_info(e.retry_after))),
    errors.EngineNotReady: (code_pb2.UNAVAILABLE, lambda e: _pack(_retry_info(e.retry_after))),
    errors.JobCancelled: (code_pb2.CANCELLED, lambda e: []),
    # Before JobFailed, its base: the first matching entry wins.
    errors.JobOutOfMemory: (code_pb2.RESOURCE_EXHAUSTED, lambda e: []),
    errors.JobFailed: (code_pb2.INTERNAL, lambda e: []),
}


#: Domain error type -> ``google.rpc.ErrorInfo`` reason; the first matching entry wins (subclasses first).
REASONS: dict[type[errors.EngineError], str] = {
    errors.InvalidRequest: "INVALID_REQUEST",
    errors.ModelNotFound: "MODEL_NOT_FOUND",
    errors.LoraNotFound: "LORA_NOT_FOUND",
    errors.UnknownRequest: "REQUEST_NOT_FOUND",
    errors.DuplicateRequestId: "REQUEST_ID_IN_USE",
    errors.QueueFull: "QUEUE_FULL",
    errors.RankLost: "RANK_LOST",
    errors.EngineNotReady: "ENGINE_NOT_READY",
    errors.JobCancelled: "REQUEST_CANCELLED",
    errors.JobOutOfMemory: "DEVICE_OUT_OF_MEMORY",
    errors.JobFailed: "PIPELINE_FAILED",
}
#: The reason of an error no entry names (an unexpected exception).
INTERNAL_REASON = "INTERNAL_ERROR"


def error_info(reason: str, **metadata: str) -> error_details_pb2.ErrorInfo:
    """A ``google.rpc.ErrorInfo`` of this engine's domain."""
    return error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN, metadata=metadata)


def error_info_details(reason: str) -> list[any_pb2.Any]:
    """Status details holding just an ErrorInfo with ``reason`` (for statuses made outside the table)."""
    return _pack(error_info(reason))


def _reason(err: Exception) -> str:
    return next((reason for kind, reason in REASONS.items() if isinstance(err, kind)), INTERNAL_REASON)


def _info_metadata(err: Exception) -> dict[str, str]:
    fields = {
        "model": getattr(err, "model", None),
        "lora": getattr(err, "lora", None),
        "request_id": getattr(err, "request_id", None),
    }
    return {key: str(value) for key, value in fields.items() if value}


def to_status(err: Exception) -> grpc.Status:
    """The gRPC status (with rich details) for ``err``: grpc_status's namedtuple, so ``_replace`` works."""
    info = _pack(error_info(_reason(err), **_info_metadata(err)))
    for kind, (code, details) in _STATUS_TABLE.items():
        if isinstance(err, kind):
            message = status_pb2.Status(code=code, message=str(err), details=[*details(err), *info])
            status = rpc_status.to_status(message)
            retry_after = getattr(err, "retry_after", 0.0)
            if retry_after > 0:
                pushback = (RETRY_PUSHBACK_KEY, str(int(retry_after * 1000)))
                status = status._replace(trailing_metadata=(*status.trailing_metadata, pushback))
            return status
    message = status_pb2.Status(code=code_pb2.INTERNAL, message="internal server error", details=info)
    return rpc_status.to_status(message)


async def abort(context: grpc.aio.ServicerContext, err: Exception) -> None:
    """Abort the RPC with the status for ``err`` (raises, as ``context.abort`` does)."""
    if not isinstance(err, errors.EngineError):
        logger.error("unexpected %s handling request %s", type(err).__name__, current_request_id.get(), exc_info=err)
    status = to_status(err)
    # abort_with_status replaces trailing metadata set earlier, so the ids travel with the status.
    extra = ((ENGINE_ID_KEY, engine_id),) if (engine_id := current_engine_id.get()) else ()
    request_id = current_request_id.get()
    if request_id:
        extra += ((REQUEST_ID_KEY, request_id),)
    if extra:
        status = status._replace(trailing_metadata=(*status.trailing_metadata, *extra))
    await context.abort_with_status(status)


def _mark_engine(servicer, context: grpc.aio.ServicerContext) -> None:
    """Put the servicer's engine id in the RPC's trailing metadata and in ``current_engine_id``."""
    engine_id = getattr(servicer, "engine_id", "")
    if engine_id:
        current_engine_id.set(engine_id)
        context.set_trailing_metadata(((ENGINE_ID_KEY, engine_id),))


def unary(method):
    """Decorate a unary servicer method: the RPC gets a request id, engine errors become statuses."""

    @functools.wraps(method)
    async def wrapper(self, request, context):
        _mark_engine(self, context)
        current_request_id.set(incoming_request_id(context))
        try:
            return await method(self, request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as err:
            await abort(context, err)

    return wrapper


def server_streaming(method):
    """Decorate a server-streaming servicer method: the RPC gets a request id, engine errors become statuses."""

    @functools.wraps(method)
    async def wrapper(self, request, context):
        _mark_engine(self, context)
        current_request_id.set(incoming_request_id(context))
        try:
            async for item in method(self, request, context):
                yield item
        except grpc.aio.AbortError:
            raise
        except Exception as err:
            await abort(context, err)

    return wrapper
