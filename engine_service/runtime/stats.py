"""Cumulative per-model statistics, in the shape of Triton's model statistics."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from typing import Any

from engine_service.jobs import JobResult, Timings
from engine_service.runtime.metrics import EngineMetrics


@dataclasses.dataclass
class Duration:
    """How many events of one kind and their total milliseconds."""

    count: int = 0
    total_ms: float = 0.0

    def add(self, ms: float) -> None:
        self.count += 1
        self.total_ms += ms


@dataclasses.dataclass
class ModelCounters:
    """Counters of one model since the engine started."""

    success: Duration = dataclasses.field(default_factory=Duration)
    failure: Duration = dataclasses.field(default_factory=Duration)
    cancelled: Duration = dataclasses.field(default_factory=Duration)
    rejected: int = 0
    queue: Duration = dataclasses.field(default_factory=Duration)
    prepare: Duration = dataclasses.field(default_factory=Duration)
    denoise: Duration = dataclasses.field(default_factory=Duration)
    decode: Duration = dataclasses.field(default_factory=Duration)
    encode: Duration = dataclasses.field(default_factory=Duration)
    outputs: int = 0
    steps: int = 0
    computed_steps: int = 0
    cached_steps: int = 0
    last_request_unix_ms: int = 0
    cancelled_steps: int = 0
    lora_requests: dict[str, int] = dataclasses.field(default_factory=dict)
    """Successful requests per LoRA adapter name."""
    compile_graphs: int = 0
    compiled_calls: int = 0
    eager_calls: int = 0

    def _finished(self) -> None:
        self.last_request_unix_ms = int(time.time() * 1000)


class StatsRecorder:
    """Per-model counters, mirrored into Prometheus metrics. Updated and read on the engine's event loop only."""

    def __init__(
        self, models: list[str], metrics: EngineMetrics | None = None, compiled: Mapping[str, Any] | None = None
    ):
        self._models = {name: ModelCounters() for name in models}
        self._metrics = metrics
        self._compiled = {name: stats for name, stats in (compiled or {}).items() if stats is not None}
        """Model -> its compiled blocks' CompileStats (updated by the device thread, read here)."""
        if metrics is not None and self._compiled:
            metrics.bind_compile(self._compiled)
        self.started_at = time.monotonic()

    def counters(self, model: str) -> ModelCounters:
        self._read_compile(model)
        return self._models[model]

    @property
    def models(self) -> dict[str, ModelCounters]:
        for name in self._compiled:
            self._read_compile(name)
        return dict(self._models)

    def _read_compile(self, model: str) -> None:
        stats = self._compiled.get(model)
        if stats is not None:
            c = self._models[model]
            c.compile_graphs, c.compiled_calls, c.eager_calls = stats.graphs, stats.compiled_calls, stats.eager_calls

    @property
    def uptime_s(self) -> float:
        return time.monotonic() - self.started_at

    def record_success(self, result: JobResult, total_ms: float) -> None:
        c = self._models[result.model]
        c.success.add(total_ms)
        self._record_phases(c, result.timings)
        c.outputs += len(result.outputs)
        c.steps += len(result.steps)
        c.cached_steps += result.cached_steps
        c.computed_steps += result.computed_steps
        for name, _scale in result.loras:
            c.lora_requests[name] = c.lora_requests.get(name, 0) + 1
        c._finished()
        if self._metrics is not None:
            self._metrics.record_success(
                result.model, total_ms, result.timings, result.computed_steps, result.cached_steps
            )
            self._metrics.set_cached_ratio(result.model, c.cached_steps / c.steps if c.steps else 0.0)
            for name, _scale in result.loras:
                self._metrics.record_lora(result.model, name)

    def record_unfinished(
        self, model: str, outcome: str, total_ms: float, queue_ms: float | None, steps_run: int = 0
    ) -> None:
        """A job that failed (``outcome="failure"``) or was cancelled (``"cancelled"``) after ``steps_run`` steps."""
        c = self._models[model]
        getattr(c, outcome).add(total_ms)
        if queue_ms is not None:
            c.queue.add(queue_ms)
        if outcome == "cancelled":
            c.cancelled_steps += steps_run
        c._finished()
        if self._metrics is not None:
            self._metrics.record_unfinished(model, outcome, total_ms, queue_ms)

    def record_rejected(self, model: str) -> None:
        if model in self._models:
            self._models[model].rejected += 1
            if self._metrics is not None:
                self._metrics.record_rejected(model)

    @staticmethod
    def _record_phases(c: ModelCounters, t: Timings) -> None:
        c.queue.add(t.queue_ms)
        c.prepare.add(t.prepare_ms)
        c.denoise.add(t.denoise_ms)
        c.decode.add(t.decode_ms)
        c.encode.add(t.encode_ms)
