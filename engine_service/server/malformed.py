"""Request bodies that do not parse: INVALID_ARGUMENT and one log line, never UNKNOWN.

grpc.aio answers a request whose bytes are not a valid message with UNKNOWN, a Python
class name in the message and a traceback in the log. This interceptor gives every
unary-request method a deserializer that cannot raise: a body that does not parse
becomes a marker, and the method answers it with INVALID_ARGUMENT before any handler
code runs. Streaming-request methods (reflection) keep gRPC's own handling.
"""

from __future__ import annotations

import inspect
import logging

import grpc

logger = logging.getLogger(__name__)

#: The status message of a request body that is not a valid message of the method's request type.
MALFORMED_MESSAGE = "the request body is not a valid protobuf message of the method's request type"


class _Malformed:
    """Marker for a request body that did not parse."""


_MALFORMED = _Malformed()


class MalformedRequestInterceptor(grpc.aio.ServerInterceptor):
    """Answers unparseable unary request bodies with INVALID_ARGUMENT."""

    async def intercept_service(self, continuation, handler_call_details: grpc.HandlerCallDetails):
        handler = await continuation(handler_call_details)
        if handler is None or handler.request_streaming or handler.request_deserializer is None:
            return handler
        method = handler_call_details.method
        deserialize = handler.request_deserializer

        def safe_deserialize(data: bytes):
            try:
                return deserialize(data)
            except Exception:  # protobuf raises DecodeError, and others on some inputs
                logger.warning("refused %s: a %d-byte body that is not a valid request message", method, len(data))
                return _MALFORMED

        kwargs = {"request_deserializer": safe_deserialize, "response_serializer": handler.response_serializer}
        if handler.response_streaming:
            stream = handler.unary_stream
            if not inspect.isasyncgenfunction(stream):
                # A handler that writes with context.write() (grpc_health's Watch) stays a coroutine.
                async def checked_writer(request, context: grpc.aio.ServicerContext):
                    if request is _MALFORMED:
                        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, MALFORMED_MESSAGE)
                    await stream(request, context)

                return grpc.unary_stream_rpc_method_handler(checked_writer, **kwargs)

            async def checked_stream(request, context: grpc.aio.ServicerContext):
                if request is _MALFORMED:
                    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, MALFORMED_MESSAGE)
                async for item in stream(request, context):
                    yield item

            return grpc.unary_stream_rpc_method_handler(checked_stream, **kwargs)
        unary = handler.unary_unary

        async def checked_unary(request, context: grpc.aio.ServicerContext):
            if request is _MALFORMED:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, MALFORMED_MESSAGE)
            return await unary(request, context)

        return grpc.unary_unary_rpc_method_handler(checked_unary, **kwargs)
