"""Production serving through the SDK: failure isolation, the bounded queue, deadlines,
cancellation that frees the engine, and the Prometheus endpoint.

The module's server runs a random tiny FLUX pipeline (one with a guidance embedding,
unlike the trained default) as ``default``, with one real change made through
torch's public hook API: its transformer raises when called with guidance 13
(a pipeline bug) or 17 (device out of memory). Its queue holds one request.
"""

from __future__ import annotations

import io
import threading
import time

import numpy as np
import pytest
import torch
from PIL import Image

from client_sdk import Client, Queued, Started, Step, errors
from tests.conftest import scrape

BUG_GUIDANCE = 13.0
OOM_GUIDANCE = 17.0
SMALL = {"width": 64, "height": 64, "num_inference_steps": 2}
LONG = {"width": 256, "height": 256, "num_inference_steps": 400}


def _fail_on_magic_guidance(module, args, kwargs):
    guidance = kwargs.get("guidance")
    if guidance is None:
        return
    value = float(guidance.flatten()[0])
    if value == BUG_GUIDANCE:
        raise ValueError("injected pipeline failure")
    if value == OOM_GUIDANCE:
        raise torch.OutOfMemoryError("injected: CUDA out of memory. Tried to allocate 80.00 GiB")


@pytest.fixture(scope="module")
def server():
    from tiny_pipelines import build_tiny_flux

    from engine_service.config import Limits, ServerConfig
    from engine_service.models import model_from_pipeline
    from engine_service.runtime.engine import AsyncEngine
    from engine_service.server.background import BackgroundServer

    defaults = {"width": 256, "height": 256, "steps": 8, "call_defaults": {"max_sequence_length": 64}}
    model = model_from_pipeline("default", build_tiny_flux(), torch.device("cpu"), defaults)
    model.pipeline.transformer.register_forward_pre_hook(_fail_on_magic_guidance, with_kwargs=True)
    engine = AsyncEngine({"default": model}, "default", Limits(max_queue=1), "cpu")
    background = BackgroundServer(engine, ServerConfig(host="127.0.0.1", port=0)).start()
    yield background
    background.stop()


@pytest.fixture(scope="module")
def client(server):
    with Client(server.address, timeout=120) as c:
        yield c


def _pixels(result) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(result.outputs[0].data)), dtype=np.int16)


def _wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.01)


class _Background:
    """A stream consumed in a thread: its events, and its error if it failed."""

    def __init__(self, client: Client, **options):
        self.events: list = []
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._consume, args=(client, options))
        self._thread.start()

    def _consume(self, client: Client, options: dict) -> None:
        try:
            for event in client.stream("a cat", **options):
                self.events.append(event)
        except errors.DitServeError as err:
            self.error = err

    def wait_for(self, kind: type) -> None:
        _wait_for(lambda: any(isinstance(e, kind) for e in self.events))

    def steps(self) -> int:
        return sum(isinstance(e, Step) for e in self.events)

    def join(self) -> None:
        self._thread.join(60)
        assert not self._thread.is_alive()


@pytest.mark.parametrize(
    ("guidance", "error", "words", "reason"),
    [
        (BUG_GUIDANCE, errors.InternalError, "injected pipeline failure", "PIPELINE_FAILED"),
        (OOM_GUIDANCE, errors.ResourceExhaustedError, "out of memory", "DEVICE_OUT_OF_MEMORY"),
    ],
)
def test_a_pipeline_failure_fails_that_request_only(client, guidance, error, words, reason):
    before = client.generate("a cat", seed=5, **SMALL)
    failures = client.stats().models[0].failure.count
    with pytest.raises(error) as info:
        client.generate("a cat", seed=5, guidance_scale=guidance, request_id=f"boom-{guidance:g}", **SMALL)
    assert words in info.value.message and info.value.request_id == f"boom-{guidance:g}"
    assert info.value.reason == reason and info.value.domain == "ditserve"
    client.wait_ready(timeout=5)  # still SERVING
    after = client.generate("a cat", seed=5, **SMALL)
    assert after.outputs[0].data == before.outputs[0].data, "the failure left state behind"
    stats = client.stats()
    assert stats.models[0].failure.count == failures + 1 and stats.running == 0 and stats.queue_depth == 0


def test_a_full_queue_answers_resource_exhausted_with_a_retry_hint(client):
    blocker = _Background(client, request_id="q-blocker", **LONG)
    _wait_for(lambda: blocker.steps() >= 1)
    waiter = _Background(client, request_id="q-waiter", **SMALL)
    waiter.wait_for(Queued)
    with pytest.raises(errors.ResourceExhaustedError) as info:
        client.generate("a cat", **SMALL)
    assert info.value.retry_after is not None and info.value.retry_after >= 1.0
    assert "queue is full" in info.value.message and info.value.reason == "QUEUE_FULL"
    client.cancel("q-blocker")
    blocker.join()
    waiter.join()
    assert isinstance(blocker.error, errors.RequestCancelledError)
    assert waiter.error is None and waiter.events[-1].result.outputs
    assert client.generate("a cat", **SMALL).outputs, "the queue drained and takes work again"


def test_a_retrying_call_waits_out_a_full_queue(client):
    from client_sdk import RetryPolicy

    blocker = _Background(client, request_id="r-blocker", **LONG)
    _wait_for(lambda: blocker.steps() >= 1)
    waiter = _Background(client, request_id="r-waiter", **SMALL)
    waiter.wait_for(Queued)
    rejected = client.stats().models[0].rejected
    outcome: list = []
    policy = RetryPolicy(max_attempts=5, initial_backoff_s=0.2, max_backoff_s=3.0)

    def patient() -> None:
        try:
            outcome.append(client.generate("a cat", retry=policy, timeout=120, **SMALL))
        except errors.DitServeError as err:
            outcome.append(err)

    thread = threading.Thread(target=patient)
    thread.start()
    _wait_for(lambda: client.stats().models[0].rejected > rejected)  # refused once: the queue is full
    assert not outcome, outcome
    client.cancel("r-blocker")
    thread.join(120)
    blocker.join()
    waiter.join()
    assert len(outcome) == 1 and outcome[0].outputs, outcome
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)


def test_a_deadline_that_passes_while_queued_removes_the_request(client):
    before = client.stats().models[0]
    blocker = _Background(client, request_id="d-blocker", **LONG)
    _wait_for(lambda: blocker.steps() >= 1)
    with pytest.raises(errors.DeadlineExceededError):
        client.generate("a cat", request_id="d-waiter", timeout=0.5, **SMALL)
    _wait_for(lambda: client.stats().queue_depth == 0)
    with pytest.raises(errors.NotFoundError):
        client.cancel("d-waiter")  # gone from the queue, not merely abandoned
    assert client.cancel("d-blocker") == "running"
    blocker.join()
    after = client.stats().models[0]
    assert after.cancelled.count == before.cancelled.count + 2
    assert after.success.count == before.success.count, "the queued request never ran"


def test_a_stream_cancelled_after_2_of_400_steps_frees_the_engine_for_the_next(client):
    before = client.stats().models[0]
    follower: _Background | None = None
    seen = 0
    stream = client.stream("a cat", request_id="c-400", **LONG)
    for event in stream:
        if isinstance(event, Step):
            seen += 1
            if seen == 1:
                follower = _Background(client, request_id="c-next", seed=3, **SMALL)
                follower.wait_for(Queued)
            if seen >= 2:
                break
    stream.close()  # the client goes away: the engine cancels the request
    follower.join()
    assert follower.error is None
    queued = [e for e in follower.events if isinstance(e, Queued)]
    assert queued and queued[0].position == 0, "the follower waited only for the cancelled request"
    assert any(isinstance(e, Started) for e in follower.events)
    after = client.stats().models[0]
    assert after.cancelled.count == before.cancelled.count + 1
    # The engine stopped at the step boundary after it saw the cancel: a step or two past what the
    # client had seen (events in flight), never the remaining hundreds.
    wasted = after.cancelled_steps - before.cancelled_steps
    assert seen <= wasted <= seen + 5, wasted
    assert after.success.count == before.success.count + 1
    stats = client.stats()
    assert stats.running == 0 and stats.queue_depth == 0


def test_metrics_endpoint_counts_requests_by_status(engine_server):
    port = engine_server.server.metrics_port
    key = ("ditserve_requests_total", (("model", "default"), ("status", "success")))
    before = scrape(port)
    with Client(engine_server.address, timeout=60) as client:
        client.generate("a cat", **SMALL)
        with pytest.raises(errors.InvalidArgumentError):
            client.generate("a cat", width=65)
    after = scrape(port)
    assert after[key] == before.get(key, 0.0) + 1
    rejected = ("ditserve_requests_total", (("model", "default"), ("status", "rejected")))
    assert after[rejected] == before.get(rejected, 0.0) + 1
    denoise = ("ditserve_phase_duration_seconds_count", (("model", "default"), ("phase", "denoise")))
    assert after[denoise] == before.get(denoise, 0.0) + 1
    computed = ("ditserve_steps_total", (("kind", "computed"), ("model", "default")))
    assert after[computed] == before.get(computed, 0.0) + SMALL["num_inference_steps"]
    assert after[("ditserve_batch_size_count", ())] > before.get(("ditserve_batch_size_count", ()), 0.0)
    assert after[("ditserve_queue_depth", ())] == 0 and after[("ditserve_running_requests", ())] == 0
    assert ("ditserve_cached_step_ratio", (("model", "default"),)) in after
