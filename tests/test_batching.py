"""Dynamic batching through the SDK: compatible requests share a pipeline call, each keeps
its own prompt, seed, outputs, events and cancellation, and its image does not depend on
its neighbours.

The module's server batches up to 4 requests and waits up to 300 ms for company, long
enough for requests sent together to meet even on a busy machine. Batching is observed
through the public metrics endpoint (the batch-size histogram).
"""

from __future__ import annotations

import asyncio
import io
import threading

import numpy as np
import pytest
from PIL import Image

from client_sdk import AsyncClient, CachePolicy, Client, Step, errors
from tests.conftest import scrape

SMALL = {"width": 64, "height": 64, "num_inference_steps": 3}
#: Pixel tolerance (of 255) between a request run alone and in a batch: float rounding only.
TOLERANCE = 2


@pytest.fixture(scope="module")
def server():
    from engine_service.bootstrap import build_engine
    from engine_service.config import BatchingConfig, ServerConfig
    from engine_service.server.background import BackgroundServer

    engine = build_engine([], device="cpu", batching=BatchingConfig(max_batch=4, batch_window_ms=300))
    background = BackgroundServer(engine, ServerConfig(host="127.0.0.1", port=0, metrics_port=0)).start()
    yield background
    background.stop()


def _pixels(output) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(output.data)), dtype=np.int16)


def _batches(server) -> tuple[float, float]:
    """(pipeline calls, requests in them) so far, from the metrics endpoint."""
    samples = scrape(server.server.metrics_port)
    return samples[("ditserve_batch_size_count", ())], samples[("ditserve_batch_size_sum", ())]


async def _together(address: str, requests: list[dict]) -> list:
    async with AsyncClient(address, timeout=120) as client:
        return await asyncio.gather(*(client.generate(**r) for r in requests))


def test_a_batched_request_gets_the_image_it_gets_alone(server):
    with Client(server.address, timeout=120) as client:
        alone = client.generate("a red cube", seed=5, num_outputs=2, **SMALL)
    calls, members = _batches(server)
    crowd = asyncio.run(
        _together(
            server.address,
            [
                {"prompt": "a red cube", "seed": 5, "num_outputs": 2, **SMALL},
                {"prompt": "a blue sphere", "seed": 6, **SMALL},
                {"prompt": "a red cube", "seed": 7, "output_format": "jpeg", **SMALL},
                {"prompt": "a green cone", "seed": 5, **SMALL},
            ],
        )
    )
    assert _batches(server) == (calls + 1, members + 4), "the four requests should share one call"
    batched = crowd[0]
    assert batched.seed == 5 and len(batched.outputs) == 2 and batched.request_id != alone.request_id
    for mine, theirs in zip(alone.outputs, batched.outputs, strict=True):
        assert np.abs(_pixels(mine) - _pixels(theirs)).max() <= TOLERANCE
    assert np.abs(_pixels(alone.outputs[0]) - _pixels(alone.outputs[1])).max() > 10, "outputs of one seed differ"
    assert [len(r.outputs) for r in crowd] == [2, 1, 1, 1]
    assert crowd[2].outputs[0].mime_type == "image/jpeg"
    for other in crowd[1:]:
        assert np.abs(_pixels(other.outputs[0]) - _pixels(batched.outputs[0])).max() > 10, "neighbours leaked"
    assert all(len(r.cache_stats.steps) == SMALL["num_inference_steps"] for r in crowd)


def test_cached_requests_batch_and_each_caches_the_steps_it_caches_alone(server):
    policy = CachePolicy(
        preset="dbcache", residual_diff_threshold=0.3, max_warmup_steps=2, max_continuous_cached_steps=-1
    )
    steps = {"width": 64, "height": 64, "num_inference_steps": 12, "cache": policy}
    requests = [
        {"prompt": "a red circle", "seed": 1},
        {"prompt": "a blue square", "seed": 2},
        {"prompt": "green", "seed": 3},
    ]

    def cached(result) -> list[int]:
        return [s.step for s in result.cache_stats.steps if s.cached]

    with Client(server.address, timeout=120) as client:
        alone = [client.generate(**r, **steps) for r in requests]
    assert len({tuple(cached(r)) for r in alone}) > 1, "the requests should cache different steps"
    calls, members = _batches(server)
    crowd = asyncio.run(_together(server.address, [{**r, **steps} for r in requests]))
    assert _batches(server) == (calls + 1, members + 3), "the three cached requests should share one call"
    for mine, theirs in zip(alone, crowd, strict=True):
        assert cached(theirs) == cached(mine)
        assert np.abs(_pixels(mine.outputs[0]) - _pixels(theirs.outputs[0])).max() <= TOLERANCE
        for a, b in zip(mine.cache_stats.steps, theirs.cache_stats.steps, strict=True):
            assert (a.residual_diff is None) == (b.residual_diff is None)
            assert a.residual_diff is None or abs(a.residual_diff - b.residual_diff) < 1e-3


def test_incompatible_requests_run_in_separate_calls(server):
    calls, members = _batches(server)
    results = asyncio.run(
        _together(
            server.address,
            [
                {"prompt": "a cat", "seed": 1, **SMALL},
                {"prompt": "a cat", "seed": 1, **{**SMALL, "num_inference_steps": 2}},
                {"prompt": "a cat", "seed": 1, **{**SMALL, "width": 128}},
            ],
        )
    )
    assert [len(r.cache_stats.steps) for r in results] == [3, 2, 3]
    assert _batches(server) == (calls + 3, members + 3)


def test_a_cancelled_member_leaves_and_the_others_finish(server):
    long = {"width": 64, "height": 64, "num_inference_steps": 150}
    events: dict[str, list] = {"stay": [], "leave": []}
    failures: dict[str, BaseException] = {}

    def consume(client: Client, name: str, seed: int) -> None:
        try:
            for event in client.stream("a cat", seed=seed, request_id=f"member-{name}", **long):
                events[name].append(event)
        except errors.DitServeError as err:
            failures[name] = err

    before = _batches(server)
    with Client(server.address, timeout=300) as client:
        threads = [threading.Thread(target=consume, args=(client, n, s)) for n, s in (("stay", 1), ("leave", 2))]
        for thread in threads:
            thread.start()
        while sum(isinstance(e, Step) for e in events["leave"]) < 3:
            threading.Event().wait(0.01)
        assert client.cancel("member-leave") == "running"
        threads[1].join(60)
        assert isinstance(failures.get("leave"), errors.RequestCancelledError)
        assert sum(isinstance(e, Step) for e in events["stay"]) < long["num_inference_steps"], (
            "the cancelled member must leave at once, not when the call ends"
        )
        threads[0].join(300)  # generous: the machine may be busy; the assertions below say what matters
        stats = client.stats()
    assert _batches(server) == (before[0] + 1, before[1] + 2), "the two requests should share one call"
    assert "stay" not in failures and events["stay"][-1].result.outputs
    assert sum(isinstance(e, Step) for e in events["stay"]) == long["num_inference_steps"]
    assert stats.running == 0 and stats.queue_depth == 0


def test_16_clients_x_4_requests_none_lost_none_failed(server):
    with Client(server.address, timeout=120) as client:
        alone = client.generate("client 3 request 2", seed=302, **SMALL)

    async def one_client(index: int) -> list:
        async with AsyncClient(server.address, timeout=300) as client:
            return [
                await client.generate(f"client {index} request {r}", seed=index * 100 + r, **SMALL) for r in range(4)
            ]

    async def crowd() -> list:
        return await asyncio.gather(*(one_client(i) for i in range(16)), return_exceptions=True)

    calls, members = _batches(server)
    per_client = asyncio.run(crowd())
    failures = [r for r in per_client if isinstance(r, BaseException)]
    assert not failures, failures
    results = [result for client_results in per_client for result in client_results]
    assert len(results) == 64 and len({r.request_id for r in results}) == 64
    assert all(len(r.outputs) == 1 and r.outputs[0].data for r in results)
    assert [r.seed for r in results] == [i * 100 + r for i in range(16) for r in range(4)]
    new_calls, new_members = _batches(server)
    assert new_members - members == 64 and new_calls - calls < 64, "the crowd should have been batched"
    in_crowd = per_client[3][2]
    assert np.abs(_pixels(in_crowd.outputs[0]) - _pixels(alone.outputs[0])).max() <= TOLERANCE
