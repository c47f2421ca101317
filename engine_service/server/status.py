"""Engine errors to gRPC statuses with google.rpc details, in one table.

Unknown exceptions become INTERNAL with a generic message and the request id;
the traceback is logged, never sent.
"""

from __future__ import annotations

import contextvars
import functools
import logging
from collections.abc import Callable

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from engine_service import errors

logger = logging.getLogger(__name__)

REQUEST_ID_KEY = "x-request-id"
#: Metadata key of the engine's id, in the trailing metadata of every Engine RPC and in the initial
#: metadata of an accepted Generate or Stream.
ENGINE_ID_KEY = "x-engine-id"
#: The id of the request the current RPC handles, once known; sent with every error status.
current_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("current_request_id", default=None)
#: The id of the engine answering the current RPC; sent with every status.
current_engine_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("current_engine_id", default=None)


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
    errors.UnknownRequest: (code_pb2.NOT_FOUND, lambda e: _resource("request", e.request_id, str(e))),
    errors.DuplicateRequestId: (code_pb2.ALREADY_EXISTS, lambda e: _resource("request", e.request_id, str(e))),
    errors.QueueFull: (code_pb2.RESOURCE_EXHAUSTED, lambda e: _pack(_retry_info(e.retry_after))),
    errors.EngineNotReady: (code_pb2.UNAVAILABLE, lambda e: _pack(_retry_info(e.retry_after))),
    errors.JobCancelled: (code_pb2.CANCELLED, lambda e: []),
    # Before JobFailed, its base: the first matching entry wins.
    errors.JobOutOfMemory: (code_pb2.RESOURCE_EXHAUSTED, lambda e: []),
    errors.JobFailed: (code_pb2.INTERNAL, lambda e: []),
}


def to_status(err: Exception) -> grpc.Status:
    """The gRPC status (with rich details) for ``err``: grpc_status's namedtuple, so ``_replace`` works."""
    for kind, (code, details) in _STATUS_TABLE.items():
        if isinstance(err, kind):
            return rpc_status.to_status(status_pb2.Status(code=code, message=str(err), details=details(err)))
    return rpc_status.to_status(status_pb2.Status(code=code_pb2.INTERNAL, message="internal server error"))


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
    """Decorate a unary servicer method: engine errors become statuses."""

    @functools.wraps(method)
    async def wrapper(self, request, context):
        _mark_engine(self, context)
        try:
            return await method(self, request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as err:
            await abort(context, err)

    return wrapper


def server_streaming(method):
    """Decorate a server-streaming servicer method: engine errors become statuses."""

    @functools.wraps(method)
    async def wrapper(self, request, context):
        _mark_engine(self, context)
        try:
            async for item in method(self, request, context):
                yield item
        except grpc.aio.AbortError:
            raise
        except Exception as err:
            await abort(context, err)

    return wrapper
