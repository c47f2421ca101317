"""The Engine servicer: translates protos to engine calls and engine events back to protos.

No business logic lives here. Every method validates, calls the AsyncEngine,
and converts; engine errors become statuses through ``status``. A client that
disconnects or misses its deadline cancels its job (grpc.aio cancels the
handler task; the job's cancel flag stops the worker at the next step).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging

import grpc

from client_sdk._proto import engine_pb2 as pb
from client_sdk._proto import engine_pb2_grpc
from engine_service.config import ServerConfig
from engine_service.errors import EngineError, FieldViolation, InvalidRequest, ModelNotFound
from engine_service.jobs import CompletedEvent
from engine_service.runtime.engine import AsyncEngine, Job
from engine_service.server import cache_policy, codec, status, validation

logger = logging.getLogger(__name__)

_GONE = "cancelled: the client went away or its deadline passed"


class EngineServicer(engine_pb2_grpc.EngineServicer):
    """gRPC face of one AsyncEngine."""

    def __init__(self, engine: AsyncEngine, config: ServerConfig):
        self._engine = engine
        self.engine_id = config.engine_id
        """Sent in every response (``x-engine-id`` metadata and the ``engine_id`` fields)."""
        self._chunk_bytes = config.stream_chunk_bytes
        self._default_cache = cache_policy.parse_policy(config.cache_policy)
        self._server_info = codec.server_info()
        # Input images decode here, never on the event loop; two at a time bound the memory in use.
        self._decoder = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="ditserve-decode")

    async def _submit(self, request: pb.GenerateRequest, context: grpc.aio.ServicerContext, *, stream: bool) -> Job:
        """Validate and queue the request; once accepted, send the initial metadata (request and engine id).

        Headers go out before any work, so a client (or proxy) knows which engine to send a Cancel to,
        and gRPC's retry policies and Envoy's retries, which stop at the first header, never repeat a
        request an engine accepted: only a refusal (draining, warming up: UNAVAILABLE) can be retried.
        """
        # The request's own id wins; else the caller's x-request-id header or a new id (set by the decorator).
        if not request.request_id:
            request.request_id = status.current_request_id.get()
        elif status.REQUEST_ID_PATTERN.fullmatch(request.request_id):
            status.current_request_id.set(request.request_id)
        model = validation.resolve_model(request, self._engine.models, self._engine.default_model)
        try:
            spec = validation.validate(request, model, self._engine.limits, self._default_cache, decode=False)
            if spec.input_images:
                loop = asyncio.get_running_loop()
                mode = validation.input_mode(model)
                spec = await loop.run_in_executor(self._decoder, validation.decode_input_images, spec, mode)
            job = self._engine.submit(spec, step_events=stream)
        except EngineError:
            self._engine.stats.record_rejected(model.name)
            raise
        status.current_request_id.set(job.request_id)
        ids = ((status.REQUEST_ID_KEY, job.request_id), (status.ENGINE_ID_KEY, self.engine_id))
        context.set_trailing_metadata(ids)
        try:
            await context.send_initial_metadata(ids)
        except BaseException:
            self._engine.cancel_job(job, _GONE)
            raise
        logger.info(
            "request %s accepted: model=%s %dx%d steps=%d outputs=%d",
            job.request_id,
            spec.model,
            spec.width,
            spec.height,
            spec.num_inference_steps,
            spec.num_outputs,
        )
        return job

    @status.unary
    async def Generate(self, request: pb.GenerateRequest, context: grpc.aio.ServicerContext) -> pb.GenerateResponse:
        job = await self._submit(request, context, stream=False)  # no step events: only the result is sent
        try:
            # Closing the events at once ends the job's claim on the queue (undelivered results count).
            async with contextlib.aclosing(self._engine.events(job)) as events:
                async for event in events:
                    if isinstance(event, CompletedEvent):
                        response = codec.response(event.result)
                        response.engine_id = self.engine_id
                        return response
        except asyncio.CancelledError:
            self._engine.cancel_job(job, _GONE)
            raise
        raise RuntimeError("the job's events ended without a result")

    @status.server_streaming
    async def Stream(self, request: pb.GenerateRequest, context: grpc.aio.ServicerContext):
        job = await self._submit(request, context, stream=True)
        try:
            async with contextlib.aclosing(self._engine.events(job)) as events:
                async for event in events:
                    if isinstance(event, CompletedEvent):
                        chunks, chunked = codec.chunk_events(event.result, self._chunk_bytes)
                        for chunk in chunks:
                            yield chunk
                        completed = pb.GenerateEvent(completed=codec.response(event.result, chunked))
                        completed.completed.engine_id = self.engine_id
                        yield completed
                    else:
                        message = codec.event(event)
                        kind = message.WhichOneof("event")
                        if kind in ("queued", "started"):
                            getattr(message, kind).engine_id = self.engine_id
                        yield message
        except (asyncio.CancelledError, GeneratorExit):
            self._engine.cancel_job(job, _GONE)
            raise

    @status.unary
    async def Stats(self, request: pb.StatsRequest, context: grpc.aio.ServicerContext) -> pb.StatsResponse:
        counters = self._engine.stats.models
        if request.model:
            if request.model not in counters:
                raise ModelNotFound(request.model, sorted(counters))
            counters = {request.model: counters[request.model]}
        return pb.StatsResponse(
            models=[codec.model_stats(name, c) for name, c in counters.items()],
            queue_depth=self._engine.queue_depth,
            running=self._engine.running,
            uptime_s=self._engine.stats.uptime_s,
            device=self._engine.device,
            engine_id=self.engine_id,
            server=self._server_info,
        )

    @status.unary
    async def ListModels(
        self, request: pb.ListModelsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListModelsResponse:
        engine = self._engine
        return pb.ListModelsResponse(
            models=[codec.model_info(m, name == engine.default_model) for name, m in engine.models.items()],
            limits=codec.limits(engine.limits),
            engine_id=self.engine_id,
            server=self._server_info,
        )

    @status.unary
    async def Cancel(self, request: pb.CancelRequest, context: grpc.aio.ServicerContext) -> pb.CancelResponse:
        if not validation.REQUEST_ID_PATTERN.fullmatch(request.request_id):
            raise InvalidRequest([FieldViolation("request_id", "must be 1 to 128 characters of A-Z a-z 0-9 . _ : -")])
        return pb.CancelResponse(state=self._engine.cancel(request.request_id))
