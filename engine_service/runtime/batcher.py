"""Dynamic batching: which queued jobs may share one pipeline call, and picking them.

Jobs are compatible when everything that shapes the pipeline call itself is equal:
the model, width, height, steps, frames, guidance scale, cache policy and LoRA
adapter set with its scales (the ``BatchKey``). Prompt, seed, number of outputs,
output format and previews stay per job: the worker passes one prompt and one
seeded ``torch.Generator`` per output, so a job's noise, and hence its image, does
not depend on its neighbours.

Jobs with the same cache policy batch too: each job of the call is a sample group of
the cache, with its own state and its own decision at every step, taken from its own
samples only, so it caches the same steps (and gets the same image) as it would alone.
The middle blocks run for the batch unless every job caches the step.

Jobs that always run alone (``batch_key`` is None):
  * jobs with input images (editing pipelines condition on them per call);
  * jobs with a DBPrune policy: it decides per block for the whole batch.

Selection keeps arrival order: the oldest queued job heads the batch and compatible
jobs behind it join it, jumping over incompatible ones. When fewer than
``max_batch`` compatible jobs wait, the head waits up to ``batch_window_ms``
(counted from its arrival) for more; a job that already waited that long in the
queue starts at once.
"""

from __future__ import annotations

import collections
import dataclasses
import time
from typing import Protocol

from engine_service.cache.config import CacheType
from engine_service.config import BatchingConfig
from engine_service.jobs import JobSpec


@dataclasses.dataclass(frozen=True)
class BatchKey:
    """The fields that must be equal for jobs to share a pipeline call."""

    model: str
    width: int
    height: int
    num_inference_steps: int
    num_frames: int
    guidance_scale: float
    cache_policy: str
    loras: tuple[tuple[str, float], ...]
    """The LoRA adapter set and scales: one set per call, so only identical sets batch."""


def batch_key(spec: JobSpec) -> BatchKey | None:
    """The job's batch key, or None when it must run alone."""
    if (
        spec.input_images
        or spec.input_videos
        or spec.runs_alone
        or (spec.cache is not None and spec.cache.cache_config.cache_type == CacheType.DBPrune)
    ):
        return None
    return BatchKey(
        model=spec.model,
        width=spec.width,
        height=spec.height,
        num_inference_steps=spec.num_inference_steps,
        num_frames=spec.num_frames,
        guidance_scale=spec.guidance_scale,
        cache_policy=spec.cache_tag,
        loras=spec.loras,
    )


class Queued(Protocol):
    """What the batcher needs of a queued job."""

    spec: JobSpec
    accepted_at: float
    """``time.perf_counter()`` at acceptance."""


class Batcher:
    """Picks the next batch from the queue. Runs on the engine's event loop only."""

    def __init__(self, config: BatchingConfig, max_outputs: int):
        self.config = config
        self.max_samples = max(config.max_batch, max_outputs)
        """Most outputs in one call: a full batch of single-output jobs, or one job at its limit."""

    def take(self, pending: collections.deque) -> list:
        """Remove and return the next batch (head first); ``pending`` must not be empty."""
        head = pending[0]
        batch = [head, *self._joiners(pending)]
        for job in batch:
            pending.remove(job)
        return batch

    def wait_s(self, pending: collections.deque) -> float:
        """Seconds the head should still wait for company; 0 = start now."""
        if self.config.max_batch == 1 or not pending:
            return 0.0
        head = pending[0]
        if batch_key(head.spec) is None or 1 + len(self._joiners(pending)) >= self.config.max_batch:
            return 0.0
        waited = time.perf_counter() - head.accepted_at
        return max(0.0, self.config.batch_window_ms / 1000.0 - waited)

    def _joiners(self, pending: collections.deque) -> list:
        """Compatible jobs behind the head that fit in its batch, in arrival order."""
        head = pending[0]
        key = batch_key(head.spec)
        if key is None or self.config.max_batch == 1:
            return []
        joiners = []
        samples = head.spec.num_outputs
        for job in list(pending)[1:]:
            if 1 + len(joiners) >= self.config.max_batch:
                break
            if batch_key(job.spec) == key and samples + job.spec.num_outputs <= self.max_samples:
                joiners.append(job)
                samples += job.spec.num_outputs
        return joiners
