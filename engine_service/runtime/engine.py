"""The asynchronous engine: admission, the bounded FIFO queue, batching, one worker thread,
per-job event streams, cancellation.

Everything here runs on the server's event loop except ``Worker.run``, which runs
in the engine's single worker thread (one device, one pipeline call at a time).
The worker reports events through ``loop.call_soon_threadsafe``, so a job's
events arrive in order and always before its completion.

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
from typing import TYPE_CHECKING

from PIL import Image

from engine_service.config import BatchingConfig, Limits
from engine_service.errors import (
    DuplicateRequestId,
    EngineError,
    EngineNotReady,
    JobCancelled,
    JobFailed,
    QueueFull,
    RankLost,
    UnknownRequest,
)
from engine_service.jobs import (
    DEFAULT_FPS,
    CompletedEvent,
    JobEvent,
    JobResult,
    JobSpec,
    JobStatus,
    OutputFormat,
    QueuedEvent,
    StartedEvent,
    StepEvent,
)
from engine_service.models import LoadedModel
from engine_service.quant import CompileCache
from engine_service.runtime.batcher import Batcher
from engine_service.runtime.metrics import EngineMetrics
from engine_service.runtime.stats import StatsRecorder
from engine_service.runtime.worker import Member, Worker

if TYPE_CHECKING:
    from engine_service.parallel.lockstep import Lockstep

logger = logging.getLogger(__name__)

#: Seconds shutdown waits for a cancelled running job to reach its next step boundary.
STOP_WAIT_S = 30.0


@dataclasses.dataclass
class _Finished:
    """End-of-stream marker on a job's event queue; ``error`` is None on success."""

    error: EngineError | None


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
    steps_run: int = 0
    """Denoising steps reported for this job so far."""

    @property
    def request_id(self) -> str:
        return self.spec.request_id

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
        lockstep: Lockstep | None = None,
    ):
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
        self.lockstep = lockstep
        """Set on rank 0 of a multi-process engine: the other ranks run every call with it."""
        self._worker = Worker(self.models, lockstep)
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="ditserve-worker")
        self._pending: collections.deque[Job] = collections.deque()
        self._by_id: dict[str, Job] = {}
        self._running: list[Job] = []
        """The jobs of the pipeline call in progress (cancelled ones leave it at once)."""
        self._wakeup = asyncio.Event()
        self._loop_task: asyncio.Task | None = None
        self._ready = False
        self._accepting = False
        self.broken: str | None = None
        """Why the engine stopped serving for good (a rank of a multi-process engine was lost)."""
        self._broken_listeners: list[Callable[[str], None]] = []

    # -- lifecycle ---------------------------------------------------------

    @property
    def ready(self) -> bool:
        """True once every model is warmed up and until shutdown starts."""
        return self._ready and self._accepting

    async def start(self) -> None:
        """Warm every model up in the worker thread (at each warm-up size: compiled models build
        their graphs here), save the compile cache, then start taking jobs."""
        loop = asyncio.get_running_loop()
        for name, model in self.models.items():
            for spec in warmup_specs(model, self._batcher.max_samples):
                await loop.run_in_executor(self._executor, self._worker.warm_up, name, spec)
        if self._compile_cache is not None:
            await loop.run_in_executor(self._executor, self._compile_cache.save)
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
        while (self._pending or self._running) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        reason = "cancelled: the engine is shutting down"
        for job in list(self._pending):
            self._cancel_queued(job, reason)
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
        self._executor.shutdown(wait=not stuck, cancel_futures=True)

    # -- admission and events ----------------------------------------------

    def submit(self, spec: JobSpec) -> Job:
        """Queue a validated job. Raises EngineNotReady, DuplicateRequestId or QueueFull."""
        if self.broken is not None:
            raise EngineNotReady(f"the engine is not serving: {self.broken}")
        if not self.ready:
            raise EngineNotReady("the engine is not serving (warming up or shutting down)")
        if spec.request_id in self._by_id:
            raise DuplicateRequestId(spec.request_id)
        if len(self._pending) >= self.limits.max_queue:
            raise QueueFull(self.limits.max_queue, retry_after=self._retry_hint_s())
        job = Job(spec=spec, events=asyncio.Queue())
        self._pending.append(job)
        self._by_id[spec.request_id] = job
        self._announce_positions()
        self._wakeup.set()
        return job

    async def events(self, job: Job) -> AsyncIterator[JobEvent]:
        """The job's events in order, ending with CompletedEvent; raises JobCancelled or JobFailed."""
        while True:
            item = await job.events.get()
            if isinstance(item, _Finished):
                if item.error is not None:
                    raise item.error
                return
            yield item

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
            if any(other is not job and not other.cancel_event.is_set() for other in self._running):
                # Others keep the pipeline call going: this job leaves it now, its outputs are dropped.
                self._finish_cancelled(job)
            return "running"
        return job.status.name.lower()

    def run_on_worker(self, fn, *args) -> concurrent.futures.Future:
        """Run ``fn(*args)`` on the engine's worker thread, between jobs (benchmarks, maintenance).

        All device work of the engine happens on this one thread: on CPU, a second thread
        running torch ops brings a second OpenMP pool, and the two pools slow each other down.
        """
        return self._executor.submit(fn, *args)

    @property
    def queue_depth(self) -> int:
        return len(self._pending)

    @property
    def running(self) -> int:
        return sum(1 for job in self._running if job.status is JobStatus.RUNNING)

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
            job.spec.num_inference_steps,
            job.elapsed_ms(),
        )
        self._finish(job, JobStatus.CANCELLED, JobCancelled(job.request_id, job.cancel_reason))

    def _announce_positions(self) -> None:
        for position, job in enumerate(self._pending):
            if job.announced_position != position:
                job.announced_position = position
                job.events.put_nowait(QueuedEvent(position=position, request_id=job.request_id))

    def _retry_hint_s(self) -> float:
        """A retry delay: the mean successful request time so far times the queue length, at least 1 s."""
        done = [c.success for c in self.stats.models.values() if c.success.count]
        mean_s = sum(d.total_ms for d in done) / max(1, sum(d.count for d in done)) / 1000.0
        return max(1.0, mean_s * max(1, len(self._pending)))

    async def _run_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._pending:
                self._wakeup.clear()
                if self.lockstep is None:
                    await self._wakeup.wait()
                    continue
                try:
                    await asyncio.wait_for(self._wakeup.wait(), self.lockstep.heartbeat_s)
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
        """While idle, check that every rank of a multi-process engine still answers."""
        if self.broken is not None:
            return
        try:
            await loop.run_in_executor(self._executor, self.lockstep.heartbeat)
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
                StartedEvent(seed=job.spec.seed, total_steps=job.spec.num_inference_steps, queue_ms=queue_ms)
            )
            members.append(Member(job.spec, job.cancel_event, self._emitter(loop, job), queue_ms))
        self._running = list(jobs)
        self.metrics.record_batch(len(jobs))
        if len(jobs) > 1:
            logger.info("batch of %d: %s", len(jobs), ", ".join(job.request_id for job in jobs))
        try:
            outcomes = await loop.run_in_executor(self._executor, self._worker.run, members)
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
                self._finish(job, JobStatus.FAILED, type(err)(job.request_id, str(err)))
        except Exception as err:  # a bug in the worker itself: fail the jobs, keep serving
            logger.exception("request(s) %s: unexpected worker error", ", ".join(job.request_id for job in jobs))
            for job in self._live(jobs):
                self._finish(job, JobStatus.FAILED, JobFailed(job.request_id, f"internal error: {type(err).__name__}"))
        else:
            for job, outcome in zip(jobs, outcomes, strict=True):
                if job.status is not JobStatus.RUNNING:
                    continue  # left the call earlier
                if isinstance(outcome, JobResult):
                    self._complete(job, outcome)
                else:
                    self._finish_cancelled(job)
        finally:
            self._running = []

    @staticmethod
    def _live(jobs: list[Job]) -> list[Job]:
        return [job for job in jobs if job.status is JobStatus.RUNNING]

    def _emitter(self, loop: asyncio.AbstractEventLoop, job: Job):
        """The worker's ``emit`` for ``job``: hands events to the loop, where they are counted and queued."""

        def deliver(event: JobEvent) -> None:
            if job.status is not JobStatus.RUNNING:
                return  # left its call already; the stream has ended
            if isinstance(event, StepEvent):
                job.steps_run += 1
            job.events.put_nowait(event)

        def emit(event: JobEvent) -> None:
            loop.call_soon_threadsafe(deliver, event)

        return emit

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
        job.events.put_nowait(CompletedEvent(result))
        self._finish(job, JobStatus.FINISHED, None)


def warmup_specs(model: LoadedModel, max_samples: int = 1) -> list[JobSpec]:
    """The requests run before the engine reports SERVING: one per warm-up size (default: the model's size).

    A compiled model that may run calls of up to ``max_samples`` outputs also runs two outputs at the
    first size: its graphs mark the batch dimension dynamic, and torch gives a batch of one graphs of
    its own, so one and two cover every batch the engine can form."""
    sizes = model.warmup_sizes or ((model.default_width, model.default_height),)
    specs = [warmup_spec(model, width, height) for width, height in sizes]
    if model.speed.compile and max_samples > 1:
        batch = specs[0]
        specs.append(dataclasses.replace(batch, request_id=f"{batch.request_id}-batch2", num_outputs=2))
    return specs


def warmup_spec(model: LoadedModel, width: int | None = None, height: int | None = None) -> JobSpec:
    """A two-step request at ``width`` x ``height`` (default: the model's size).

    A family that requires input images gets a plain grey picture of that size for each
    required role.
    """
    width = width or model.default_width
    height = height or model.default_height
    images = tuple((role, Image.new("RGB", (width, height), (128, 128, 128))) for role in model.family.required_roles)
    return JobSpec(
        request_id=f"warmup-{model.name}-{width}x{height}",
        model=model.name,
        prompt=model.family.warmup_prompt,
        negative_prompt="",
        width=width,
        height=height,
        num_inference_steps=2,
        guidance_scale=model.default_guidance_scale,
        seed=0,
        num_outputs=1,
        num_frames=model.default_frames,
        fps=DEFAULT_FPS if model.family.output_kind == "video" else 0,
        output_format=OutputFormat.PNG,
        output_quality=90,
        preview_every=0,
        input_images=images,
    )
