"""All conversion from runtime types to protos, in one place."""

from __future__ import annotations

import dataclasses

from client_sdk._proto import engine_pb2 as pb
from engine_service import jobs as rt
from engine_service.config import Limits
from engine_service.models import LoadedModel
from engine_service.runtime.stats import ModelCounters


def _optional(**fields):
    """Drop None values so proto3 optional fields stay unset."""
    return {k: val for k, val in fields.items() if val is not None}


def cache_stats(result: rt.JobResult) -> pb.CacheStats:
    steps = [
        pb.StepStat(
            step=s.step,
            cached=s.cached,
            **_optional(
                residual_diff=s.residual_diff,
                cfg_cached=s.cfg_cached,
                cfg_residual_diff=s.cfg_residual_diff,
                pruned_blocks=s.pruned_blocks,
                calibrated=s.calibrated,
            ),
        )
        for s in result.steps
    ]
    return pb.CacheStats(
        policy=result.cache_policy,
        steps=steps,
        computed_steps=result.computed_steps,
        cached_steps=result.cached_steps,
        cfg_cached_steps=result.cfg_cached_steps,
        **_optional(pruned_ratio=result.pruned_ratio),
    )


def response(result: rt.JobResult, chunked: frozenset[int] = frozenset()) -> pb.GenerateResponse:
    """The response for ``result``; outputs whose index is in ``chunked`` go without their bytes."""
    outputs = [
        pb.Output(
            data=b"" if index in chunked else out.data,
            mime_type=out.mime_type,
            width=out.width,
            height=out.height,
            num_frames=out.num_frames,
            size_bytes=len(out.data),
            sha256=out.sha256,
        )
        for index, out in enumerate(result.outputs)
    ]
    return pb.GenerateResponse(
        outputs=outputs,
        cache_stats=cache_stats(result),
        timings=pb.Timings(**dataclasses.asdict(result.timings)),
        seed=result.seed,
        request_id=result.request_id,
        model=result.model,
        loras=[pb.LoraAdapter(name=name, scale=scale) for name, scale in result.loras],
    )


def event(ev: rt.JobEvent) -> pb.GenerateEvent:
    """A progress event as a GenerateEvent (CompletedEvent is built by the servicer, which chunks it)."""
    if isinstance(ev, rt.QueuedEvent):
        return pb.GenerateEvent(queued=pb.QueuedEvent(position=ev.position, request_id=ev.request_id))
    if isinstance(ev, rt.StartedEvent):
        return pb.GenerateEvent(started=pb.StartedEvent(seed=ev.seed, total_steps=ev.total_steps, queue_ms=ev.queue_ms))
    if isinstance(ev, rt.StepEvent):
        return pb.GenerateEvent(
            step=pb.StepEvent(
                step=ev.step,
                total_steps=ev.total_steps,
                timestep=ev.timestep,
                cached=ev.cached,
                elapsed_ms=ev.elapsed_ms,
                step_ms=ev.step_ms,
                **_optional(
                    residual_diff=ev.residual_diff,
                    cfg_cached=ev.cfg_cached,
                    cfg_residual_diff=ev.cfg_residual_diff,
                    pruned_blocks=ev.pruned_blocks,
                    calibrated=ev.calibrated,
                ),
            )
        )
    if isinstance(ev, rt.PreviewEvent):
        return pb.GenerateEvent(
            preview=pb.PreviewEvent(step=ev.step, data=ev.data, mime_type="image/png", width=ev.width, height=ev.height)
        )
    raise TypeError(f"no proto for event {type(ev).__name__}")


def chunk_events(result: rt.JobResult, chunk_bytes: int) -> tuple[list[pb.GenerateEvent], frozenset[int]]:
    """Chunk events for every output larger than ``chunk_bytes``, and the indices chunked."""
    events: list[pb.GenerateEvent] = []
    chunked = set()
    for index, out in enumerate(result.outputs):
        if len(out.data) <= chunk_bytes:
            continue
        chunked.add(index)
        for offset in range(0, len(out.data), chunk_bytes):
            piece = out.data[offset : offset + chunk_bytes]
            last = offset + chunk_bytes >= len(out.data)
            events.append(
                pb.GenerateEvent(chunk=pb.ChunkEvent(output_index=index, offset=offset, data=piece, last=last))
            )
    return events, frozenset(chunked)


# The runtime's Timings, ModelCounters and Limits use the proto's field names, so they convert
# field for field (nested Duration dataclasses become nested Duration messages).


def model_stats(name: str, counters: ModelCounters) -> pb.ModelStats:
    return pb.ModelStats(model=name, **dataclasses.asdict(counters))


def limits(lim: Limits) -> pb.Limits:
    return pb.Limits(**dataclasses.asdict(lim))


def model_info(model: LoadedModel, is_default: bool) -> pb.ModelInfo:
    family = model.family
    follows_input = family.size_from_input is not None or family.size_from_video is not None
    return pb.ModelInfo(
        name=model.name,
        family=family.name,
        pipeline_class=type(model.pipeline).__name__,
        is_default=is_default,
        output_kind=family.output_kind,
        # 0 x 0: the size follows the input image or video.
        default_width=0 if follows_input else model.default_width,
        default_height=0 if follows_input else model.default_height,
        default_steps=model.default_steps,
        default_guidance_scale=model.default_guidance_scale,
        default_frames=model.default_frames,
        spatial_factor=model.spatial_factor,
        supports_negative_prompt=family.uses_negative_prompt,
        input_roles=list(family.input_roles),
        source=model.source,
        num_transformer_blocks=model.num_transformer_blocks,
        parameters=list(family.parameters),
        required_roles=list(family.required_roles),
        default_strength=family.default_strength,
        control_images=model.control_images,
        repeated_roles=list(family.repeated_roles),
        refuses_guidance_scale=not family.takes_guidance,
        default_layers=model.default_layers or 0,
        max_layers=family.max_layers if family.default_layers is not None else 0,
        outputs_alpha=family.outputs_alpha,
        loras=[
            pb.LoraInfo(
                name=info.name,
                source=info.source,
                rank=info.rank,
                layers=info.layers,
                components=list(info.components),
            )
            for info in (model.loras.adapters.values() if model.loras is not None else ())
        ],
        max_loras_per_request=model.loras.max_per_request if model.loras is not None else 0,
        video_roles=list(family.video_roles),
        required_video_roles=list(family.required_video_roles),
        frames_from_video=family.frames_from_video or "",
        continues_video=family.continues_video or "",
        refuses_prompt=not family.takes_prompt,
        requires_camera=family.takes_camera,
    )


#: Distributions whose versions ``ServerInfo.build`` reports.
BUILD_PACKAGES = ("torch", "diffusers", "transformers", "grpcio", "protobuf")


def server_info() -> pb.ServerInfo:
    """This server's name, version, contract package and the versions of what it runs on."""
    import importlib.metadata
    import platform

    from engine_service import __version__

    build = {"python": platform.python_version()}
    for name in BUILD_PACKAGES:
        try:
            build[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return pb.ServerInfo(name="ditserve", version=__version__, api=pb.DESCRIPTOR.package, build=build)
