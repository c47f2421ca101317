"""The worker: runs one pipeline call at a time on the device, in the device thread.

A call serves a batch of one or more compatible jobs (see ``batcher.py``): one
prompt and one seeded generator per output, so each job's images are what it
would get alone. The worker runs the call with the jobs' cache plan enabled,
turns ``callback_on_step_end`` into step events carrying the cache's decision
for the step, handed over once per step for every job of the batch that follows its
steps (``Report``; none for a job nobody streams), drops a job whose cancel flag is
set at the next step boundary, stops the call there when no job is left (raising
from the callback skips the VAE decode), and always leaves the pipeline clean for
the next call: the cache is removed after every run, whether it finished, failed
or was cancelled. It hands back each job's decoded outputs (``Decoded``); encoding
them (``Decoded.encode``) is left to the caller, so it can run off the device thread.

The worker knows nothing of ranks. Two small strategies, given at construction,
cover what differs between the processes of a multi-process engine
(``runtime/executor.py``):

* ``step_sync`` turns the cancel flags this process reads at a step boundary into
  the flags every process acts on (one process: its own flags);
* ``outputs`` says how a call ends: ``DECODE`` (decode to pixels, send previews,
  hand back ``Decoded`` outputs) or ``STOP_AT_LATENTS`` (stop at the latents, no
  previews, hand back nothing: another process answers the jobs).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

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
    from diffusers import DiffusionPipeline

    from engine_service.models.spec import FamilySpec

logger = logging.getLogger(__name__)


@dataclasses.dataclass(eq=False)
class Member:
    """One job of a pipeline call, as the worker sees it."""

    spec: JobSpec
    cancel: threading.Event = dataclasses.field(default_factory=threading.Event)
    """Set by the engine; the worker drops the job at the next step boundary."""
    follows_steps: bool = True
    """Whether someone reads the job's step and preview events; False: none are made for it."""
    queue_ms: float = 0.0
    first_sample: int = 0
    """Index of the job's first output in the call's batch."""
    steps_done: int = 0
    """Denoising steps the job has run so far (written by the device thread)."""

    @property
    def cancelled(self) -> bool:
        return self.cancel.is_set()


@dataclasses.dataclass(frozen=True, eq=False)
class Decoded:
    """One finished job's decoded outputs, not yet encoded.

    ``pixels`` is (num_outputs, H, W, 3) for images, (num_outputs, layers, H, W, 4) for a layered
    decomposition's RGBA images, or (num_outputs, F, H, W, 3) for videos, float32 in [0, 1].
    ``timings`` has every phase but ``encode_ms``.
    """

    spec: JobSpec
    pixels: np.ndarray
    kind: str
    """The family's output kind: ``"image"`` or ``"video"``."""
    steps: tuple[StepRecord, ...]
    timings: Timings
    pruned_ratio: float | None
    cache_tag: str | None = None
    """The cache tag of the run (it tells whether a calibrator forecast); ``None`` = the plan's."""

    @property
    def request_id(self) -> str:
        return self.spec.request_id

    def encode(self) -> JobResult:
        """Encode the outputs as the job asks (PNG, JPEG, WebP, MP4, PNG frames); safe on any thread."""
        start = time.perf_counter()
        outputs = _encode(self.pixels, self.spec, self.kind)
        encode_ms = (time.perf_counter() - start) * 1000.0
        return JobResult(
            request_id=self.spec.request_id,
            model=self.spec.model,
            seed=self.spec.seed,
            outputs=tuple(outputs),
            steps=self.steps,
            cache_policy=self.cache_tag or self.spec.cache_tag,
            timings=dataclasses.replace(self.timings, encode_ms=encode_ms),
            pruned_ratio=self.pruned_ratio,
            loras=self.spec.loras,
        )


Outcome = Decoded | JobCancelled

Report = Callable[[list[tuple[Member, JobEvent]]], None]
"""Takes one step's events (step events, previews) of the call's members, in order; called
from the device thread at most once per step, and not at all for a step without events."""

StepSync = Callable[[Sequence[bool]], list[bool]]
"""At a step boundary: the cancel flags of the call's jobs as this process reads them -> the
flags every process of the engine acts on (they must drop the same jobs at the same step)."""


def own_flags(flags: Sequence[bool]) -> list[bool]:
    """The step sync of a one-process engine: its own flags."""
    return list(flags)


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


class CallEnd(Protocol):
    """How a pipeline call ends on this process: what it asks diffusers for and what it hands back."""

    output_type: str
    """diffusers' ``output_type`` of the call."""
    previews: bool
    """Whether previews are decoded and sent during the call."""

    def collect(
        self, output, model: LoadedModel, members: Sequence[Member], steps: list[list[StepRecord]], clock: _Clock
    ) -> list[Outcome] | None: ...


class _Decode:
    """Decode to pixels and hand back each job's ``Decoded`` outputs (or its cancellation)."""

    output_type = "np"
    previews = True

    def collect(self, output, model, members, steps, clock) -> list[Outcome]:
        first = members[0].spec
        decode_ms = clock.ms_since(clock.last_step_end)
        decoded = _decoded(output, first, model.family)
        pruned_ratio = _pruned_ratio(cache.summary(model.pipeline, logging=False))
        first_call = clock.first_transformer_call or clock.start
        last_step = clock.last_step_end or first_call
        outcomes: list[Outcome] = []
        for group, (member, records) in enumerate(zip(members, steps, strict=True)):
            spec = member.spec
            if member.cancelled:
                outcomes.append(JobCancelled(spec.request_id))
                continue
            timings = Timings(
                queue_ms=member.queue_ms,
                prepare_ms=(first_call - clock.start) * 1000.0,
                denoise_ms=(last_step - first_call) * 1000.0,
                decode_ms=decode_ms,
            )
            own = decoded[member.first_sample : member.first_sample + spec.num_outputs]
            tag = cache.strify(model.pipeline, group if len(members) > 1 else None) if spec.cache else None
            outcomes.append(Decoded(spec, own, model.family.output_kind, tuple(records), timings, pruned_ratio, tag))
        return outcomes


class _StopAtLatents:
    """Stop at the latents: no VAE decode, no previews, nothing handed back."""

    output_type = "latent"
    previews = False

    def collect(self, output, model, members, steps, clock) -> None:
        return None


DECODE: CallEnd = _Decode()
"""The call ends in decoded outputs (the process that answers the jobs)."""
STOP_AT_LATENTS: CallEnd = _StopAtLatents()
"""The call ends at the latents (a process that only helps compute them)."""


class Worker:
    """Runs pipeline calls on the loaded models. Not thread-safe: call it from one thread."""

    def __init__(
        self,
        models: Mapping[str, LoadedModel],
        step_sync: StepSync = own_flags,
        outputs: CallEnd = DECODE,
    ):
        self._models = models
        self._step_sync = step_sync
        self._outputs = outputs

    def run(self, members: Sequence[Member], report: Report | None = None) -> list[Outcome] | None:
        """Run one pipeline call for ``members`` (compatible jobs of one model).

        ``report`` takes the events of the members that follow their steps, one batch per step.

        With ``DECODE``: one outcome per member, ``Decoded`` or JobCancelled for a member
        cancelled before the end. With ``STOP_AT_LATENTS``: None. Raises JobFailed
        (JobOutOfMemory when the device ran out of memory) when the pipeline fails: every
        member of the call fails with it; RankLost when the step sync lost a process.
        Never leaves state behind.
        """
        first = members[0].spec
        model = self._models[first.model]
        pipe = model.pipeline
        offset = 0
        for member in members:
            member.first_sample = offset
            offset += member.spec.num_outputs
        clock = _Clock()
        steps: list[list[StepRecord]] = [[] for _ in members]
        callback = self._step_callback(model, members, clock, steps, report)
        specs = [m.spec for m in members]
        kwargs = {**model.call_defaults, **model.family.build_call_kwargs(pipe, specs)}
        # One generator per output, shared by a job's outputs: a job's noise never depends on the batch.
        generators = []
        for spec in specs:
            generator = torch.Generator(device="cpu").manual_seed(spec.seed)
            generators.extend([generator] * spec.num_outputs)
        hook = pipe.transformer.register_forward_pre_hook(clock.mark_transformer_call)
        try:
            if model.loras is not None:
                model.loras.activate(pipe, first.loras)  # members share their adapters (batcher.batch_key)
            if first.cache is not None:
                # Members share a plan (batcher.batch_key); each decides on its own samples.
                cache.enable_cache(pipe, first.cache.cache_config.copy(), first.cache.calibrator_config)
                if len(members) > 1:
                    cache.set_sample_groups(pipe, [m.spec.num_outputs for m in members])
                if first.loop_steps:  # loops that run other step counts than the timesteps they set
                    cache.set_run_steps(pipe, first.loop_steps)
                if model.family.loops_on_scheduler_copies:  # loops that set copies of the scheduler only
                    cache.start_runs_on_copies(pipe)
            if model.family.step_end_callback:
                kwargs["callback_on_step_end"] = callback
            with (
                torch.inference_mode(),
                _steps_from_scheduler(pipe, None if model.family.step_end_callback else callback),
                _seeded_process_rng(pipe, first.seed if model.family.seeds_process_rng else None),
            ):
                generator = generators if model.family.generator_per_output else generators[0]
                output = pipe(**kwargs, generator=generator, output_type=self._outputs.output_type)
            return self._outputs.collect(output, model, members, steps, clock)
        except JobCancelled:
            return [JobCancelled(m.spec.request_id) for m in members]
        except (RankLost, JobFailed):
            raise
        except torch.OutOfMemoryError as err:
            _free_device_memory()
            raise JobOutOfMemory(first.request_id, f"the device ran out of memory: {err}") from err
        except Exception as err:
            raise JobFailed(first.request_id, f"the pipeline failed: {type(err).__name__}: {err}") from err
        finally:
            hook.remove()
            self._reset(pipe)

    def _step_callback(
        self,
        model: LoadedModel,
        members: Sequence[Member],
        clock: _Clock,
        steps: list[list[StepRecord]],
        report: Report | None,
    ) -> Callable[..., dict]:
        total = members[0].spec.denoising_steps
        timesteps = _HostTimesteps()
        previews = self._outputs.previews
        followed = [member.follows_steps and report is not None for member in members]

        # A pipeline that runs several denoising loops (FamilySpec.denoising_loops) starts each at
        # index 0: events number the steps of all loops in order, the cache reads the loop's own index.
        done = 0
        last_index = -1

        def on_step_end(pipe, index: int, timestep, callback_kwargs: dict) -> dict:
            nonlocal done, last_index, timesteps
            now = time.perf_counter()
            step_start = clock.last_step_end or clock.first_transformer_call or clock.start
            clock.last_step_end = now
            cached_run = members[0].spec.cache is not None
            if index <= last_index:  # a new loop: its scheduler's timesteps were set anew
                timesteps = _HostTimesteps()
            last_index = index
            loop_index, index = index, done
            done += 1
            t = timesteps.value(pipe, loop_index, timestep)
            # Every process of the engine drops the same jobs at the same step.
            cancelled = self._step_sync([member.cancelled for member in members])
            # Cancel flags are read after the step so a job sees its progress up to the stop. A
            # cancelled job gets no more events; when none is left, raising here skips the
            # remaining steps and the VAE decode.
            live = []
            events: list[tuple[Member, JobEvent]] = []
            for group, (member, records) in enumerate(zip(members, steps, strict=True)):
                # With several members, each is a sample group of the cache with its own decisions.
                record = _step_record(pipe, loop_index, index, cached_run, group)
                records.append(record)
                if cancelled[group]:
                    continue
                member.steps_done += 1
                live.append(member)
                if not followed[group]:
                    continue  # nobody reads its step events: none are made
                event = StepEvent(
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
                events.append((member, event))
            if not live:
                raise JobCancelled(members[0].spec.request_id)
            for group, member in enumerate(members):
                every = member.spec.preview_every if previews and followed[group] and not cancelled[group] else 0
                if every and (index + 1) % every == 0 and index + 1 < total:
                    events.append((member, self._preview(model, member, index, callback_kwargs["latents"])))
            if events:
                report(events)  # one hand-over per step, whatever the batch size
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
    its scheduler's timesteps falls back to reading each one. A pipeline that gives each latent
    frame its own timestep (SkyReels-V2's diffusion forcing) reports its noisiest frame's.
    """

    def __init__(self) -> None:
        self._values: list[float] | None = None
        self._checked = False

    def value(self, pipe, index: int, timestep) -> float:
        if not isinstance(timestep, torch.Tensor):
            return float(timestep)
        if timestep.numel() > 1:  # one per latent frame (diffusion forcing): the noisiest frame's
            timestep = timestep.max()
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


@contextlib.contextmanager
def _seeded_process_rng(pipe: DiffusionPipeline, seed: int | None) -> Iterator[None]:
    """With a ``seed``, torch's process-wide random state (CPU and the pipeline's accelerator) is seeded
    with it for the block and restored afterwards, for pipelines that draw from it besides the request's
    generator (``FamilySpec.seeds_process_rng``); ``None`` = left alone."""
    if seed is None:
        yield
        return
    device = pipe._execution_device
    if device.type == "cpu":
        devices, device_type = [], "cuda"  # the CPU state alone
    else:
        index = device.index if device.index is not None else getattr(torch, device.type).current_device()
        devices, device_type = [index], device.type
    with torch.random.fork_rng(devices=devices, device_type=device_type):
        torch.manual_seed(seed)
        yield


def _free_device_memory() -> None:
    """Give cached blocks back after an out-of-memory error so the next call starts clean."""
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


@contextlib.contextmanager
def _steps_from_scheduler(pipe, callback: Callable[..., dict] | None):
    """For pipelines without ``callback_on_step_end``: call ``callback`` after each scheduler step, with
    the step's index in its denoising loop (from 0 again after each ``set_timesteps``, as a pipeline's
    own callback counts: Kandinsky 6 SR sets its timesteps anew for every batch of tiles)."""
    if callback is None:
        yield
        return
    scheduler = pipe.scheduler
    own = {name: scheduler.__dict__.get(name) for name in ("step", "set_timesteps")}
    step, set_timesteps = scheduler.step, scheduler.set_timesteps
    index = 0

    @functools.wraps(step)
    def step_and_report(model_output, timestep, *args, **kwargs):
        nonlocal index
        out = step(model_output, timestep, *args, **kwargs)
        latents = out.prev_sample if hasattr(out, "prev_sample") else out[0]
        callback(pipe, index, timestep, {"latents": latents})
        index += 1
        return out

    @functools.wraps(set_timesteps)
    def set_timesteps_and_restart(*args, **kwargs):
        nonlocal index
        index = 0
        return set_timesteps(*args, **kwargs)

    scheduler.step = step_and_report
    scheduler.set_timesteps = set_timesteps_and_restart
    try:
        yield
    finally:
        for name, method in own.items():
            if method is None:
                scheduler.__dict__.pop(name, None)
            else:
                setattr(scheduler, name, method)


def _step_record(pipe, loop_index: int, index: int, cached_run: bool, sample_group: int) -> StepRecord:
    """Step ``index`` of the call, step ``loop_index`` of its denoising loop (the cache's step)."""
    if not cached_run:
        return StepRecord(step=index)
    main, cfg = cache.step_outcomes(pipe, loop_index, sample_group)
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


def _decoded(output, spec: JobSpec, family: FamilySpec) -> np.ndarray:
    """The call's images (N, H, W, 3), layered images (N, layers, H, W, 4) or videos (N, F, H, W, 3), floats
    in [0, 1]. An RGBA output of a family that does not keep alpha (a VAE that decodes it, as Qwen-Image
    2.1's) is composited over white."""
    attribute = "frames" if family.output_kind == "video" else "images"
    if family.read_output is not None:
        decoded = family.read_output(output)
    else:
        decoded = getattr(output, attribute, None)
    if decoded is None:
        raise JobFailed(spec.request_id, f"the pipeline returned no {attribute}")
    pixels = np.asarray(decoded, dtype=np.float32)
    if spec.layers is not None:  # a layered decomposition's images come flat, output by output
        pixels = pixels.reshape(-1, spec.layers, *pixels.shape[1:])
    if pixels.shape[-1] == 4 and not family.outputs_alpha:
        alpha = pixels[..., 3:]
        pixels = pixels[..., :3] * alpha + (1.0 - alpha)
    return pixels


def _encode(decoded: np.ndarray, spec: JobSpec, kind: str) -> list:
    """One job's share of the decoded outputs, encoded as it asks; a layered output's layers are one
    image each, output by output."""
    if kind == "video":
        return encoding.encode_videos(decoded, spec.output_format, spec.fps, spec.output_quality)
    return encoding.encode_images(decoded.reshape(-1, *decoded.shape[-3:]), spec.output_format, spec.output_quality)


__all__ = [
    "DECODE",
    "STOP_AT_LATENTS",
    "CallEnd",
    "Decoded",
    "Member",
    "Outcome",
    "Report",
    "StepSync",
    "Worker",
    "own_flags",
]
