"""The client SDK against the real engine: sync and async twins, typed events and errors."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from client_sdk import AsyncClient, Client, Completed, Queued, Started, Step, errors


@pytest.fixture(scope="module")
def client(address):
    with Client(address, timeout=120) as c:
        c.wait_ready(timeout=30)
        yield c


def test_generate_returns_pil_images_and_metadata(client):
    result = client.generate("a cat", width=64, height=64, num_inference_steps=3, seed=7, num_outputs=2)
    assert len(result.outputs) == 2 and [im.size for im in result.images] == [(64, 64), (64, 64)]
    assert result.seed == 7 and result.model == "default" and result.request_id
    assert result.cache_stats.computed_steps == 3 and len(result.cache_stats.steps) == 3
    assert result.timings.total_ms >= result.timings.denoise_ms > 0


def test_result_save_writes_files(client, tmp_path):
    result = client.generate("a cat", width=64, height=64, num_inference_steps=2, output_format="jpeg")
    paths = result.save(tmp_path / "out", name="cat-{index}")
    assert [p.name for p in paths] == ["cat-0.jpg"] and paths[0].read_bytes() == result.outputs[0].data


def test_stream_yields_typed_events_and_a_full_result(client):
    events = list(client.stream("a cat", width=64, height=64, num_inference_steps=5, seed=7))
    assert isinstance(events[0], Queued) and any(isinstance(e, Started) for e in events)
    steps = [e for e in events if isinstance(e, Step)]
    assert [s.step for s in steps] == list(range(5)) and all(s.total_steps == 5 for s in steps)
    assert isinstance(events[-1], Completed)
    assert events[-1].result.outputs[0].data.startswith(b"\x89PNG")


def test_stream_reassembles_chunked_outputs(client):
    # The random "local" model: its noisy PNG is surely larger than one 1 MiB chunk.
    events = list(client.stream("a cat", model="local", width=1024, height=1024, num_inference_steps=1, seed=3))
    output = events[-1].result.outputs[0]
    assert output.size_bytes > 1024 * 1024 and len(output.data) == output.size_bytes
    assert output.image.size == (1024, 1024)


def test_invalid_argument_carries_field_violations(client):
    with pytest.raises(errors.InvalidArgumentError) as info:
        client.generate("a cat", width=65, num_inference_steps=0)
    fields = {v.field for v in info.value.field_violations}
    assert fields == {"width", "num_inference_steps"}
    assert "width" in str(info.value)


def test_errors_map_to_the_hierarchy(client):
    with pytest.raises(errors.NotFoundError):
        client.generate("a cat", model="sdxl")
    with pytest.raises(errors.NotFoundError):
        client.cancel("no-such-request")
    with pytest.raises(errors.InvalidArgumentError) as info:
        client.generate("a cat", width=64, height=64, cache="warp-speed")
    assert [v.field for v in info.value.field_violations] == ["cache.preset"]
    with pytest.raises(errors.DeadlineExceededError):
        client.generate("a cat", width=256, height=256, num_inference_steps=400, timeout=0.3)
    assert client.generate("a cat", width=64, height=64, num_inference_steps=2).outputs


def test_cancel_from_another_thread_ends_the_stream_with_request_cancelled(client):
    failures: list[BaseException] = []
    steps: list[Step] = []

    def consume():
        try:
            for event in client.stream(
                "a cat", width=256, height=256, num_inference_steps=400, request_id="sdk-cancel"
            ):
                if isinstance(event, Step):
                    steps.append(event)
        except errors.DitServeError as err:
            failures.append(err)

    thread = threading.Thread(target=consume)
    thread.start()
    deadline = time.monotonic() + 30
    while not steps and time.monotonic() < deadline:
        time.sleep(0.01)
    assert client.cancel("sdk-cancel") == "running"
    thread.join(30)
    assert len(failures) == 1 and isinstance(failures[0], errors.RequestCancelledError)
    assert failures[0].request_id == "sdk-cancel", "errors carry the request id"


def test_leaving_a_stream_early_cancels_the_job(client):
    before = client.stats(model="default").models[0].cancelled.count
    for event in client.stream("a cat", width=256, height=256, num_inference_steps=400):
        if isinstance(event, Step):
            break
    deadline = time.monotonic() + 30
    while client.stats(model="default").models[0].cancelled.count == before and time.monotonic() < deadline:
        time.sleep(0.05)
    stats = client.stats(model="default")
    assert stats.models[0].cancelled.count == before + 1
    assert stats.running == 0 and stats.queue_depth == 0


def test_list_models_and_stats(client):
    models = client.list_models()
    assert models.default is not None and models.default.name == "default"
    assert models.limits.max_outputs >= 1
    stats = client.stats()
    assert {m.model for m in stats.models} == {"default", "local", "wan"} and stats.device == "cpu"


def test_async_client_twin(address):
    async def scenario():
        async with AsyncClient(address, timeout=120) as client:
            await client.wait_ready(timeout=30)
            result = await client.generate("a cat", width=64, height=64, num_inference_steps=2, seed=7)
            events = [e async for e in client.stream("a cat", width=64, height=64, num_inference_steps=3)]
            with pytest.raises(errors.InvalidArgumentError):
                await client.generate("a cat", width=65)
            return result, events, await client.list_models(), await client.stats()

    result, events, models, stats = asyncio.run(scenario())
    assert result.images[0].size == (64, 64) and result.seed == 7
    assert sum(isinstance(e, Step) for e in events) == 3 and isinstance(events[-1], Completed)
    assert models.default.name == "default" and stats.models


def test_sdk_works_without_torch(address):
    """The base install is the SDK only: with torch unimportable it still generates."""
    script = textwrap.dedent(
        f"""
        import sys
        for name in ("torch", "diffusers", "transformers", "numpy"):
            sys.modules[name] = None  # any import of these now fails
        from client_sdk import Client
        with Client({address!r}, timeout=60) as client:
            result = client.generate("a cat", width=64, height=64, num_inference_steps=2, seed=1)
        assert result.outputs[0].data.startswith(b"\\x89PNG")
        print("ok", len(result.outputs[0].data))
        """
    )
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.startswith("ok")
