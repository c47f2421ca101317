"""The asynchronous engine core: admission, the bounded FIFO queue, batching, one device
thread, per-job event streams, cancellation.

Everything here runs on the server's event loop except the executor's calls, which run
in the engine's single device thread (one device, one pipeline call at a time). The
core hands each batch to its ``Executor`` (``executor.py``: this process alone, or every
rank of a multi-process engine in lockstep) and never knows which. The worker hands a
call's step events over once per step (one ``loop.call_soon_threadsafe`` for the whole
batch), so a job's events arrive in order and always before its completion; a job whose
caller reads only the completion (a unary Generate) gets no step events made at all.

A call's decoded outputs are encoded (PNG, JPEG, WebP, MP4) on a small pool of encoder
threads while the device thread starts the next batch: a job counts as running until its
outputs are encoded, and its completion comes after them.

Cancellation (Cancel, a client that goes away, a deadline): a queued job leaves
the queue at once. A running job alone in its pipeline call stops at the next
step boundary (no VAE decode) and the next call starts right after. A running
job that shares its call with others leaves at once: its caller gets CANCELLED
immediately, its outputs are dropped, and the others run on; when the last live
job of a call is cancelled, the call stops at the next step boundary.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import dataclasses
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping

from PIL import Image

from engine_service.config import BatchingConfig, Limits
from engine_service.errors import (
    DuplicateRequestId,
    EngineError,
    EngineNotReady,
    JobCancelled,
    JobFailed,
    JobOutOfMemory,
    ModelLoadError,
    QueueFull,
    RankLost,
    UnknownRequest,
)
from engine_service.jobs import (
    DEFAULT_FPS,
    CameraTrajectory,
    CompletedEvent,
    JobEvent,
    JobResult,
    JobSpec,
    JobStatus,
    OutputFormat,
    PreviewEvent,
    QueuedEvent,
    StartedEvent,
)
from engine_service.models import LoadedModel
from engine_service.quant import CompileCache
from engine_service.runtime.batcher import Batcher
from engine_service.runtime.executor import Executor, LocalExecutor
from engine_service.runtime.metrics import EngineMetrics
from engine_service.runtime.stats import StatsRecorder
from engine_service.runtime.worker import Decoded, Member, Outcome, Report

logger = logging.getLogger(__name__)

#: Seconds shutdown waits for a cancelled running job to reach its next step boundary.
STOP_WAIT_S = 30.0
#: Threads that encode outputs off the device thread (PIL and ffmpeg release the GIL while they work).
ENCODE_THREADS = 2


@dataclasses.dataclass
class _Finished:
    """End-of-stream marker on a job's event queue; ``error`` is None on success."""

    error: EngineError | None


class _EventQueue(asyncio.Queue):
    """A job's undelivered events. A preview replaces an older undelivered one, so a client that
    reads slowly (or not at all) makes the queue hold at most one preview; the other events are
    bounded by the request's steps."""

    def _put(self, item) -> None:
        if isinstance(item, PreviewEvent):
            self._queue = collections.deque(e for e in self._queue if not isinstance(e, PreviewEvent))
        self._queue.append(item)


@dataclasses.dataclass(eq=False)
class Job:
    """A job's life inside the engine."""

    spec: JobSpec
    events: asyncio.Queue
    accepted_at: float = dataclasses.field(default_factory=time.perf_counter)
    cancel_event: threading.Event = dataclasses.field(default_factory=threading.Event)
    status: JobStatus = JobStatus.QUEUED
    started_at: float | None = None
    announced_position: int = -1
    cancel_reason: str = "cancelled"
    step_events: bool = True
    """Whether the caller reads step and preview events (False: only the completion)."""
    member: Member | None = None
    """The job in its pipeline call, once it runs."""

    @property
    def request_id(self) -> str:
        return self.spec.request_id

    @property
    def steps_run(self) -> int:
        """Denoising steps the job has run so far."""
        return 0 if self.member is None else self.member.steps_done

    def elapsed_ms(self) -> float:
        """Milliseconds since the job was accepted."""
        return (time.perf_counter() - self.accepted_at) * 1000.0


class AsyncEngine:
    """Owns the queue and the worker thread; the server's only way to run pipelines."""

    def __init__(
        self,
        models: Mapping[str, LoadedModel],
        default_model: str,
        limits: Limits,
        device: str,
        batching: BatchingConfig | None = None,
        compile_cache: CompileCache | None = None,
        executor: Executor | None = None,
        encode_threads: int = ENCODE_THREADS,
    ):
        """``encode_threads``: threads that encode outputs; 0 encodes them on the device thread
        right after each call (the next call waits for it; for comparison)."""
        self.models = dict(models)
        self._compile_cache = compile_cache
        self.default_model = default_model
        self.limits = limits
        self.device = device
        self.batching = batching or BatchingConfig()
        self.metrics = EngineMetrics(device)
        self.metrics.bind_load(lambda: self.queue_depth, lambda: self.running)
        compiled = {name: model.compile_stats for name, model in self.models.items()}
        self.stats = StatsRecorder(list(self.models), self.metrics, compiled)
        self._batcher = Batcher(self.batching, limits.max_outputs)
        self.executor = executor or LocalExecutor(self.models)
        """Runs the pipeline calls: in this process, or on every rank of a multi-process engine."""
        self._device = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="ditserve-worker")
        self._pending: collections.deque[Job] = collections.deque()
        self._by_id: dict[str, Job] = {}
        self._encoders = (
            concurrent.futures.ThreadPoolExecutor(max_workers=encode_threads, thread_name_prefix="ditserve-encode")
            if encode_threads > 0
            else None
        )
        self._running: list[Job] = []
        """The jobs of the pipeline call in progress (cancelled ones leave it at once)."""
        self._undelivered: set[Job] = set()
        """Finished jobs whose caller has not yet taken the result: they count against ``max_queue``."""
        self._step_s: float | None = None
        """Recent seconds per denoising step (moving average over finished requests), for retry hints."""
        self._encoding: dict[Job, asyncio.Task] = {}
        """Jobs whose call is done and whose outputs are being encoded."""
        self._wakeup = asyncio.Event()
        self._loop_task: asyncio.Task | None = None
        self._ready = False
        self._accepting = False
        self._warming_up = False
        self.broken: str | None = None
        """Why the engine stopped serving for good (a rank of a multi-process engine was lost)."""
        self._broken_listeners: list[Callable[[str], None]] = []

    # -- lifecycle ---------------------------------------------------------

    @property
    def ready(self) -> bool:
        """True once every model is warmed up and until shutdown starts."""
        return self._ready and self._accepting

    async def start(self) -> None:
        """Warm every model up in the device thread (at each warm-up size: compiled models build
        their graphs here), save the compile cache, then start taking jobs."""
        loop = asyncio.get_running_loop()
        self._warming_up = True  # stays True when this coroutine is cancelled mid-warm-up
        for name, model in self.models.items():
            for spec in warmup_specs(model, self._batcher.max_samples):
                await loop.run_in_executor(self._device, self._warm_up, name, spec)
        self._warming_up = False
        if self._compile_cache is not None:
            await loop.run_in_executor(self._device, self._compile_cache.save)
        self._loop_task = asyncio.create_task(self._run_loop(), name="ditserve-engine-loop")
        self._ready = True
        self._accepting = True

    def on_broken(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(reason)`` on the event loop when the engine stops serving for good."""
        self._broken_listeners.append(listener)

    def _break(self, reason: str) -> None:
        if self.broken is not None:
            return
        self.broken = reason
        self._accepting = False
        for job in list(self._pending):
            self._cancel_queued(job, f"cancelled: {reason}")
        for listener in self._broken_listeners:
            listener(reason)

    async def shutdown(self, grace_s: float) -> None:
        """Stop accepting; let queued and running jobs finish within ``grace_s``; cancel the rest."""
        self._accepting = False
        deadline = time.monotonic() + grace_s
        while (self._pending or self._running or self._encoding) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        reason = "cancelled: the engine is shutting down"
        for job in list(self._pending):
            self._cancel_queued(job, reason)
        for job in list(self._encoding):
            self.cancel_job(job, reason)
        stuck = False
        if self._running:
            for job in list(self._running):
                self.cancel_job(job, reason)
            # The call stops at its next step boundary; a step (or a VAE decode) that never ends
            # must not keep the process from exiting.
            stop_by = time.monotonic() + STOP_WAIT_S
            while self._running and time.monotonic() < stop_by:
                await asyncio.sleep(0.02)
            stuck = bool(self._running)
            if stuck:
                ids = ", ".join(job.request_id for job in self._running)
                logger.error("request(s) %s did not stop within %.0f s; exiting anyway", ids, STOP_WAIT_S)
        if self._loop_task is not None:
            self._loop_task.cancel()
            try:
                await self._loop_task
            except asyncio.CancelledError:
                pass
        # An abandoned warm-up call may still run on the device thread: never wait for it.
        self._device.shutdown(wait=not (stuck or self._warming_up), cancel_futures=True)
        if self._encoders is not None:
            self._encoders.shutdown(wait=False, cancel_futures=True)

    # -- admission and events ----------------------------------------------

    def submit(self, spec: JobSpec, *, step_events: bool = True) -> Job:
        """Queue a validated job. Raises EngineNotReady, DuplicateRequestId or QueueFull.

        ``step_events=False``: the caller reads only the job's completion (a unary call), so
        no step or preview events are made for it; its result still carries every step's record.
        """
        if self.broken is not None:
            raise EngineNotReady(f"the engine is not serving: {self.broken}")
        if not self.ready:
            raise EngineNotReady("the engine is not serving (warming up or shutting down)")
        if spec.request_id in self._by_id:
            raise DuplicateRequestId(spec.request_id)
        if len(self._pending) + len(self._undelivered) >= self.limits.max_queue:
            raise QueueFull(self.limits.max_queue, retry_after=self._retry_hint_s())
        if self._pending and self._queued_input_pixels() + _input_pixels(spec) > self.limits.max_queued_input_pixels:
            raise QueueFull(self.limits.max_queue, retry_after=self._retry_hint_s())
        job = Job(spec=spec, events=_EventQueue(), step_events=step_events)
        self._pending.append(job)
        self._by_id[spec.request_id] = job
        self._announce_positions()
        self._wakeup.set()
        return job

    async def events(self, job: Job) -> AsyncIterator[JobEvent]:
        """The job's events in order, ending with CompletedEvent; raises JobCancelled or JobFailed.

        A finished job counts against ``max_queue`` until this iterator ends or is closed.
        """
        try:
            while True:
                item = await job.events.get()
                if isinstance(item, _Finished):
                    if item.error is not None:
                        raise item.error
                    return
                yield item
        finally:
            self._undelivered.discard(job)

    def cancel(self, request_id: str) -> str:
        """Cancel by id: ``"queued"`` (removed now) or ``"running"`` (stops at the next step)."""
        job = self._by_id.get(request_id)
        if job is None:
            raise UnknownRequest(request_id)
        return self.cancel_job(job, "cancelled by Cancel")

    def cancel_job(self, job: Job, reason: str) -> str:
        """Cancel a job the caller holds (client gone, deadline passed). Idempotent."""
        if job.status is JobStatus.QUEUED:
            self._cancel_queued(job, reason)
            return "queued"
        if job.status is JobStatus.RUNNING:
            job.cancel_reason = reason
            job.cancel_event.set()
            encoding = self._encoding.pop(job, None)
            if encoding is not None:
                # Its call is over: it leaves now, and its outputs are dropped when encoded.
                encoding.cancel()
                self._finish_cancelled(job)
            elif any(other is not job and not other.cancel_event.is_set() for other in self._running):
                # Others keep the pipeline call going: this job leaves it now, its outputs are dropped.
                self._finish_cancelled(job)
            return "running"
        self._undelivered.discard(job)  # its caller went away: the result will never be taken
        return job.status.name.lower()

    def run_on_worker(self, fn, *args) -> concurrent.futures.Future:
        """Run ``fn(*args)`` on the engine's device thread, between jobs (benchmarks, maintenance).

        All device work of the engine happens on this one thread: on CPU, a second thread
        running torch ops brings a second OpenMP pool, and the two pools slow each other down.
        """
        return self._device.submit(fn, *args)

    @property
    def queue_depth(self) -> int:
        return len(self._pending)

    @property
    def running(self) -> int:
        """Jobs in the pipeline call in progress or having their outputs encoded."""
        on_device = sum(1 for job in self._running if job.status is JobStatus.RUNNING)
        return on_device + len(self._encoding)

    # -- internals ---------------------------------------------------------

    def _cancel_queued(self, job: Job, reason: str) -> None:
        self._pending.remove(job)
        self._finish(job, JobStatus.CANCELLED, JobCancelled(job.request_id, reason))
        self._announce_positions()

    def _finish(self, job: Job, status: JobStatus, error: EngineError | None) -> None:
        job.status = status
        self._by_id.pop(job.request_id, None)
        total_ms = job.elapsed_ms()
        queue_ms = None if job.started_at is None else (job.started_at - job.accepted_at) * 1000.0
        if status is JobStatus.CANCELLED:
            self.stats.record_unfinished(job.spec.model, "cancelled", total_ms, queue_ms, job.steps_run)
        elif status is JobStatus.FAILED:
            self.stats.record_unfinished(job.spec.model, "failure", total_ms, queue_ms, job.steps_run)
        job.events.put_nowait(_Finished(error))

    def _finish_cancelled(self, job: Job) -> None:
        logger.info(
            "request %s %s after %d of %d steps, %.0f ms",
            job.request_id,
            job.cancel_reason,
            job.steps_run,
            job.spec.denoising_steps,
            job.elapsed_ms(),
        )
        self._finish(job, JobStatus.CANCELLED, JobCancelled(job.request_id, job.cancel_reason))

    def _announce_positions(self) -> None:
        for position, job in enumerate(self._pending):
            if job.announced_position != position:
                job.announced_position = position
                job.events.put_nowait(QueuedEvent(position=position, request_id=job.request_id))

    def _queued_input_pixels(self) -> int:
        return sum(_input_pixels(job.spec) for job in self._pending)

    def _retry_hint_s(self) -> float:
        """A retry delay: the steps left of the running and queued jobs at the recent time per step
        (before any request finished, the mean successful request time times the queue length); at least 1 s."""
        if self._step_s is not None:
            left = sum(max(0, job.spec.denoising_steps - job.steps_run) for job in self._running)
            left += sum(job.spec.denoising_steps for job in self._pending)
            return max(1.0, left * self._step_s)
        done = [c.success for c in self.stats.models.values() if c.success.count]
        mean_s = sum(d.total_ms for d in done) / max(1, sum(d.count for d in done)) / 1000.0
        return max(1.0, mean_s * max(1, len(self._pending)))

    async def _run_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._pending:
                self._wakeup.clear()
                if self.executor.heartbeat_s is None:
                    await self._wakeup.wait()
                    continue
                try:
                    await asyncio.wait_for(self._wakeup.wait(), self.executor.heartbeat_s)
                except asyncio.TimeoutError:
                    await self._heartbeat(loop)
                continue
            wait_s = self._batcher.wait_s(self._pending)
            if wait_s > 0:
                # Give compatible requests a short window to join; any arrival re-evaluates.
                self._wakeup.clear()
                try:
                    await asyncio.wait_for(self._wakeup.wait(), wait_s)
                except asyncio.TimeoutError:
                    pass
                continue
            batch = self._batcher.take(self._pending)
            self._announce_positions()
            await self._run_batch(loop, batch)

    async def _heartbeat(self, loop: asyncio.AbstractEventLoop) -> None:
        """While idle, check that every process the executor needs still answers."""
        if self.broken is not None:
            return
        try:
            await loop.run_in_executor(self._device, self.executor.check)
        except RankLost as err:
            self._break(str(err))

    async def _run_batch(self, loop: asyncio.AbstractEventLoop, jobs: list[Job]) -> None:
        started_at = time.perf_counter()
        members = []
        for job in jobs:
            job.status = JobStatus.RUNNING
            job.started_at = started_at
            queue_ms = (started_at - job.accepted_at) * 1000.0
            job.events.put_nowait(
                StartedEvent(seed=job.spec.seed, total_steps=job.spec.denoising_steps, queue_ms=queue_ms)
            )
            job.member = Member(job.spec, job.cancel_event, job.step_events, queue_ms)
            members.append(job.member)
        self._running = list(jobs)
        self.metrics.record_batch(len(jobs))
        if len(jobs) > 1:
            logger.info("batch of %d: %s", len(jobs), ", ".join(job.request_id for job in jobs))
        try:
            run = self.executor.execute if self._encoders is not None else self._execute
            outcomes = await loop.run_in_executor(self._device, run, members, self._reporter(loop))
        except RankLost as err:
            logger.error(
                "request(s) %s failed and the engine stops serving: %s", ", ".join(j.request_id for j in jobs), err
            )
            for job in self._live(jobs):
                self._finish(job, JobStatus.FAILED, RankLost(str(err)))
            self._break(str(err))
        except JobFailed as err:
            # The pipeline's own exception (with its traceback) is the cause; it is logged, never sent.
            ids = ", ".join(job.request_id for job in jobs)
            logger.error("request(s) %s failed: %s", ids, err, exc_info=err.__cause__)
            for job in self._live(jobs):
                # The client learns that it failed, never the exception's text (the log has it).
                self._finish(job, JobStatus.FAILED, type(err)(job.request_id, _failure_message(err, job)))
        except Exception as err:  # a bug in the worker itself: fail the jobs, keep serving
            logger.exception("request(s) %s: unexpected worker error", ", ".join(job.request_id for job in jobs))
            for job in self._live(jobs):
                self._finish(job, JobStatus.FAILED, JobFailed(job.request_id, _failure_message(err, job)))
        else:
            for job, outcome in zip(jobs, outcomes, strict=True):
                if job.status is not JobStatus.RUNNING:
                    continue  # left the call earlier
                if isinstance(outcome, Decoded):
                    # Encoded off the device thread, which takes the next batch meanwhile.
                    self._encoding[job] = asyncio.create_task(self._encode(loop, job, outcome))
                elif isinstance(outcome, JobResult):
                    self._complete(job, outcome)
                else:
                    self._finish_cancelled(job)
        finally:
            self._running = []

    async def _encode(self, loop: asyncio.AbstractEventLoop, job: Job, decoded: Decoded) -> None:
        """Encode a finished job's outputs on an encoder thread, then complete it."""
        try:
            result = await loop.run_in_executor(self._encoders, decoded.encode)
        except Exception as err:
            if self._encoding.pop(job, None) is not None:
                logger.exception("request %s: encoding failed", job.request_id)
                self._finish(job, JobStatus.FAILED, JobFailed(job.request_id, f"encoding failed: {err}"))
            return
        if self._encoding.pop(job, None) is not None:
            self._complete(job, result)

    def _warm_up(self, name: str, spec: JobSpec) -> None:
        """Device thread: run ``spec`` once on model ``name`` and discard the result. A failed run
        raises ModelLoadError naming the model: it could not serve any request like it."""
        start = time.perf_counter()
        try:
            self._execute([Member(spec)])
        except JobFailed as err:
            size = f"{spec.width}x{spec.height}"
            raise ModelLoadError(f"model {name!r}: the warm-up run at {size} failed: {err}") from err
        elapsed = time.perf_counter() - start
        logger.info("warmed up model %r at %dx%d in %.2f s", name, spec.width, spec.height, elapsed)

    def _execute(self, members: list[Member], report: Report | None = None) -> list[JobResult | JobCancelled]:
        """Device thread: run one call through the executor and encode its outputs right here."""
        return [_encoded(outcome) for outcome in self.executor.execute(members, report)]

    @staticmethod
    def _live(jobs: list[Job]) -> list[Job]:
        return [job for job in jobs if job.status is JobStatus.RUNNING]

    def _reporter(self, loop: asyncio.AbstractEventLoop) -> Report:
        """The worker's ``report`` for a call: hands one step's events to the loop in one go."""
        jobs = {job.member: job for job in self._running}

        def deliver(events: list[tuple[Member, JobEvent]]) -> None:
            for member, event in events:
                job = jobs[member]
                if job.status is JobStatus.RUNNING:  # else it left its call already; its stream has ended
                    job.events.put_nowait(event)

        def report(events: list[tuple[Member, JobEvent]]) -> None:
            loop.call_soon_threadsafe(deliver, events)

        return report

    def _complete(self, job: Job, result: JobResult) -> None:
        total_ms = job.elapsed_ms()
        result = dataclasses.replace(result, timings=dataclasses.replace(result.timings, total_ms=total_ms))
        self.stats.record_success(result, total_ms)
        t = result.timings
        logger.info(
            "request %s done in %.0f ms (queue %.0f, prepare %.0f, denoise %.0f, decode %.0f, encode %.0f)",
            job.request_id,
            total_ms,
            t.queue_ms,
            t.prepare_ms,
            t.denoise_ms,
            t.decode_ms,
            t.encode_ms,
        )
        steps = result.computed_steps + result.cached_steps
        if steps and t.denoise_ms > 0:
            step_s = t.denoise_ms / 1000.0 / steps
            self._step_s = step_s if self._step_s is None else 0.8 * self._step_s + 0.2 * step_s
        job.events.put_nowait(CompletedEvent(result))
        self._undelivered.add(job)
        self._finish(job, JobStatus.FINISHED, None)


def _input_pixels(spec: JobSpec) -> int:
    """Pixels of the decoded input images and input video frames ``spec`` holds."""
    images = sum(image.width * image.height for _role, image in spec.input_images)
    return images + sum(frame.width * frame.height for _role, frames in spec.input_videos for frame in frames)


def _failure_message(err: Exception, job: Job) -> str:
    """What the client of a failed job is told: no exception text, class name or address."""
    if isinstance(err, JobOutOfMemory):
        return f"request {job.request_id}: the device ran out of memory; retry smaller or later"
    return f"request {job.request_id} failed inside the engine; the server log has the details"


def _encoded(outcome: Outcome) -> JobResult | JobCancelled:
    return outcome.encode() if isinstance(outcome, Decoded) else outcome


#: Steps of a warm-up request.
_WARMUP_STEPS = 2


def warmup_specs(model: LoadedModel, max_samples: int = 1) -> list[JobSpec]:
    """The requests run before the engine reports SERVING: one per warm-up size (default: the model's size).

    A compiled model that may run calls of up to ``max_samples`` outputs also runs two outputs at the
    first size: its graphs mark the batch dimension dynamic, and torch gives a batch of one graphs of
    its own, so one and two cover every batch the engine can form."""
    sizes = model.warmup_sizes or ((model.default_width, model.default_height),)
    specs = [warmup_spec(model, width, height) for width, height in sizes]
    if model.loras is not None and model.loras.hotswap:
        # Compiled blocks get their graph with the adapter slots on, besides the base one.
        lora_set = model.loras.warmup_set()
        specs += [dataclasses.replace(spec, request_id=f"{spec.request_id}-lora", loras=lora_set) for spec in specs]
    if model.speed.compile and max_samples > 1 and (model.family.max_outputs or 2) > 1:
        batch = specs[0]
        # A size that follows the input video gives loops per output (FamilySpec.size_from_video).
        loops = batch.denoising_loops * (2 if model.family.size_from_video is not None else 1)
        specs.append(
            dataclasses.replace(batch, request_id=f"{batch.request_id}-batch2", num_outputs=2, denoising_loops=loops)
        )
    return specs


def warmup_spec(model: LoadedModel, width: int | None = None, height: int | None = None) -> JobSpec:
    """A two-step request at ``width`` x ``height`` (default: the model's size); a pipeline of a fixed
    sigma schedule (``FamilySpec.schedule_steps``) runs the steps of its schedule.

    A family that requires input images gets a plain grey picture of that size for each
    required role (and each ControlNet), and one that requires input videos a grey video of its
    default frame count for each required video role; a family whose size follows its input image
    (``FamilySpec.size_from_input``) renders the size that picture gives, and one whose size follows
    its input video (``FamilySpec.size_from_video``) the size and loops that video gives.
    """
    width = width or model.default_width
    height = height or model.default_height
    # A family that reads its input images with their alpha channel gets an opaque one.
    grey = Image.new("RGBA" if model.family.outputs_alpha else "RGB", (width, height), (128, 128, 128, 255))
    # One picture per required role; a ControlNet model gets one control image per ControlNet.
    roles = [role for role in model.family.required_roles if role != "control"]
    if "control" in model.family.required_roles:
        roles += ["control"] * max(model.control_images, 1)
    images = tuple((role, grey) for role in roles)
    # A grey video of the default frame count for each required video role (at least the frames a model
    # that continues its video continues from).
    history = model.family.history_frames(model.call_defaults) if model.family.history_frames is not None else 0
    count = max(model.default_frames, history)
    videos = tuple((role, (grey.convert("RGB"),) * count) for role in model.family.required_video_roles)
    if model.family.size_from_input is not None and "image" in roles:
        # The pipeline renders the size it derives from the picture, whatever the job says.
        width, height = model.family.size_from_input(model.pipeline, width, height, model.call_defaults)
    plan = model.family.denoising_loops
    loops = plan(model.default_frames, model.call_defaults)[0] if plan is not None else 1
    from_video = model.family.size_from_video
    if from_video is not None and videos:
        sized = from_video(model.pipeline, width, height, model.call_defaults)
        if isinstance(sized, str):
            raise ModelLoadError(f"model {model.name!r}: its {width}x{height} warm-up video: {sized}")
        width, height, loops = sized
    # A pipeline of a fixed sigma schedule runs its steps whatever the job says: the warm-up counts them.
    steps = model.default_steps if model.family.schedule_steps is not None else _WARMUP_STEPS
    per_loop, loop_steps = model.family.loop_steps, ()
    if per_loop is not None:
        loop_steps = tuple(per_loop(model.pipeline, steps, loops, model.call_defaults))
    return JobSpec(
        request_id=f"warmup-{model.name}-{width}x{height}",
        model=model.name,
        prompt=model.family.warmup_prompt,
        negative_prompt="",
        width=width,
        height=height,
        num_inference_steps=steps,
        guidance_scale=model.default_guidance_scale,
        seed=0,
        num_outputs=1,
        num_frames=model.default_frames,
        fps=DEFAULT_FPS if model.family.output_kind == "video" else 0,
        output_format=OutputFormat.PNG,
        output_quality=90,
        preview_every=0,
        input_images=images,
        input_videos=videos,
        # Image-to-image pipelines run every step at strength 1 (aMUSEd's count, int(steps x 1), too).
        strength=1.0 if model.family.default_strength is not None else None,
        controlnet_conditioning_scales=(1.0,) * model.control_images,
        denoising_loops=loops,
        loop_steps=loop_steps,
        layers=model.default_layers,
        task_prompt=model.family.warmup_prompt if model.family.takes_task_prompt else "",
        # A world model's camera stays at rest over the picture.
        camera=CameraTrajectory.still(model.default_frames, width, height) if model.family.takes_camera else None,
    )
