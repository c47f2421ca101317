"""Caching through the contract: policies in requests, per-step decisions in events and responses."""

from __future__ import annotations

import threading

import grpc
import pytest

from client_sdk import CachePolicy, Client, Step
from engine_service.cache import steps_mask


def _request(pb, cache=None, **fields):
    base = {"prompt": "a red circle", "width": 64, "height": 64, "num_inference_steps": 8, "seed": 5}
    base.update(fields)
    if cache is not None:
        base["cache"] = pb.CachePolicy(**cache)
    return pb.GenerateRequest(**base)


def _cached(response) -> list[int]:
    return [s.step for s in response.cache_stats.steps if s.cached]


def test_a_mask_preset_caches_its_zero_steps_and_events_say_so(stub, proto_stubs):
    pb = proto_stubs.pb
    zeros = [i for i, m in enumerate(steps_mask(total_steps=8, mask_policy="fast")) if m == 0]
    response = stub.Generate(_request(pb, cache={"preset": "fast"}), timeout=60)
    assert _cached(response) == zeros
    assert response.cache_stats.cached_steps == len(zeros) and response.cache_stats.computed_steps == 8 - len(zeros)
    assert "_SCM11101001_static" in response.cache_stats.policy
    events = list(stub.Stream(_request(pb, cache={"preset": "fast"}), timeout=60))
    steps = [e.step for e in events if e.WhichOneof("event") == "step"]
    assert [s.step for s in steps if s.cached] == zeros
    completed = events[-1].completed
    assert completed.outputs[0].sha256 == response.outputs[0].sha256


def test_threshold_zero_gives_the_uncached_image_bit_for_bit(stub, proto_stubs):
    pb = proto_stubs.pb
    plain = stub.Generate(_request(pb), timeout=60)
    zero = stub.Generate(_request(pb, cache={"preset": "dbcache", "residual_diff_threshold": 0.0}), timeout=60)
    assert zero.outputs[0].sha256 == plain.outputs[0].sha256
    assert _cached(zero) == [] and plain.cache_stats.policy == "none"
    assert zero.cache_stats.policy.startswith("DBCache_F1B0")


def test_threshold_one_caches_every_step_after_warmup(stub, proto_stubs):
    pb = proto_stubs.pb
    policy = {"residual_diff_threshold": 1.0, "max_warmup_steps": 2, "max_continuous_cached_steps": -1}
    response = stub.Generate(_request(pb, cache=policy), timeout=60)
    assert _cached(response) == [2, 3, 4, 5, 6, 7]
    assert all(not s.HasField("residual_diff") for s in response.cache_stats.steps)


def test_dynamic_decisions_report_their_residual_diffs(stub, proto_stubs):
    pb = proto_stubs.pb
    policy = {"preset": "dbcache", "residual_diff_threshold": 0.3, "max_warmup_steps": 2, "taylorseer_order": 1}
    response = stub.Generate(_request(pb, cache=policy), timeout=60)
    steps = response.cache_stats.steps
    assert [s.HasField("residual_diff") for s in steps] == [False, False] + [True] * 6
    assert [s.step for s in steps if s.cached] == [
        s.step for s in steps if s.HasField("residual_diff") and s.residual_diff < 0.3
    ]
    assert response.cache_stats.policy.endswith("_T1O1")


def test_dbprune_reports_pruned_blocks_per_step(stub, proto_stubs):
    pb = proto_stubs.pb
    policy = {
        "cache_type": "dbprune",
        "residual_diff_threshold": 1.0,
        "max_warmup_steps": 2,
        "bn_compute_blocks": 1,
        "max_continuous_cached_steps": -1,
    }
    response = stub.Generate(_request(pb, cache=policy), timeout=60)
    pruned = [s.pruned_blocks for s in response.cache_stats.steps]
    assert pruned == [0, 0, 4, 4, 4, 4, 4, 4]
    assert response.cache_stats.pruned_ratio == pytest.approx(24 / 32)
    assert response.cache_stats.policy.startswith("DBPrune_F1B1")


def _pipeline(engine_server):
    return engine_server.engine.models["default"].pipeline


def test_same_request_same_steps_and_image_after_a_cancelled_and_a_failed_request(stub, proto_stubs, engine_server):
    pb = proto_stubs.pb
    policy = {"preset": "dbcache", "residual_diff_threshold": 0.3, "max_warmup_steps": 2}
    first = stub.Generate(_request(pb, cache=policy), timeout=60)

    # A cached request cancelled mid-run.
    cancelled = threading.Event()
    stream = stub.Stream(_request(pb, cache=policy, num_inference_steps=400, width=128, height=128), timeout=120)

    def consume():
        try:
            for event in stream:
                if event.WhichOneof("event") == "step" and event.step.step >= 3:
                    stream.cancel()
        except grpc.RpcError as err:
            assert err.code() == grpc.StatusCode.CANCELLED
            cancelled.set()

    consumer = threading.Thread(target=consume)
    consumer.start()
    consumer.join(timeout=120)
    assert cancelled.is_set()

    # A cached request that fails inside the transformer. The worker may still be stopping the
    # cancelled run: a request queued behind it returns once the pipeline is idle.
    stub.Generate(_request(pb, num_inference_steps=1), timeout=60)
    block = _pipeline(engine_server).transformer.single_transformer_blocks[2]
    calls = {"n": 0}

    def fail_on_the_fifth_call(module, args):
        calls["n"] += 1
        if calls["n"] == 5:
            raise RuntimeError("injected block failure")

    hook = block.register_forward_pre_hook(fail_on_the_fifth_call)
    try:
        with pytest.raises(grpc.RpcError) as info:
            stub.Generate(_request(pb, cache=policy, seed=99), timeout=60)
    finally:
        hook.remove()
    # INTERNAL names the request, never the exception (the server log has it).
    assert info.value.code() == grpc.StatusCode.INTERNAL and "failed inside the engine" in info.value.details()
    assert "injected block failure" not in info.value.details()

    again = stub.Generate(_request(pb, cache=policy), timeout=60)
    assert _cached(again) == _cached(first) and again.outputs[0].sha256 == first.outputs[0].sha256
    assert [s.residual_diff for s in again.cache_stats.steps] == [s.residual_diff for s in first.cache_stats.steps]


def test_stats_count_cached_and_computed_steps_per_model(stub, proto_stubs):
    pb = proto_stubs.pb

    def counters():
        (model,) = stub.Stats(pb.StatsRequest(model="default"), timeout=10).models
        return model.cached_steps, model.computed_steps

    cached_before, computed_before = counters()
    stub.Generate(_request(pb, cache={"preset": "ultra"}), timeout=60)
    cached_after, computed_after = counters()
    zeros = steps_mask(total_steps=8, mask_policy="ultra").count(0)
    assert (cached_after - cached_before, computed_after - computed_before) == (zeros, 8 - zeros)


def test_the_sdk_carries_policies_and_per_step_decisions(address):
    policy = CachePolicy(
        preset="dbcache", residual_diff_threshold=1.0, max_warmup_steps=3, max_continuous_cached_steps=2
    )
    with Client(address, timeout=60) as client:
        result = client.generate("a cat", width=64, height=64, num_inference_steps=8, cache=policy)
        assert [s.cached for s in result.cache_stats.steps] == [False] * 3 + [True, True, False, True, True]
        events = list(client.stream("a cat", width=64, height=64, num_inference_steps=8, cache="slow"))
    steps = [e for e in events if isinstance(e, Step)]
    zeros = [i for i, m in enumerate(steps_mask(total_steps=8, mask_policy="slow")) if m == 0]
    assert [s.step for s in steps if s.cached] == zeros
    assert CachePolicy.parse("dbcache:residual_diff_threshold=0.2,steps_computation_mask=1/0") == CachePolicy(
        preset="dbcache", residual_diff_threshold=0.2, steps_computation_mask=(1, 0)
    )
    with pytest.raises(ValueError, match="unknown cache policy field 'warp'"):
        CachePolicy.parse("fast:warp=9")


@pytest.fixture(scope="module")
def ultra_server():
    """An engine whose default cache policy (the serve flag) is ``ultra``."""
    from engine_service.bootstrap import build_engine
    from engine_service.config import ServerConfig
    from engine_service.server.background import BackgroundServer

    engine = build_engine([], device="cpu")
    server = BackgroundServer(engine, ServerConfig(host="127.0.0.1", port=0, cache_policy="ultra")).start()
    yield server
    server.stop()


def test_the_server_default_policy_applies_when_a_request_sets_none(ultra_server):
    zeros = steps_mask(total_steps=8, mask_policy="ultra").count(0)
    with Client(ultra_server.address, timeout=60) as client:
        plain = client.generate("a cat", width=64, height=64, num_inference_steps=8)
        assert plain.cache_stats.cached_steps == zeros and "_static" in plain.cache_stats.policy
        off = client.generate("a cat", width=64, height=64, num_inference_steps=8, cache="none")
        assert off.cache_stats.cached_steps == 0 and off.cache_stats.policy == "none"
        # Overrides on "default" apply on top of the server's policy.
        dynamic = client.generate(
            "a cat",
            width=64,
            height=64,
            num_inference_steps=8,
            cache=CachePolicy(preset="default", steps_computation_policy="dynamic", residual_diff_threshold=0.0),
        )
        assert dynamic.cache_stats.cached_steps == 0 and "_dynamic" in dynamic.cache_stats.policy


# -- Wan: video output, CFG as a second transformer call ----------------------------------------


def _wan(pb, cache=None, **fields):
    return _request(pb, cache=cache, model="wan", prompt="a cat", negative_prompt="blurry", **fields)


def test_wan_returns_an_mp4_or_png_frames(stub, proto_stubs):
    pb = proto_stubs.pb
    (video,) = stub.Generate(_wan(pb, width=16, height=16, num_inference_steps=3), timeout=60).outputs
    assert video.mime_type == "video/mp4" and video.data[4:8] == b"ftyp"
    assert (video.width, video.height, video.num_frames) == (16, 16, 5)
    frames = stub.Generate(
        _wan(pb, width=16, height=16, num_inference_steps=3, output_format=pb.OUTPUT_FORMAT_PNG_FRAMES), timeout=60
    ).outputs
    assert len(frames) == 5 and all(f.mime_type == "image/png" and f.num_frames == 1 for f in frames)
    with pytest.raises(grpc.RpcError) as info:
        stub.Generate(_wan(pb, width=16, height=16, num_frames=6), timeout=60)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "num_frames" in info.value.details()


def test_wan_caches_each_cfg_branch_on_its_own(stub, proto_stubs):
    pb = proto_stubs.pb
    frames = {"width": 16, "height": 16, "num_inference_steps": 6, "output_format": pb.OUTPUT_FORMAT_PNG_FRAMES}
    plain = stub.Generate(_wan(pb, **frames), timeout=60)
    zero = stub.Generate(_wan(pb, cache={"preset": "dbcache", "residual_diff_threshold": 0.0}, **frames), timeout=60)
    assert [o.sha256 for o in zero.outputs] == [o.sha256 for o in plain.outputs]

    always = {"residual_diff_threshold": 1.0, "max_warmup_steps": 2, "max_continuous_cached_steps": -1}
    response = stub.Generate(_wan(pb, cache=always, **frames), timeout=60)
    steps = response.cache_stats.steps
    assert [s.cached for s in steps] == [False, False, True, True, True, True]
    assert [s.cfg_cached for s in steps] == [False, False, True, True, True, True]
    assert response.cache_stats.cfg_cached_steps == 4

    dynamic = {"residual_diff_threshold": 0.08, "max_warmup_steps": 2, "max_continuous_cached_steps": -1}
    events = list(stub.Stream(_wan(pb, cache=dynamic, **frames), timeout=60))
    step_events = [e.step for e in events if e.WhichOneof("event") == "step"]
    assert len(step_events) == 6
    assert all(e.HasField("cfg_cached") for e in step_events)
    assert all(e.HasField("residual_diff") and e.HasField("cfg_residual_diff") for e in step_events[2:])
    assert all(e.cached == (e.residual_diff < 0.08) for e in step_events[2:])
    assert all(e.cfg_cached == (e.cfg_residual_diff < 0.08) for e in step_events[2:])


def test_with_separate_cfg_off_a_step_is_cached_only_when_all_its_calls_were(stub, proto_stubs):
    pb = proto_stubs.pb
    frames = {"width": 16, "height": 16, "num_inference_steps": 4, "output_format": pb.OUTPUT_FORMAT_PNG_FRAMES}
    policy = {
        "residual_diff_threshold": 1.0,
        "max_warmup_steps": 1,
        "max_continuous_cached_steps": -1,
        "enable_separate_cfg": False,
    }
    steps = stub.Generate(_wan(pb, cache=policy, **frames), timeout=60).cache_stats.steps
    # Every call is a step of its own: call 0 (warmup) computed, call 1 (step 0's CFG call) cached.
    assert [s.cached for s in steps] == [False, True, True, True]
    assert not any(s.HasField("cfg_cached") for s in steps)


def test_the_policy_tag_prints_thresholds_as_given_and_an_idle_calibrator_as_inactive(stub, proto_stubs):
    pb = proto_stubs.pb
    policy = {"residual_diff_threshold": 0.2, "max_accumulated_residual_diff_threshold": 0.7}
    assert "_R0.2_" in stub.Generate(_request(pb, cache=policy), timeout=60).cache_stats.policy
    policy = {"residual_diff_threshold": 1.0, "max_warmup_steps": 1, "max_cached_steps": 1, "taylorseer_order": 1}
    stats = stub.Generate(_request(pb, cache=policy), timeout=60).cache_stats
    # Step 1 is the only cached step, with one computed step to extrapolate from.
    assert stats.policy.endswith("_T0O1") and stats.cached_steps == 1
    assert [s.calibrated for s in stats.steps if s.HasField("calibrated")] == [False]
    policy = {"residual_diff_threshold": 1.0, "max_warmup_steps": 3, "taylorseer_order": 1}
    stats = stub.Generate(_request(pb, cache=policy), timeout=60).cache_stats
    assert stats.policy.endswith("_T1O1")
    # Steps 0-2 computed (step 2 is the first that enters a difference), 3-5 cached, 6 computed, 7 cached.
    calibrated = [s.calibrated if s.HasField("calibrated") else None for s in stats.steps]
    assert calibrated == [None] * 3 + [False] * 3 + [None, True]


def test_teacache_and_magcache_cache_steps_and_stay_within_25_db_of_full_compute(stub, proto_stubs):
    import io

    import numpy as np
    from PIL import Image

    from engine_service.metrics import psnr

    def pixels(response) -> np.ndarray:
        return np.asarray(Image.open(io.BytesIO(response.outputs[0].data)).convert("RGB"))

    pb = proto_stubs.pb
    fields = {"prompt": "a red circle on a blue background", "num_inference_steps": 28, "seed": 3}
    full = stub.Generate(_request(pb, **fields), timeout=300)
    for kind, tag in (("teacache", "TeaCache_"), ("magcache", "MagCache_")):
        response = stub.Generate(_request(pb, cache={"cache_type": kind}, **fields), timeout=300)
        stats = response.cache_stats
        # The builtin model ships its calibration: the coefficients / curve come from it.
        assert stats.policy.startswith(tag) and stats.cached_steps > 0, stats.policy
        assert not stats.steps[-1].cached
        assert all(s.HasField("residual_diff") for s in stats.steps if s.cached)
        assert psnr(pixels(response), pixels(full)) >= 25.0, kind


# -- Wan 2.2: two experts, one request ------------------------------------------------------------


@pytest.fixture(scope="module")
def wan22_address():
    """An engine serving a tiny Wan 2.2 (two experts; the low-noise one runs steps 6-11 of 12)."""
    import torch
    from tiny_families.wan import build_wan22

    from engine_service.config import Limits, ServerConfig
    from engine_service.models import model_from_pipeline
    from engine_service.runtime.engine import AsyncEngine
    from engine_service.server.background import BackgroundServer

    defaults = {"width": 16, "height": 16, "frames": 5, "steps": 12, "call_defaults": {"max_sequence_length": 16}}
    model = model_from_pipeline("wan22", build_wan22(), torch.device("cpu"), defaults)
    engine = AsyncEngine({"wan22": model}, "wan22", Limits(), "cpu")
    server = BackgroundServer(engine, ServerConfig(host="127.0.0.1", port=0, metrics_port=0)).start()
    yield server.address
    server.stop()


def test_two_experts_follow_the_mask_and_caps_over_the_request(wan22_address):
    with Client(wan22_address, timeout=120) as client:
        fast = client.generate("a cat", negative_prompt="blurry", num_inference_steps=12, cache="fast")
        steps = fast.cache_stats.steps
        assert [s.step for s in steps if s.cached] == [3, 5, 6, 8, 9]
        assert [s.step for s in steps if s.cfg_cached] == [3, 5, 6, 8, 9]
        assert fast.cache_stats.computed_steps == 7 and not steps[-1].cached
        capped = client.generate(
            "a cat",
            negative_prompt="blurry",
            num_inference_steps=12,
            cache=CachePolicy(residual_diff_threshold=1.0, max_warmup_steps=1, max_cached_steps=2),
        )
        assert capped.cache_stats.cached_steps == 2 and capped.cache_stats.cfg_cached_steps == 2
