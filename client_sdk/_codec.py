"""Conversion of `ditserve.v1` protobuf messages into the client's value types.

The only place that reads engine responses field by field. Fields the contract
declares `optional` become None when unset (checked with HasField).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from google.protobuf.message import Message

from client_sdk._proto import engine_pb2
from client_sdk.types import (
    CacheStats,
    Duration,
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


def _optional(msg: Message, name: str) -> Any:
    """The value of an `optional` field, or None when it is unset."""
    return getattr(msg, name) if msg.HasField(name) else None


def output_from_proto(msg: engine_pb2.Output, data: bytes | None = None) -> Output:
    """An Output; `data` replaces the message's bytes (used for reassembled chunks)."""
    return Output(
        data=msg.data if data is None else data,
        mime_type=msg.mime_type,
        width=msg.width,
        height=msg.height,
        num_frames=msg.num_frames,
        size_bytes=msg.size_bytes,
        sha256=msg.sha256,
    )


def step_stat_from_proto(msg: engine_pb2.StepStat) -> StepStat:
    """A StepStat."""
    return StepStat(
        step=msg.step,
        cached=msg.cached,
        residual_diff=_optional(msg, "residual_diff"),
        cfg_cached=_optional(msg, "cfg_cached"),
        cfg_residual_diff=_optional(msg, "cfg_residual_diff"),
        pruned_blocks=_optional(msg, "pruned_blocks"),
        calibrated=_optional(msg, "calibrated"),
    )


def cache_stats_from_proto(msg: engine_pb2.CacheStats) -> CacheStats:
    """A CacheStats."""
    return CacheStats(
        policy=msg.policy,
        steps=tuple(step_stat_from_proto(s) for s in msg.steps),
        computed_steps=msg.computed_steps,
        cached_steps=msg.cached_steps,
        cfg_cached_steps=msg.cfg_cached_steps,
        pruned_ratio=_optional(msg, "pruned_ratio"),
    )


def timings_from_proto(msg: engine_pb2.Timings) -> Timings:
    """A Timings."""
    return Timings(
        queue_ms=msg.queue_ms,
        prepare_ms=msg.prepare_ms,
        denoise_ms=msg.denoise_ms,
        decode_ms=msg.decode_ms,
        encode_ms=msg.encode_ms,
        total_ms=msg.total_ms,
    )


def result_from_proto(msg: engine_pb2.GenerateResponse, outputs: Sequence[Output] | None = None) -> Result:
    """A Result; `outputs` replaces the message's outputs (used after reassembly)."""
    return Result(
        outputs=tuple(outputs) if outputs is not None else tuple(output_from_proto(o) for o in msg.outputs),
        cache_stats=cache_stats_from_proto(msg.cache_stats),
        timings=timings_from_proto(msg.timings),
        seed=msg.seed,
        request_id=msg.request_id,
        model=msg.model,
        engine_id=msg.engine_id,
        loras=tuple((item.name, item.scale) for item in msg.loras),
    )


def queued_from_proto(msg: engine_pb2.QueuedEvent) -> Queued:
    """A Queued event."""
    return Queued(position=msg.position, request_id=msg.request_id, engine_id=msg.engine_id)


def started_from_proto(msg: engine_pb2.StartedEvent) -> Started:
    """A Started event."""
    return Started(seed=msg.seed, total_steps=msg.total_steps, queue_ms=msg.queue_ms, engine_id=msg.engine_id)


def step_from_proto(msg: engine_pb2.StepEvent) -> Step:
    """A Step event."""
    return Step(
        step=msg.step,
        total_steps=msg.total_steps,
        timestep=msg.timestep,
        cached=msg.cached,
        residual_diff=_optional(msg, "residual_diff"),
        cfg_cached=_optional(msg, "cfg_cached"),
        cfg_residual_diff=_optional(msg, "cfg_residual_diff"),
        elapsed_ms=msg.elapsed_ms,
        step_ms=msg.step_ms,
        pruned_blocks=_optional(msg, "pruned_blocks"),
        calibrated=_optional(msg, "calibrated"),
    )


def preview_from_proto(msg: engine_pb2.PreviewEvent) -> Preview:
    """A Preview event; an empty MIME type is taken as PNG, as the contract says."""
    return Preview(
        step=msg.step,
        data=msg.data,
        mime_type=msg.mime_type or "image/png",
        width=msg.width,
        height=msg.height,
    )


def model_info_from_proto(msg: engine_pb2.ModelInfo) -> ModelInfo:
    """A ModelInfo."""
    return ModelInfo(
        name=msg.name,
        family=msg.family,
        pipeline_class=msg.pipeline_class,
        is_default=msg.is_default,
        output_kind=msg.output_kind,
        default_width=msg.default_width,
        default_height=msg.default_height,
        default_steps=msg.default_steps,
        default_guidance_scale=msg.default_guidance_scale,
        default_frames=msg.default_frames,
        spatial_factor=msg.spatial_factor,
        supports_negative_prompt=msg.supports_negative_prompt,
        input_roles=tuple(msg.input_roles),
        source=msg.source,
        num_transformer_blocks=msg.num_transformer_blocks,
        parameters=tuple(msg.parameters),
        required_roles=tuple(msg.required_roles),
        default_strength=msg.default_strength if msg.HasField("default_strength") else None,
        control_images=msg.control_images,
        repeated_roles=tuple(msg.repeated_roles),
        refuses_guidance_scale=msg.refuses_guidance_scale,
        default_layers=msg.default_layers,
        max_layers=msg.max_layers,
        outputs_alpha=msg.outputs_alpha,
        loras=tuple(
            LoraInfo(name=i.name, source=i.source, rank=i.rank, layers=i.layers, components=tuple(i.components))
            for i in msg.loras
        ),
        max_loras_per_request=msg.max_loras_per_request,
        video_roles=tuple(msg.video_roles),
        required_video_roles=tuple(msg.required_video_roles),
        frames_from_video=msg.frames_from_video,
        continues_video=msg.continues_video,
        refuses_prompt=msg.refuses_prompt,
        requires_camera=msg.requires_camera,
    )


def limits_from_proto(msg: engine_pb2.Limits) -> Limits:
    """A Limits."""
    return Limits(
        max_width=msg.max_width,
        max_height=msg.max_height,
        max_pixels=msg.max_pixels,
        max_steps=msg.max_steps,
        max_outputs=msg.max_outputs,
        max_frames=msg.max_frames,
        max_prompt_chars=msg.max_prompt_chars,
        max_input_images=msg.max_input_images,
        max_input_image_bytes=msg.max_input_image_bytes,
        max_request_bytes=msg.max_request_bytes,
        max_queue=msg.max_queue,
        max_input_pixels=msg.max_input_pixels,
        max_queued_input_pixels=msg.max_queued_input_pixels,
        max_input_video_bytes=msg.max_input_video_bytes,
        max_input_video_frames=msg.max_input_video_frames,
        max_input_video_pixels=msg.max_input_video_pixels,
    )


def server_info_from_proto(msg: engine_pb2.ServerInfo) -> ServerInfo:
    """A ServerInfo."""
    return ServerInfo(name=msg.name, version=msg.version, api=msg.api, build=dict(msg.build))


def model_list_from_proto(msg: engine_pb2.ListModelsResponse) -> ModelList:
    """A ModelList."""
    return ModelList(
        models=tuple(model_info_from_proto(m) for m in msg.models),
        limits=limits_from_proto(msg.limits),
        server=server_info_from_proto(msg.server),
    )


def duration_from_proto(msg: engine_pb2.Duration) -> Duration:
    """A Duration."""
    return Duration(count=msg.count, total_ms=msg.total_ms)


def model_stats_from_proto(msg: engine_pb2.ModelStats) -> ModelStats:
    """A ModelStats."""
    return ModelStats(
        model=msg.model,
        success=duration_from_proto(msg.success),
        failure=duration_from_proto(msg.failure),
        cancelled=duration_from_proto(msg.cancelled),
        rejected=msg.rejected,
        queue=duration_from_proto(msg.queue),
        prepare=duration_from_proto(msg.prepare),
        denoise=duration_from_proto(msg.denoise),
        decode=duration_from_proto(msg.decode),
        encode=duration_from_proto(msg.encode),
        outputs=msg.outputs,
        steps=msg.steps,
        computed_steps=msg.computed_steps,
        cached_steps=msg.cached_steps,
        last_request_unix_ms=msg.last_request_unix_ms,
        cancelled_steps=msg.cancelled_steps,
        lora_requests=dict(msg.lora_requests),
        compile_graphs=msg.compile_graphs,
        compiled_calls=msg.compiled_calls,
        eager_calls=msg.eager_calls,
    )


def stats_from_proto(msg: engine_pb2.StatsResponse) -> Stats:
    """A Stats."""
    return Stats(
        models=tuple(model_stats_from_proto(m) for m in msg.models),
        queue_depth=msg.queue_depth,
        running=msg.running,
        uptime_s=msg.uptime_s,
        device=msg.device,
        engine_id=msg.engine_id,
        server=server_info_from_proto(msg.server),
    )
