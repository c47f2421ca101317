"""Per-step events cost the event loop one hand-over per step, whatever the batch size, and
none for a job whose caller reads only the result (a unary Generate).

The engine runs on an asyncio loop that counts the callbacks other threads hand it
(``call_soon_threadsafe``): the device thread's step events, and the completion of each
piece of work sent to the device and encoder threads.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading

import pytest

from engine_service.jobs import CompletedEvent, PreviewEvent, StepEvent

STEPS = 10
JOBS = 3


class CountingLoop(asyncio.SelectorEventLoop):
    """An event loop that counts the callbacks handed to it from other threads."""

    def __init__(self) -> None:
        super().__init__()
        self.handed_over = 0
        self._owner: threading.Thread | None = None

    def run_until_complete(self, future):
        self._owner = threading.current_thread()
        return super().run_until_complete(future)

    def call_soon_threadsafe(self, callback, *args, context=None):
        if threading.current_thread() is not self._owner:
            self.handed_over += 1
        return super().call_soon_threadsafe(callback, *args, context=context)


@pytest.fixture(scope="module")
def engine_and_loop():
    from engine_service.bootstrap import build_engine
    from engine_service.config import BatchingConfig

    loop = CountingLoop()
    asyncio.set_event_loop(loop)
    engine = loop.run_until_complete(_built(build_engine, BatchingConfig(max_batch=JOBS, batch_window_ms=10_000)))
    yield engine, loop
    loop.run_until_complete(engine.shutdown(grace_s=5))
    asyncio.set_event_loop(None)
    loop.close()


async def _built(build_engine, batching):
    engine = build_engine([], device="cpu", batching=batching)
    await engine.start()
    return engine


def _specs(engine, tag: str, preview_every: int = 0):
    from engine_service.runtime.engine import warmup_spec

    base = warmup_spec(engine.models[engine.default_model], 32, 32)
    return [
        dataclasses.replace(
            base, request_id=f"{tag}-{i}", seed=i, num_inference_steps=STEPS, preview_every=preview_every
        )
        for i in range(JOBS)
    ]


async def _run(engine, specs, step_events: bool) -> list[list]:
    jobs = [engine.submit(spec, step_events=step_events) for spec in specs]

    async def collect(job):
        return [event async for event in engine.events(job)]

    return await asyncio.gather(*(collect(job) for job in jobs))


def test_a_streamed_batch_hands_its_step_events_over_once_per_step(engine_and_loop):
    engine, loop = engine_and_loop
    before = loop.handed_over
    streams = loop.run_until_complete(_run(engine, _specs(engine, "streamed", preview_every=4), step_events=True))
    handed_over = loop.handed_over - before
    for events in streams:
        assert [e.step for e in events if isinstance(e, StepEvent)] == list(range(STEPS))
        assert [e.step for e in events if isinstance(e, PreviewEvent)] == [3, 7]
        assert isinstance(events[-1], CompletedEvent)
    # One hand-over per step, one for the call's end on the device thread, one per job's encoding.
    assert handed_over <= STEPS + 1 + JOBS, handed_over


def test_a_unary_batch_hands_over_no_step_events_and_keeps_its_step_records(engine_and_loop):
    engine, loop = engine_and_loop
    before = loop.handed_over
    streams = loop.run_until_complete(_run(engine, _specs(engine, "unary", preview_every=4), step_events=False))
    handed_over = loop.handed_over - before
    for events in streams:
        assert not [e for e in events if isinstance(e, StepEvent | PreviewEvent)]
        result = events[-1].result
        assert [record.step for record in result.steps] == list(range(STEPS))
    assert handed_over <= 1 + JOBS, handed_over
    assert engine.stats.models[engine.default_model].success.count >= JOBS
