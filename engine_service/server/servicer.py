"""The Engine servicer: translates protos to engine calls and engine events back to protos.

No business logic lives here. Every method validates, calls the AsyncEngine,
and converts; engine errors become statuses through ``status``. A client that
disconnects or misses its deadline cancels its job (grpc.aio cancels the
handler task; the job's cancel flag stops the worker at the next step).
"""

from __future__ import annotations

import asyncio
import logging

import grpc

from client_sdk._proto import engine_pb2 as pb
from client_sdk._proto import engine_pb2_grpc
from engine_service.config import ServerConfig
from engine_service.errors import EngineError, ModelNotFound
from engine_service.jobs import CompletedEvent
from engine_service.runtime.engine import AsyncEngine, Job
from engine_service.server import cache_policy, codec, status, validation

logger = logging.getLogger(__name__)

_GONE = "cancelled: the client went away or its deadline passed"


class EngineServicer(engine_pb2_grpc.EngineServicer):
    """gRPC face of one AsyncEngine."""

    def __init__(self, engine: AsyncEngine, config: ServerConfig):
        self._engine = engine
        self._chunk_bytes = config.stream_chunk_bytes
        self._default_cache = cache_policy.parse_policy(config.cache_policy)
        self._server_info = codec.server_info()

    def _submit(self, request: pb.GenerateRequest, context: grpc.aio.ServicerContext, *, stream: bool) -> Job:
        # The request's own id wins; else the caller's x-request-id header or a new id (set by the decorator).
        if not request.request_id:
            request.request_id = status.current_request_id.get()
        elif status.REQUEST_ID_PATTERN.fullmatch(request.request_id):
            status.current_request_id.set(request.request_id)
        model = validation.resolve_model(request, self._engine.models, self._engine.default_model)
        try:
            spec = validation.validate(request, model, self._engine.limits, self._default_cache)
            job = self._engine.submit(spec, step_events=stream)
        except EngineError:
            self._engine.stats.record_rejected(model.name)
            raise
        status.current_request_id.set(job.request_id)
        context.set_trailing_metadata(((status.REQUEST_ID_KEY, job.request_id),))
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
        job = self._submit(request, context, stream=False)  # no step events: only the result is sent
        try:
            async for event in self._engine.events(job):
                if isinstance(event, CompletedEvent):
                    return codec.response(event.result)
        except asyncio.CancelledError:
            self._engine.cancel_job(job, _GONE)
            raise
        raise RuntimeError("the job's events ended without a result")

    @status.server_streaming
    async def Stream(self, request: pb.GenerateRequest, context: grpc.aio.ServicerContext):
        job = self._submit(request, context, stream=True)
        try:
            async for event in self._engine.events(job):
                if isinstance(event, CompletedEvent):
                    chunks, chunked = codec.chunk_events(event.result, self._chunk_bytes)
                    for chunk in chunks:
                        yield chunk
                    yield pb.GenerateEvent(completed=codec.response(event.result, chunked))
                else:
                    yield codec.event(event)
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
            server=self._server_info,
        )

    @status.unary
    async def Cancel(self, request: pb.CancelRequest, context: grpc.aio.ServicerContext) -> pb.CancelResponse:
        return pb.CancelResponse(state=self._engine.cancel(request.request_id))
