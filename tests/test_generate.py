"""Generate, Stream, Stats, ListModels and Cancel through stubs compiled from proto/ alone."""

from __future__ import annotations

import hashlib
import io
import threading
import time

import grpc
import numpy as np
import pytest
from PIL import Image

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def request(pb, **fields):
    fields.setdefault("prompt", "a cat")
    fields.setdefault("width", 64)
    fields.setdefault("height", 64)
    fields.setdefault("num_inference_steps", 4)
    return pb.GenerateRequest(**fields)


def test_generate_returns_one_png_of_the_requested_size(stub, proto_stubs):
    response = stub.Generate(request(proto_stubs.pb, seed=7), timeout=60)
    assert len(response.outputs) == 1
    out = response.outputs[0]
    assert out.data.startswith(PNG_MAGIC) and out.mime_type == "image/png"
    assert Image.open(io.BytesIO(out.data)).size == (64, 64) == (out.width, out.height)
    assert out.size_bytes == len(out.data) and out.sha256 == hashlib.sha256(out.data).hexdigest()
    assert response.seed == 7 and response.model == "default" and response.request_id
    assert response.timings.total_ms > 0 and response.timings.denoise_ms > 0
    assert [s.step for s in response.cache_stats.steps] == [0, 1, 2, 3]
    assert response.cache_stats.computed_steps == 4 and response.cache_stats.cached_steps == 0


def test_same_request_twice_gives_identical_bytes(stub, proto_stubs):
    first = stub.Generate(request(proto_stubs.pb, seed=7), timeout=60)
    second = stub.Generate(request(proto_stubs.pb, seed=7), timeout=60)
    other_seed = stub.Generate(request(proto_stubs.pb, seed=8), timeout=60)
    assert first.outputs[0].data == second.outputs[0].data
    assert first.outputs[0].data != other_seed.outputs[0].data


def test_unset_seed_is_drawn_and_reported(stub, proto_stubs):
    response = stub.Generate(request(proto_stubs.pb), timeout=60)
    again = stub.Generate(request(proto_stubs.pb, seed=response.seed), timeout=60)
    assert again.outputs[0].data == response.outputs[0].data


def test_stream_yields_one_step_event_per_step_then_one_completed(stub, proto_stubs):
    events = list(stub.Stream(request(proto_stubs.pb, num_inference_steps=6, seed=7), timeout=60))
    kinds = [e.WhichOneof("event") for e in events]
    steps = [e.step for e in events if e.HasField("step")]
    assert kinds[0] == "queued" and "started" in kinds
    assert len(steps) == 6 and [s.step for s in steps] == list(range(6))
    assert all(s.total_steps == 6 for s in steps)
    assert all(b.elapsed_ms >= a.elapsed_ms for a, b in zip(steps, steps[1:], strict=False))
    assert kinds.count("completed") == 1 and kinds[-1] == "completed"
    completed = events[-1].completed
    assert completed.outputs[0].data.startswith(PNG_MAGIC)
    assert not any(s.cached for s in steps)


def test_stream_and_generate_give_the_same_image(stub, proto_stubs):
    generated = stub.Generate(request(proto_stubs.pb, seed=11), timeout=60)
    streamed = list(stub.Stream(request(proto_stubs.pb, seed=11), timeout=60))[-1].completed
    assert generated.outputs[0].data == streamed.outputs[0].data


def test_large_outputs_arrive_in_chunks_of_at_most_1_mib(stub, proto_stubs):
    pb = proto_stubs.pb
    events = list(stub.Stream(request(pb, width=1024, height=1024, num_inference_steps=1, seed=3), timeout=120))
    chunks = [e.chunk for e in events if e.HasField("chunk")]
    completed = events[-1].completed
    out = completed.outputs[0]
    assert out.size_bytes > 1024 * 1024, "the random 1024x1024 PNG should exceed 1 MiB"
    assert out.data == b"", "a chunked output's bytes must not be repeated in completed"
    assert all(len(c.data) <= 1024 * 1024 for c in chunks) and chunks[-1].last
    assert [c.offset for c in chunks] == sorted(c.offset for c in chunks)
    data = b"".join(c.data for c in chunks)
    assert len(data) == out.size_bytes and hashlib.sha256(data).hexdigest() == out.sha256
    assert Image.open(io.BytesIO(data)).size == (1024, 1024)


def test_jpeg_webp_and_several_outputs(stub, proto_stubs):
    pb = proto_stubs.pb
    jpeg = stub.Generate(request(pb, output_format=pb.OUTPUT_FORMAT_JPEG, output_quality=80, num_outputs=2), timeout=60)
    assert [o.mime_type for o in jpeg.outputs] == ["image/jpeg", "image/jpeg"]
    assert all(Image.open(io.BytesIO(o.data)).format == "JPEG" for o in jpeg.outputs)
    webp = stub.Generate(request(pb, output_format=pb.OUTPUT_FORMAT_WEBP), timeout=60)
    assert Image.open(io.BytesIO(webp.outputs[0].data)).format == "WEBP"


def test_previews_every_n_steps(stub, proto_stubs):
    events = list(stub.Stream(request(proto_stubs.pb, num_inference_steps=6, preview_every=2), timeout=60))
    previews = [e.preview for e in events if e.HasField("preview")]
    assert [p.step for p in previews] == [1, 3], "previews after steps 2 and 4 (none after the last step)"
    assert all(p.data.startswith(PNG_MAGIC) and p.mime_type == "image/png" for p in previews)


def test_a_model_loaded_from_a_local_directory(stub, proto_stubs):
    pb = proto_stubs.pb
    local = stub.Generate(request(pb, model="local", seed=7), timeout=60)
    default = stub.Generate(request(pb, seed=7), timeout=60)
    assert local.model == "local" and local.outputs[0].data.startswith(PNG_MAGIC)
    assert local.outputs[0].data != default.outputs[0].data, "different weights (seed 1) must differ"


def test_the_default_model_draws_the_prompt_with_its_defaults(stub, proto_stubs):
    from engine_service.models import shapes

    pb = proto_stubs.pb
    response = stub.Generate(pb.GenerateRequest(prompt="a yellow square on a blue background", seed=1), timeout=60)
    assert [s.step for s in response.cache_stats.steps] == list(range(20))
    image = Image.open(io.BytesIO(response.outputs[0].data)).convert("RGB")
    assert image.size == (64, 64)
    assert shapes.centre_and_corner_colours(np.asarray(image)) == ("yellow", ["blue"] * 4)


def test_list_models_reports_models_and_limits(stub, proto_stubs):
    response = stub.ListModels(proto_stubs.pb.ListModelsRequest(), timeout=10)
    models = {m.name: m for m in response.models}
    assert set(models) == {"default", "local", "wan"}
    wan = models["wan"]
    assert (wan.family, wan.output_kind, wan.default_frames, wan.source) == ("wan", "video", 5, "in-process")
    assert wan.supports_negative_prompt and wan.spatial_factor == 16 and wan.num_transformer_blocks == 4
    default = models["default"]
    assert default.is_default and not models["local"].is_default
    assert default.family == "flux" and default.pipeline_class == "FluxPipeline" and default.output_kind == "image"
    assert default.spatial_factor == 8 and default.source == "builtin" and default.num_transformer_blocks == 6
    assert (default.default_width, default.default_height, default.default_steps) == (64, 64, 20)
    assert models["local"].spatial_factor == 16 and models["local"].source.endswith("tiny-flux")
    assert response.limits.max_steps >= 1 and response.limits.max_request_bytes > 0


def test_stats_count_requests_and_phase_durations(stub, proto_stubs):
    pb = proto_stubs.pb
    before = {m.model: m for m in stub.Stats(pb.StatsRequest(), timeout=10).models}["default"]
    stub.Generate(request(pb, num_inference_steps=3), timeout=60)
    after = stub.Stats(pb.StatsRequest(model="default"), timeout=10)
    (stats,) = after.models
    assert stats.success.count == before.success.count + 1
    assert stats.steps == before.steps + 3 and stats.computed_steps == before.computed_steps + 3
    for phase in ("prepare", "denoise", "decode", "encode"):
        assert getattr(stats, phase).count == stats.success.count
        assert getattr(stats, phase).total_ms > getattr(before, phase).total_ms
    assert stats.queue.count >= stats.success.count
    assert stats.last_request_unix_ms > 0 and stats.last_request_unix_ms >= before.last_request_unix_ms
    assert after.uptime_s > 0 and after.device == "cpu" and after.queue_depth == 0


def _stream_in_thread(stub, req, events: list, errors: list) -> threading.Thread:
    def consume():
        try:
            for event in stub.Stream(req, timeout=120):
                events.append(event)
        except grpc.RpcError as err:
            errors.append(err)

    thread = threading.Thread(target=consume)
    thread.start()
    return thread


def _wait_for(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise TimeoutError("condition not reached")


def test_cancel_stops_a_running_request_and_the_next_one_runs(stub, proto_stubs):
    pb = proto_stubs.pb
    before = {m.model: m for m in stub.Stats(pb.StatsRequest(), timeout=10).models}["default"]
    events, errors = [], []
    long_request = request(pb, request_id="cancel-me", num_inference_steps=400, width=256, height=256)
    thread = _stream_in_thread(stub, long_request, events, errors)
    _wait_for(lambda: sum(e.HasField("step") for e in events) >= 2)
    assert stub.Cancel(pb.CancelRequest(request_id="cancel-me"), timeout=10).state == "running"
    thread.join(30)
    assert errors and errors[0].code() == grpc.StatusCode.CANCELLED
    assert sum(e.HasField("step") for e in events) < 400
    assert stub.Generate(request(pb), timeout=60).outputs
    after = {m.model: m for m in stub.Stats(pb.StatsRequest(), timeout=10).models}["default"]
    assert after.cancelled.count == before.cancelled.count + 1


def test_cancel_of_an_unknown_request_is_not_found(stub, proto_stubs):
    with pytest.raises(grpc.RpcError) as info:
        stub.Cancel(proto_stubs.pb.CancelRequest(request_id="no-such-request"), timeout=10)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_a_queued_request_can_be_cancelled_and_positions_are_reported(stub, proto_stubs):
    pb = proto_stubs.pb
    running_events, running_errors = [], []
    queued_events, queued_errors = [], []
    first = _stream_in_thread(
        stub,
        request(pb, request_id="blocker", num_inference_steps=400, width=256, height=256),
        running_events,
        running_errors,
    )
    _wait_for(lambda: any(e.HasField("step") for e in running_events))
    second = _stream_in_thread(stub, request(pb, request_id="waiter"), queued_events, queued_errors)
    _wait_for(lambda: any(e.HasField("queued") for e in queued_events))
    assert queued_events[0].queued.position == 0 and queued_events[0].queued.request_id == "waiter"
    assert stub.Cancel(pb.CancelRequest(request_id="waiter"), timeout=10).state == "queued"
    second.join(30)
    assert queued_errors and queued_errors[0].code() == grpc.StatusCode.CANCELLED
    assert not any(e.HasField("started") for e in queued_events)
    stub.Cancel(pb.CancelRequest(request_id="blocker"), timeout=10)
    first.join(30)


def test_a_deadline_cancels_the_running_request(stub, proto_stubs):
    pb = proto_stubs.pb

    def default_stats():
        return {m.model: m for m in stub.Stats(pb.StatsRequest(), timeout=10).models}["default"]

    before = default_stats()
    with pytest.raises(grpc.RpcError) as info:
        stub.Generate(request(pb, request_id="too-slow", num_inference_steps=400, width=256, height=256), timeout=0.5)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    # The engine stops the abandoned job at its next step: the next request is not held up by 400 steps.
    assert stub.Generate(request(pb), timeout=60).outputs
    after = default_stats()
    assert after.cancelled.count == before.cancelled.count + 1
    assert after.cancelled_steps - before.cancelled_steps < 400


def test_duplicate_request_id_while_running_is_already_exists(stub, proto_stubs):
    pb = proto_stubs.pb
    events, errors = [], []
    thread = _stream_in_thread(
        stub, request(pb, request_id="twin", num_inference_steps=400, width=256, height=256), events, errors
    )
    _wait_for(lambda: any(e.HasField("step") for e in events))
    with pytest.raises(grpc.RpcError) as info:
        stub.Generate(request(pb, request_id="twin"), timeout=10)
    assert info.value.code() == grpc.StatusCode.ALREADY_EXISTS
    stub.Cancel(pb.CancelRequest(request_id="twin"), timeout=10)
    thread.join(30)
