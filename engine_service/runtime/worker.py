"""The worker: runs one job at a time on the device, in its own thread.

It drives the family's pipeline call with the job's cache plan enabled, turns
``callback_on_step_end`` into step events carrying the cache's decision for the
step, stops at the next step boundary when the job's cancel flag is set (raising
from the callback skips the VAE decode), encodes the outputs, and always leaves
the pipeline clean for the next job: the cache is removed after every run,
whether it finished, failed or was cancelled.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping

import numpy as np
import torch

from engine_service import cache
from engine_service.models import LoadedModel
from engine_service.runtime import encoding
from engine_service.runtime.errors import JobCancelled, JobFailed
from engine_service.runtime.job import (
    JobEvent,
    JobResult,
    JobSpec,
    PreviewEvent,
    StepEvent,
    StepRecord,
    Timings,
)

logger = logging.getLogger(__name__)

Emit = Callable[[JobEvent], None]
NO_CACHE_POLICY = "none"


class _Clock:
    """Phase boundaries of one run, from ``time.perf_counter``."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.first_transformer_call: float | None = None
        self.last_step_end: float | None = None

    def mark_transformer_call(self, *_: object) -> None:
        if self.first_transformer_call is None:
            self.first_transformer_call = time.perf_counter()

    def ms_since(self, t: float | None) -> float:
        return 0.0 if t is None else (time.perf_counter() - t) * 1000.0


class Worker:
    """Runs jobs on the loaded models. Not thread-safe: the engine calls it from one thread."""

    def __init__(self, models: Mapping[str, LoadedModel]):
        self._models = models

    def warm_up(self, name: str, spec: JobSpec) -> None:
        """Run ``spec`` once on model ``name`` and discard the result."""
        start = time.perf_counter()
        self.run(spec, threading.Event(), lambda _event: None, queue_ms=0.0)
        elapsed = time.perf_counter() - start
        logger.info("warmed up model %r in %.2f s", name, elapsed)

    def run(self, spec: JobSpec, cancel: threading.Event, emit: Emit, queue_ms: float) -> JobResult:
        """Run one job to completion. Raises JobCancelled or JobFailed; never leaves state behind."""
        model = self._models[spec.model]
        pipe = model.pipeline
        if cancel.is_set():
            raise JobCancelled(spec.request_id)
        clock = _Clock()
        steps: list[StepRecord] = []
        callback = self._step_callback(model, spec, cancel, emit, clock, steps)
        kwargs = {**model.call_defaults, **model.family.build_call_kwargs(pipe, spec)}
        generator = torch.Generator(device="cpu").manual_seed(spec.seed)
        hook = pipe.transformer.register_forward_pre_hook(clock.mark_transformer_call)
        pruned_ratio = None
        try:
            if spec.cache is not None:
                cache.enable_cache(pipe, spec.cache.cache_config.copy(), spec.cache.calibrator_config)
            with torch.inference_mode():
                output = pipe(**kwargs, generator=generator, output_type="np", callback_on_step_end=callback)
            pruned_ratio = _pruned_ratio(cache.summary(pipe, logging=False))
        except JobCancelled:
            raise
        except Exception as err:
            raise JobFailed(spec.request_id, f"the pipeline failed: {type(err).__name__}: {err}") from err
        finally:
            hook.remove()
            self._reset(pipe)
        decode_ms = clock.ms_since(clock.last_step_end)
        encode_start = time.perf_counter()
        outputs = _encode(output, spec, model.family.output_kind)
        encode_ms = (time.perf_counter() - encode_start) * 1000.0
        first_call = clock.first_transformer_call or clock.start
        last_step = clock.last_step_end or first_call
        timings = Timings(
            queue_ms=queue_ms,
            prepare_ms=(first_call - clock.start) * 1000.0,
            denoise_ms=(last_step - first_call) * 1000.0,
            decode_ms=decode_ms,
            encode_ms=encode_ms,
        )
        return JobResult(
            request_id=spec.request_id,
            model=spec.model,
            seed=spec.seed,
            outputs=tuple(outputs),
            steps=tuple(steps),
            cache_policy=spec.cache.tag if spec.cache is not None else NO_CACHE_POLICY,
            timings=timings,
            pruned_ratio=pruned_ratio,
        )

    def _step_callback(
        self,
        model: LoadedModel,
        spec: JobSpec,
        cancel: threading.Event,
        emit: Emit,
        clock: _Clock,
        steps: list[StepRecord],
    ) -> Callable[..., dict]:
        total = spec.num_inference_steps

        def on_step_end(pipe, index: int, timestep, callback_kwargs: dict) -> dict:
            now = time.perf_counter()
            step_start = clock.last_step_end or clock.first_transformer_call or clock.start
            clock.last_step_end = now
            record = _step_record(pipe, index, spec.cache is not None)
            steps.append(record)
            emit(
                StepEvent(
                    step=index,
                    total_steps=total,
                    timestep=float(timestep),
                    elapsed_ms=(now - clock.start) * 1000.0,
                    step_ms=(now - step_start) * 1000.0,
                    cached=record.cached,
                    residual_diff=record.residual_diff,
                    cfg_cached=record.cfg_cached,
                    cfg_residual_diff=record.cfg_residual_diff,
                    pruned_blocks=record.pruned_blocks,
                )
            )
            # Checked after the step's event so the client sees progress up to the stop;
            # raising here skips the remaining steps and the VAE decode.
            if cancel.is_set():
                raise JobCancelled(spec.request_id)
            every = spec.preview_every
            if every and (index + 1) % every == 0 and index + 1 < total:
                emit(self._preview(model, spec, index, callback_kwargs["latents"]))
            return {}

        return on_step_end

    @staticmethod
    def _preview(model: LoadedModel, spec: JobSpec, index: int, latents: torch.Tensor) -> PreviewEvent:
        decoded = model.family.decode_latents(model.pipeline, latents, spec)
        pixels = encoding.to_uint8(decoded[0].float().cpu().numpy())
        data, width, height = encoding.encode_preview(pixels)
        return PreviewEvent(step=index, data=data, width=width, height=height)

    @staticmethod
    def _reset(pipe) -> None:
        """Leave the pipeline as a fresh request expects it, whatever happened."""
        cache.disable_cache(pipe)
        pipe._interrupt = False
        reset = getattr(pipe.transformer, "_reset_stateful_cache", None)
        if reset is not None:
            reset()


def _step_record(pipe, index: int, cached_run: bool) -> StepRecord:
    if not cached_run:
        return StepRecord(step=index)
    main, cfg = cache.step_outcomes(pipe, index)
    return StepRecord(
        step=index,
        cached=bool(main and main.cached),
        residual_diff=main.residual_diff if main else None,
        cfg_cached=cfg.cached if cfg else None,
        cfg_residual_diff=cfg.residual_diff if cfg else None,
        pruned_blocks=main.pruned_blocks if main else None,
    )


def _pruned_ratio(stats: list[cache.CacheStats]) -> float | None:
    actual = sum(sum(s.actual_blocks) + sum(s.cfg_actual_blocks) for s in stats)
    if not actual:
        return None
    return sum(sum(s.pruned_blocks) + sum(s.cfg_pruned_blocks) for s in stats) / actual


def _encode(output, spec: JobSpec, kind: str) -> list:
    """Images (N, H, W, 3) or videos (N, F, H, W, 3) in [0, 1], encoded as the job asks."""
    attribute = "frames" if kind == "video" else "images"
    decoded = getattr(output, attribute, None)
    if decoded is None:
        raise JobFailed(spec.request_id, f"the pipeline returned no {attribute}")
    decoded = np.asarray(decoded, dtype=np.float32)
    if kind == "video":
        return encoding.encode_videos(decoded, spec.output_format, spec.fps, spec.output_quality)
    return encoding.encode_images(decoded, spec.output_format, spec.output_quality)


__all__ = ["Worker"]
