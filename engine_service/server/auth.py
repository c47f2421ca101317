"""Bearer-token authentication: a grpc.aio server interceptor.

Every RPC must carry ``authorization: Bearer <token>`` metadata, except the
standard health and reflection services: load balancers and orchestrators probe
health without credentials, and grpcurl's health check needs reflection to find
the health service. Reflection describes the contract, which is public (the
proto ships with the SDK); every Engine method still needs the token.
A missing or wrong token ends the call with UNAUTHENTICATED (ErrorInfo reason
``UNAUTHENTICATED``, the call's ``x-request-id`` trailer) before any handler runs.
"""

from __future__ import annotations

import hmac
import logging

import grpc
from google.rpc import code_pb2, status_pb2
from grpc_status import rpc_status

from engine_service.server import status

logger = logging.getLogger(__name__)

AUTHORIZATION_KEY = "authorization"
BEARER_SCHEME = "bearer"
#: Method prefixes callable without a token: health and both versions of reflection.
OPEN_METHOD_PREFIXES = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
)


class BearerTokenInterceptor(grpc.aio.ServerInterceptor):
    """Rejects calls whose bearer token does not match (UNAUTHENTICATED)."""

    def __init__(self, token: str):
        if not token or not token.strip():
            raise ValueError("the auth token must not be empty")
        self._expected = token.encode()

    async def intercept_service(self, continuation, handler_call_details: grpc.HandlerCallDetails):
        method = handler_call_details.method
        if method.startswith(OPEN_METHOD_PREFIXES):
            return await continuation(handler_call_details)
        problem = self._check(handler_call_details.invocation_metadata or ())
        if problem is None:
            return await continuation(handler_call_details)
        logger.warning("refused %s: %s", method, problem)
        handler = await continuation(handler_call_details)
        return _refusing(handler, problem)

    def _check(self, metadata) -> str | None:
        """None when the metadata carries the expected token, else what is wrong."""
        values = [value for key, value in metadata if key == AUTHORIZATION_KEY]
        if not values:
            return "missing authorization metadata (expected 'authorization: Bearer <token>')"
        value = values[0] if isinstance(values[0], str) else values[0].decode(errors="replace")
        scheme, _, credentials = value.strip().partition(" ")
        if scheme.lower() != BEARER_SCHEME:  # auth schemes are case-insensitive (RFC 7235, section 2.1)
            return "the authorization metadata must be 'Bearer <token>'"
        # Constant-time comparison: the reply time must not reveal how much of the token matched.
        if not hmac.compare_digest(credentials.strip().encode(), self._expected):
            return "invalid bearer token"
        return None


def _refusing(handler: grpc.RpcMethodHandler | None, message: str) -> grpc.RpcMethodHandler:
    """A handler of the same shape as ``handler`` that ends the call with UNAUTHENTICATED."""

    async def abort(context: grpc.aio.ServicerContext) -> None:
        details = status.error_info_details("UNAUTHENTICATED")
        refused = rpc_status.to_status(
            status_pb2.Status(code=code_pb2.UNAUTHENTICATED, message=message, details=details)
        )
        request_id = (status.REQUEST_ID_KEY, status.incoming_request_id(context))
        await context.abort_with_status(refused._replace(trailing_metadata=(*refused.trailing_metadata, request_id)))

    async def abort_unary(request, context: grpc.aio.ServicerContext):
        await abort(context)

    async def abort_stream(request, context: grpc.aio.ServicerContext):
        await abort(context)
        yield  # pragma: no cover - makes this an async generator

    if handler is None:  # unknown method: answer as a unary call
        return grpc.unary_unary_rpc_method_handler(abort_unary)
    kwargs = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(abort_stream, **kwargs)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(abort_unary, **kwargs)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(abort_stream, **kwargs)
    return grpc.unary_unary_rpc_method_handler(abort_unary, **kwargs)
