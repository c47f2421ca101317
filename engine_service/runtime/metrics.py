"""Prometheus metrics of one engine, in their own registry (several engines may share a process).

The server exposes ``registry`` over HTTP (``--metrics-port``). Outcomes are
recorded by ``StatsRecorder``, batch sizes by the engine; queue depth, running
requests and device memory are read when scraped.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from engine_service.jobs import Timings

REQUESTS = "ditserve_requests"
REQUEST_SECONDS = "ditserve_request_duration_seconds"
PHASE_SECONDS = "ditserve_phase_duration_seconds"
STEPS = "ditserve_steps"
CACHED_STEP_RATIO = "ditserve_cached_step_ratio"
QUEUE_DEPTH = "ditserve_queue_depth"
RUNNING = "ditserve_running_requests"
BATCH_SIZE = "ditserve_batch_size"
DEVICE_MEMORY = "ditserve_device_memory_bytes"
LORA_REQUESTS = "ditserve_lora_requests"
COMPILE_GRAPHS = "ditserve_compile_graphs"
TRANSFORMER_CALLS = "ditserve_compile_calls"

#: Request and phase durations span tens of milliseconds (tiny models, cached steps) to minutes (video).
_SECONDS_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 60, 120, 300, 600)
_BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 32)
PHASES = ("prepare", "denoise", "decode", "encode")


class EngineMetrics:
    """The engine's Prometheus metrics; updated on the engine's event loop, read by the HTTP thread."""

    def __init__(self, device: str):
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(REQUESTS, "Requests by final status", ["model", "status"], registry=r)
        self.request_seconds = Histogram(
            REQUEST_SECONDS,
            "Time from acceptance to the end of a request",
            ["model", "status"],
            buckets=_SECONDS_BUCKETS,
            registry=r,
        )
        self.phase_seconds = Histogram(
            PHASE_SECONDS,
            "Duration of each phase (queue for every request that left the queue; the others on success)",
            ["model", "phase"],
            buckets=_SECONDS_BUCKETS,
            registry=r,
        )
        self.steps = Counter(STEPS, "Denoising steps of successful requests", ["model", "kind"], registry=r)
        self.cached_ratio = Gauge(
            CACHED_STEP_RATIO, "Share of denoising steps that reused the cache, since start", ["model"], registry=r
        )
        self.queue_depth = Gauge(QUEUE_DEPTH, "Requests waiting", registry=r)
        self.running = Gauge(RUNNING, "Requests running", registry=r)
        self.batch_size = Histogram(BATCH_SIZE, "Requests per pipeline call", buckets=_BATCH_BUCKETS, registry=r)
        self.lora_requests = Counter(
            LORA_REQUESTS, "Successful requests per LoRA adapter", ["model", "lora"], registry=r
        )
        if device.startswith("cuda"):
            r.register(_DeviceMemory(device))

    def bind_load(self, queue_depth: Callable[[], int], running: Callable[[], int]) -> None:
        """Read queue depth and running requests from the engine at each scrape."""
        self.queue_depth.set_function(queue_depth)
        self.running.set_function(running)

    def bind_compile(self, compiled: Mapping[str, Any]) -> None:
        """Read each compiled model's CompileStats (graphs built, compiled and eager calls) at each scrape."""
        self.registry.register(_CompileCounters(compiled))

    def record_success(self, model: str, total_ms: float, timings: Timings, computed: int, cached: int) -> None:
        self._record_end(model, "success", total_ms, timings.queue_ms)
        for phase in PHASES:
            self.phase_seconds.labels(model, phase).observe(getattr(timings, f"{phase}_ms") / 1000.0)
        self.steps.labels(model, "computed").inc(computed)
        self.steps.labels(model, "cached").inc(cached)

    def record_unfinished(self, model: str, status: str, total_ms: float, queue_ms: float | None) -> None:
        self._record_end(model, status, total_ms, queue_ms)

    def record_rejected(self, model: str) -> None:
        self.requests.labels(model, "rejected").inc()

    def set_cached_ratio(self, model: str, ratio: float) -> None:
        self.cached_ratio.labels(model).set(ratio)

    def record_lora(self, model: str, lora: str) -> None:
        self.lora_requests.labels(model, lora).inc()

    def record_batch(self, size: int) -> None:
        self.batch_size.observe(size)

    def _record_end(self, model: str, status: str, total_ms: float, queue_ms: float | None) -> None:
        self.requests.labels(model, status).inc()
        self.request_seconds.labels(model, status).observe(total_ms / 1000.0)
        if queue_ms is not None:
            self.phase_seconds.labels(model, "queue").observe(queue_ms / 1000.0)


class _CompileCounters(Collector):
    """What the compiled blocks of each model did, read at scrape time from its CompileStats."""

    def __init__(self, compiled: Mapping[str, Any]):
        self._compiled = dict(compiled)

    def collect(self):
        graphs = CounterMetricFamily(COMPILE_GRAPHS, "Graphs built for the compiled blocks", labels=["model"])
        calls = CounterMetricFamily(
            TRANSFORMER_CALLS,
            "Transformer calls of compiled models: all blocks compiled, or some run eagerly past the recompile limit",
            labels=["model", "mode"],
        )
        for model, stats in self._compiled.items():
            graphs.add_metric([model], stats.graphs)
            calls.add_metric([model, "compiled"], stats.compiled_calls)
            calls.add_metric([model, "eager"], stats.eager_calls)
        yield graphs
        yield calls


class _DeviceMemory(Collector):
    """CUDA memory of the engine's device, read at scrape time (allocator counters, no device sync)."""

    def __init__(self, device: str):
        self._device = device

    def collect(self):
        import torch

        family = GaugeMetricFamily(DEVICE_MEMORY, "Device memory held by the engine", labels=["device", "kind"])
        family.add_metric([self._device, "allocated"], torch.cuda.memory_allocated(self._device))
        family.add_metric([self._device, "reserved"], torch.cuda.memory_reserved(self._device))
        family.add_metric([self._device, "peak_allocated"], torch.cuda.max_memory_allocated(self._device))
        family.add_metric([self._device, "total"], torch.cuda.get_device_properties(self._device).total_memory)
        yield family
