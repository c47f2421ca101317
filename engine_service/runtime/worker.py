"""The worker: runs one pipeline call at a time on the device, in its own thread.

A call serves a batch of one or more compatible jobs (see ``batcher.py``): one
prompt and one seeded generator per output, so each job's images are what it
would get alone. The worker runs the call with the jobs' cache plan enabled
(jobs with a cache plan run alone), turns ``callback_on_step_end`` into step
events carrying the cache's decision for the step, sent to every job of the
batch, drops a job whose cancel flag is set at the next step boundary, stops the
call there when no job is left (raising from the callback skips the VAE decode),
encodes each job's outputs, and always leaves the pipeline clean for the next
call: the cache is removed after every run, whether it finished, failed or was
cancelled.

In a multi-process engine (``engine_service.parallel``) every rank runs its own
worker with a ``Lockstep``: rank 0 announces each call to the others, the
ranks agree on cancelled jobs at every step boundary and meet after the call;
only rank 0 decodes and encodes outputs and previews.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from engine_service import cache
from engine_service.errors import JobCancelled, JobFailed, JobOutOfMemory, RankLost
from engine_service.jobs import (
    JobEvent,
    JobResult,
    JobSpec,
    PreviewEvent,
    StepEvent,
    StepRecord,
    Timings,
)
from engine_service.models import LoadedModel
from engine_service.runtime import encoding

if TYPE_CHECKING:
    from engine_service.parallel.lockstep import Lockstep

logger = logging.getLogger(__name__)

Emit = Callable[[JobEvent], None]


@dataclasses.dataclass(eq=False)
class Member:
    """One job of a pipeline call, as the worker sees it."""

    spec: JobSpec
    cancel: threading.Event
    """Set by the engine; the worker drops the job at the next step boundary."""
    emit: Emit
    """Reports the job's events; called from the worker thread."""
    queue_ms: float = 0.0
    first_sample: int = 0
    """Index of the job's first output in the call's batch."""

    @property
    def cancelled(self) -> bool:
        return self.cancel.is_set()


Outcome = JobResult | JobCancelled


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

    def __init__(self, models: Mapping[str, LoadedModel], lockstep: Lockstep | None = None):
        self._models = models
        self._lockstep = lockstep
        self._produces_outputs = lockstep is None or lockstep.is_leader

    def warm_up(self, name: str, spec: JobSpec) -> None:
        """Run ``spec`` once on model ``name`` and discard the result."""
        start = time.perf_counter()
        self.run([Member(spec, threading.Event(), lambda _event: None)])
        elapsed = time.perf_counter() - start
        logger.info("warmed up model %r at %dx%d in %.2f s", name, spec.width, spec.height, elapsed)

    def run(self, members: Sequence[Member]) -> list[Outcome]:
        """Run one pipeline call for ``members`` (compatible jobs of one model), one outcome each.

        A member cancelled before the end gets JobCancelled; the others get their result.
        Raises JobFailed (JobOutOfMemory when the device ran out of memory) when the
        pipeline fails: every member of the call fails with it. Never leaves state behind.
        """
        if all(m.cancelled for m in members):
            return [JobCancelled(m.spec.request_id) for m in members]
        if self._lockstep is None:
            return self._run(members)
        if self._lockstep.is_leader:
            self._lockstep.announce([m.spec for m in members])
        try:
            return self._run(members)
        finally:
            self._lockstep.settle()

    def _run(self, members: Sequence[Member]) -> list[Outcome]:
        first = members[0].spec
        model = self._models[first.model]
        pipe = model.pipeline
        offset = 0
        for member in members:
            member.first_sample = offset
            offset += member.spec.num_outputs
        clock = _Clock()
        steps: list[list[StepRecord]] = [[] for _ in members]
        callback = self._step_callback(model, members, clock, steps)
        specs = [m.spec for m in members]
        kwargs = {**model.call_defaults, **model.family.build_call_kwargs(pipe, specs)}
        # One generator per output, shared by a job's outputs: a job's noise never depends on the batch.
        generators = []
        for spec in specs:
            generator = torch.Generator(device="cpu").manual_seed(spec.seed)
            generators.extend([generator] * spec.num_outputs)
        hook = pipe.transformer.register_forward_pre_hook(clock.mark_transformer_call)
        pruned_ratio = None
        tags = [m.spec.cache_tag for m in members]
        # Ranks other than 0 stop at the latents: only rank 0 decodes and encodes.
        output_type = "np" if self._produces_outputs else "latent"
        try:
            if first.cache is not None:
                # Members share a plan (batcher.batch_key); each decides on its own samples.
                cache.enable_cache(pipe, first.cache.cache_config.copy(), first.cache.calibrator_config)
                if len(members) > 1:
                    cache.set_sample_groups(pipe, [m.spec.num_outputs for m in members])
            if model.family.step_end_callback:
                kwargs["callback_on_step_end"] = callback
            with (
                torch.inference_mode(),
                _steps_from_scheduler(pipe, None if model.family.step_end_callback else callback),
            ):
                generator = generators if model.family.generator_per_output else generators[0]
                output = pipe(**kwargs, generator=generator, output_type=output_type)
            pruned_ratio = _pruned_ratio(cache.summary(pipe, logging=False))
            if first.cache is not None:  # the run's tags: they tell whether the calibrator forecast
                tags = [cache.strify(pipe, i if len(members) > 1 else None) for i in range(len(members))]
        except JobCancelled:
            return [JobCancelled(m.spec.request_id) for m in members]
        except RankLost:
            raise
        except torch.OutOfMemoryError as err:
            _free_device_memory()
            raise JobOutOfMemory(first.request_id, f"the device ran out of memory: {err}") from err
        except Exception as err:
            raise JobFailed(first.request_id, f"the pipeline failed: {type(err).__name__}: {err}") from err
        finally:
            hook.remove()
            self._reset(pipe)
        if not self._produces_outputs:
            return [JobCancelled(m.spec.request_id, "left to rank 0") for m in members]
        decode_ms = clock.ms_since(clock.last_step_end)
        decoded = _decoded(output, first, model.family.output_kind)
        first_call = clock.first_transformer_call or clock.start
        last_step = clock.last_step_end or first_call
        outcomes: list[Outcome] = []
        for member, records, tag in zip(members, steps, tags, strict=True):
            spec = member.spec
            if member.cancelled:
                outcomes.append(JobCancelled(spec.request_id))
                continue
            encode_start = time.perf_counter()
            own = decoded[member.first_sample : member.first_sample + spec.num_outputs]
            outputs = _encode(own, spec, model.family.output_kind)
            timings = Timings(
                queue_ms=member.queue_ms,
                prepare_ms=(first_call - clock.start) * 1000.0,
                denoise_ms=(last_step - first_call) * 1000.0,
                decode_ms=decode_ms,
                encode_ms=(time.perf_counter() - encode_start) * 1000.0,
            )
            outcomes.append(
                JobResult(
                    request_id=spec.request_id,
                    model=spec.model,
                    seed=spec.seed,
                    outputs=tuple(outputs),
                    steps=tuple(records),
                    cache_policy=tag,
                    timings=timings,
                    pruned_ratio=pruned_ratio,
                )
            )
        return outcomes

    def _step_callback(
        self,
        model: LoadedModel,
        members: Sequence[Member],
        clock: _Clock,
        steps: list[list[StepRecord]],
    ) -> Callable[..., dict]:
        total = members[0].spec.num_inference_steps
        timesteps = _HostTimesteps()

        def on_step_end(pipe, index: int, timestep, callback_kwargs: dict) -> dict:
            now = time.perf_counter()
            step_start = clock.last_step_end or clock.first_transformer_call or clock.start
            clock.last_step_end = now
            cached_run = members[0].spec.cache is not None
            t = timesteps.value(pipe, index, timestep)
            cancelled = [member.cancelled for member in members]
            if self._lockstep is not None:
                # Every rank drops the same jobs at the same step: rank 0's flags decide.
                cancelled = self._lockstep.sync_cancels(cancelled)
            # Cancel flags are read after the step so a job sees its progress up to the stop. A
            # cancelled job gets no more events; when none is left, raising here skips the
            # remaining steps and the VAE decode.
            live = []
            for group, (member, records) in enumerate(zip(members, steps, strict=True)):
                # With several members, each is a sample group of the cache with its own decisions.
                record = _step_record(pipe, index, cached_run, group)
                records.append(record)
                if cancelled[group]:
                    continue
                live.append(member)
                member.emit(
                    StepEvent(
                        step=index,
                        total_steps=total,
                        timestep=t,
                        elapsed_ms=(now - clock.start) * 1000.0,
                        step_ms=(now - step_start) * 1000.0,
                        cached=record.cached,
                        residual_diff=record.residual_diff,
                        cfg_cached=record.cfg_cached,
                        cfg_residual_diff=record.cfg_residual_diff,
                        pruned_blocks=record.pruned_blocks,
                        calibrated=record.calibrated,
                    )
                )
            if not live:
                raise JobCancelled(members[0].spec.request_id)
            for member in live if self._produces_outputs else ():
                every = member.spec.preview_every
                if every and (index + 1) % every == 0 and index + 1 < total:
                    member.emit(self._preview(model, member, index, callback_kwargs["latents"]))
            return {}

        return on_step_end

    @staticmethod
    def _preview(model: LoadedModel, member: Member, index: int, latents: torch.Tensor) -> PreviewEvent:
        own = latents[member.first_sample : member.first_sample + 1]
        decoded = model.family.decode_latents(model.pipeline, own, member.spec)
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


class _HostTimesteps:
    """The step's timestep as a Python float without a device-to-host sync per step.

    Reading a timestep that lives on the accelerator (``float(t)``) waits for all the work
    queued before it, so the host could not queue the next step while the device runs this
    one. The scheduler's timesteps are copied to the host once per run instead, checked
    against the first step's, and indexed from then on; a pipeline whose steps do not follow
    its scheduler's timesteps falls back to reading each one.
    """

    def __init__(self) -> None:
        self._values: list[float] | None = None
        self._checked = False

    def value(self, pipe, index: int, timestep) -> float:
        if not isinstance(timestep, torch.Tensor):
            return float(timestep)
        if not self._checked:
            self._checked = True
            self._values = self._scheduler_values(pipe)
            if self._values is None or index >= len(self._values) or self._values[index] != float(timestep):
                self._values = None
        if self._values is not None and index < len(self._values):
            return self._values[index]
        return float(timestep)

    @staticmethod
    def _scheduler_values(pipe) -> list[float] | None:
        scheduler = getattr(pipe, "scheduler", None)
        values = getattr(scheduler, "timesteps", None)
        if not isinstance(values, torch.Tensor):
            return None
        begin = getattr(scheduler, "begin_index", None) or 0
        return [float(v) for v in values[begin:].tolist()]


def _free_device_memory() -> None:
    """Give cached blocks back after an out-of-memory error so the next call starts clean."""
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


@contextlib.contextmanager
def _steps_from_scheduler(pipe, callback: Callable[..., dict] | None):
    """For pipelines without ``callback_on_step_end``: call ``callback`` after each scheduler step."""
    if callback is None:
        yield
        return
    scheduler = pipe.scheduler
    own, step = scheduler.__dict__.get("step"), scheduler.step
    index = 0

    @functools.wraps(step)
    def step_and_report(model_output, timestep, *args, **kwargs):
        nonlocal index
        out = step(model_output, timestep, *args, **kwargs)
        latents = out.prev_sample if hasattr(out, "prev_sample") else out[0]
        callback(pipe, index, timestep, {"latents": latents})
        index += 1
        return out

    scheduler.step = step_and_report
    try:
        yield
    finally:
        if own is None:
            scheduler.__dict__.pop("step", None)
        else:
            scheduler.step = own


def _step_record(pipe, index: int, cached_run: bool, sample_group: int) -> StepRecord:
    if not cached_run:
        return StepRecord(step=index)
    main, cfg = cache.step_outcomes(pipe, index, sample_group)
    return StepRecord(
        step=index,
        cached=bool(main and main.cached),
        residual_diff=main.residual_diff if main else None,
        cfg_cached=cfg.cached if cfg else None,
        cfg_residual_diff=cfg.residual_diff if cfg else None,
        pruned_blocks=main.pruned_blocks if main else None,
        calibrated=main.calibrated if main else None,
    )


def _pruned_ratio(stats: list[cache.CacheStats]) -> float | None:
    actual = sum(sum(s.actual_blocks) + sum(s.cfg_actual_blocks) for s in stats)
    if not actual:
        return None
    return sum(sum(s.pruned_blocks) + sum(s.cfg_pruned_blocks) for s in stats) / actual


def _decoded(output, spec: JobSpec, kind: str) -> np.ndarray:
    """The call's images (N, H, W, 3) or videos (N, F, H, W, 3), floats in [0, 1]."""
    attribute = "frames" if kind == "video" else "images"
    decoded = getattr(output, attribute, None)
    if decoded is None:
        raise JobFailed(spec.request_id, f"the pipeline returned no {attribute}")
    return np.asarray(decoded, dtype=np.float32)


def _encode(decoded: np.ndarray, spec: JobSpec, kind: str) -> list:
    """One job's share of the decoded outputs, encoded as it asks."""
    if kind == "video":
        return encoding.encode_videos(decoded, spec.output_format, spec.fps, spec.output_quality)
    return encoding.encode_images(decoded, spec.output_format, spec.output_quality)


__all__ = ["Member", "Outcome", "Worker"]
