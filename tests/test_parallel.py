"""Parallelism on CPU with gloo and 2 ranks: context parallel (Ulysses, Ring), tensor parallel,
the cache under context parallel, the torchrun-launched engine, a lost rank, and the SDK
balancing over two engines.

The library checks share one spawned process group (tests/parallel_ranks.py); each
engine launch is one subprocess group.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time

import grpc
import numpy as np
import parallel_ranks
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from PIL import Image
from tiny_families import all_cases

from engine_service.metrics import psnr
from engine_service.models.families import FAMILIES
from engine_service.models.registry import family_for_pipeline
from engine_service.parallel import PLANS, ParallelConfig
from tests.conftest import free_port, wait_serving

TORCHRUN = os.path.join(os.path.dirname(sys.executable), "torchrun")
FAMILY_NAMES = ("flux", "wan")
MODES = ("ulysses=2", "ring=2", "tp=2")
CASES = {case.name: case for case in all_cases()}
#: (tiny case, split) for every other family entry that claims context or tensor parallel.
CASE_SPLITS = [(name, mode) for name, modes in parallel_ranks.case_modes().items() for mode in modes]


# -- configuration -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "degrees", "world"),
    [
        ("none", (1, 1, 1), 1),
        ("ulysses=2", (2, 1, 1), 2),
        ("ring=2", (1, 2, 1), 2),
        ("ulysses=2,ring=2", (2, 2, 1), 4),
        (" tp=2 ", (1, 1, 2), 2),
        ("ulysses=2,tp=2", (2, 1, 2), 4),
    ],
)
def test_parallel_flag_parses_degrees(text, degrees, world):
    config = ParallelConfig.parse(text)
    assert (config.ulysses, config.ring, config.tp) == degrees
    assert config.world_size == world


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ulysses", "NAME=DEGREE"),
        ("pipeline=2", "NAME=DEGREE"),
        ("ulysses=two", "whole number"),
        ("ulysses=0", "at least 1"),
        ("ring=2,ring=2", "twice"),
    ],
)
def test_bad_parallel_flag_is_refused_with_the_reason(text, message):
    with pytest.raises(ValueError, match=message):
        ParallelConfig.parse(text)


def test_family_flags_say_which_plans_exist():
    for family in FAMILIES:
        plan = PLANS.get(family.name)
        assert family.context_parallel == (plan is not None and plan.context is not None), family.name
        assert family.tensor_parallel == (plan is not None and plan.tensor is not None), family.name
    assert {f.name for f in FAMILIES if f.context_parallel and f.tensor_parallel} >= set(FAMILY_NAMES)


def test_serve_with_parallel_outside_torchrun_says_how_to_launch(monkeypatch, capsys):
    from engine_service.cli import main

    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert main(["serve", "--parallel", "ulysses=2", "--device", "cpu"]) == 2
    assert "torchrun --nproc-per-node 2 -m engine_service serve --parallel ulysses=2" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("speed", "split", "message"),
    [
        ({"quantize": "int8-dynamic"}, "tp=2", "--quantize int8-dynamic with --parallel tp=2"),
        ({"offload": "model"}, "ulysses=2", "--offload model with --parallel ulysses=2"),
    ],
)
def test_parallel_refuses_what_cannot_be_split_naming_both_flags(speed, split, message):
    import torch

    from engine_service.models import load_builtin_default
    from engine_service.parallel.parallelize import ParallelPlanError
    from engine_service.parallel.ranks import parallelize_models
    from engine_service.quant import SpeedConfig

    model = load_builtin_default(torch.device("cpu"), torch.float32, SpeedConfig(**speed), defer_speed=True)
    with pytest.raises(ParallelPlanError, match=message):
        parallelize_models({"default": model}, ParallelConfig.parse(split), torch.device("cpu"))
    assert model.speed_pending  # refused before anything was split or applied


@pytest.mark.parametrize(
    ("backend", "split", "message"),
    [
        ("_native_math", "ulysses=2", "has no context-parallel support"),
        ("native", "ring=2", "log-sum-exp"),
    ],
)
def test_context_parallel_refuses_an_attention_backend_it_cannot_run_on(backend, split, message):
    import torch

    from engine_service.parallel import attention

    with pytest.raises(ValueError, match=f"--attention-backend {backend} with --parallel {split}: .*{message}"):
        attention.backend_for(ParallelConfig.parse(split), torch.device("cpu"), backend)
    assert attention.backend_for(ParallelConfig.parse("ulysses=2"), torch.device("cpu"), "native") == "native"


# -- the library on a 2-rank gloo group ------------------------------------------------


@pytest.fixture(scope="module")
def rank_results(tmp_path_factory) -> list[dict]:
    """Both ranks' results of tests/parallel_ranks.run_checks."""
    import torch.multiprocessing as mp

    out = tmp_path_factory.mktemp("ranks")
    mp.spawn(parallel_ranks.run_checks, args=(2, free_port(), str(out)), nprocs=2)
    results = [json.loads((out / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    for rank, result in enumerate(results):
        assert not result["errors"], f"rank {rank}:\n" + "\n".join(result["errors"])
    return results


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_parallel_output_matches_one_process(rank_results, family, mode):
    assert rank_results[0]["psnr"][f"{family} {mode}"] >= 40.0


def test_every_family_claiming_a_split_runs_split():
    claimed = {family.name for family in FAMILIES if family.context_parallel or family.tensor_parallel}
    checked = {family_for_pipeline(CASES[name].pipeline_class).name for name, _ in CASE_SPLITS}
    assert claimed == checked | set(FAMILY_NAMES)
    assert len(claimed) > len(FAMILY_NAMES)


@pytest.mark.parametrize(("case", "mode"), CASE_SPLITS, ids=[f"{case}-{mode}" for case, mode in CASE_SPLITS])
def test_family_case_split_matches_one_process(rank_results, case, mode):
    """The family's tiny case through the engine's worker, split 2 ways, against the whole model:
    the same images, the sequence (or the weights) really split, the cache's diffs unchanged."""
    for rank, result in enumerate(rank_results):
        outcome = result["cases"][f"{case} {mode}"]
        assert outcome["psnr"] >= 40.0
        whole, split = outcome["tokens"]["whole"], outcome["tokens"]["split"]
        assert len(whole) == CASES[case].experts and split.keys() == whole.keys()  # every expert ran
        for transformer, tokens in whole.items():
            if mode.startswith("tp"):  # weights split, the sequence whole
                assert outcome["distributed"][transformer] and split[transformer] == tokens
            else:  # the sequence split as tensor_split cuts it: rank 0 holds the longer part when odd
                assert not outcome["distributed"][transformer]
                assert split[transformer] == (tokens + 1 - rank) // 2 < tokens
        diffs = outcome["diffs"]
        assert any(d is not None for step in diffs["whole"] for d in step)  # steps after warm-up have diffs
        expected = [[d if d is None else pytest.approx(d, rel=1e-4) for d in step] for step in diffs["whole"]]
        assert diffs["split"] == expected


@pytest.mark.parametrize("encoder", ["t5", "t5-gated", "umt5"])
def test_text_encoder_tensor_parallel_matches_the_whole_encoder(rank_results, encoder):
    for result in rank_results:
        outcome = result["text_encoders"][encoder]
        assert outcome["local_rows"] * 2 == outcome["rows"]  # really split
        assert outcome["layers"] >= 13  # 2 blocks x (q, k, v, o, MLP in and out) and a position bias table
        assert outcome["max_diff"] < 1e-5


def test_context_parallel_ran_on_odd_sequence_lengths():
    """The outputs above split odd sequences: uneven shards (one rank holds a token more)."""
    flux_tokens = (parallel_ranks.FLUX_SIZE // 16) ** 2  # 8x VAE, 2x2 packing
    wan_tokens = (parallel_ranks.WAN_FRAMES - 1) // 4 + 1  # 4x temporal VAE; 16x16 is one token per frame
    assert flux_tokens % 2 == 1 and wan_tokens % 2 == 1


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_cache_under_context_parallel_caches_the_same_steps(rank_results, family):
    for result in rank_results:
        runs = result["cached_steps"][family]
        single, split = runs["single"], runs["ulysses=2"]
        assert split["cached"] == single["cached"]
        assert 0 < len(single["cached"]) < 7  # some steps cached, some computed after warm-up
        for step, diff in single["diffs"].items():
            assert split["diffs"][step] == pytest.approx(diff, rel=1e-4)


def test_rank_local_diffs_are_reduced_to_one_value(rank_results):
    """Rank 0's slice did not change, rank 1's did: alone they would decide differently."""
    first, second = (result["diffs"] for result in rank_results)
    assert first["local"] == 0.0 and second["local"] == 0.5
    assert first["reduced"] == second["reduced"] == pytest.approx(first["whole"], rel=1e-6)


def _hybrid_results(tmp_path_factory, ranks: int) -> list[dict]:
    """Every rank's results of tests/parallel_ranks.run_hybrid_checks on a group of ``ranks``."""
    import torch.multiprocessing as mp

    out = tmp_path_factory.mktemp(f"hybrid{ranks}")
    mp.spawn(parallel_ranks.run_hybrid_checks, args=(ranks, free_port(), str(out)), nprocs=ranks)
    results = [json.loads((out / f"rank{rank}.json").read_text()) for rank in range(ranks)]
    for rank, result in enumerate(results):
        assert not result["errors"], f"rank {rank}:\n" + "\n".join(result["errors"])
    return results


@pytest.fixture(scope="module")
def two_rank_hybrid(tmp_path_factory) -> list[dict]:
    return _hybrid_results(tmp_path_factory, 2)


@pytest.fixture(scope="module")
def four_rank_results(tmp_path_factory) -> list[dict]:
    return _hybrid_results(tmp_path_factory, 4)


#: Tracing compiled blocks over DTensor weights takes minutes on two shared cores: the spawned groups
#: of the speed-stack checks get more than the suite's 300 s.
SPAWNED_GROUP_TIMEOUT_S = 900


@pytest.mark.timeout(SPAWNED_GROUP_TIMEOUT_S)
@pytest.mark.parametrize("run", list(parallel_ranks.HYBRID_RUNS))
def test_speed_stack_split_matches_one_process_and_caches_the_same_steps(two_rank_hybrid, run):
    """Compile, quantization (of the transformer and the text encoders), an attention backend and a cache
    preset on a split model: the image of one process with the same stack, the same cached steps on every
    rank, and every transformer call compiled."""
    _check_hybrid([result["hybrid"][run] for result in two_rank_hybrid])


def _check_hybrid(outcomes: list[dict]) -> None:
    whole_cached = outcomes[0]["whole"]["cached_steps"]
    assert whole_cached, "the preset cached no step"
    for outcome in outcomes:
        assert outcome["psnr"] >= 30.0
        assert outcome["split"]["cached_steps"] == whole_cached  # every rank, as one process
        compiled = outcome["split"]["compile"]
        assert compiled["graphs"] > 0 and compiled["compiled_calls"] > 0 and compiled["eager_calls"] == 0


@pytest.mark.timeout(SPAWNED_GROUP_TIMEOUT_S)
@pytest.mark.parametrize("run", list(parallel_ranks.HYBRID_RUNS_4))
def test_context_times_tensor_parallel_matches_one_process(four_rank_results, run):
    """ulysses=2,tp=2 on one 2-D mesh: weights split over the tp ranks, the sequence over the ulysses ranks."""
    outcomes = [result["hybrid"][run] for result in four_rank_results]
    _check_hybrid(outcomes)
    for rank, outcome in enumerate(outcomes):
        (whole,) = outcome["whole"]["tokens"].values()
        (split,) = outcome["split"]["tokens"].values()
        assert outcome["split"]["distributed"]["transformer"]
        # mesh (ring, ulysses, tp): ranks 0, 1 hold the first (longer) half of the odd sequence
        assert split == (whole + 1 - rank // 2) // 2 < whole


# -- the engine under torchrun ------------------------------------------------------------


def _launch(command: list[str], env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
        start_new_session=True,
    )


def _end(process: subprocess.Popen) -> str:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return process.stderr.read() if process.stderr else ""


@pytest.fixture(scope="module")
def torchrun_engine():
    """``torchrun --nproc-per-node 2 -m engine_service serve --parallel ulysses=2`` on CPU."""
    port = free_port()
    command = [
        TORCHRUN,
        "--nproc-per-node",
        "2",
        "--master-addr",
        "127.0.0.1",
        "--master-port",
        str(free_port()),
        "-m",
        "engine_service",
        "serve",
        "--parallel",
        "ulysses=2",
        "--device",
        "cpu",
        "--port",
        str(port),
    ]
    process = _launch(command)
    address = f"127.0.0.1:{port}"
    try:
        wait_serving(address, timeout=180, process=process)
    except Exception:
        raise RuntimeError("the torchrun engine did not start:\n" + _end(process)) from None
    yield address
    _end(process)


def _pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def test_torchrun_engine_answers_generate_like_one_process(torchrun_engine, stub, proto_stubs):
    pb = proto_stubs.pb
    request = pb.GenerateRequest(
        prompt="a yellow triangle on a blue background",
        num_inference_steps=6,
        seed=11,
        cache=pb.CachePolicy(preset="fast"),
    )
    single = stub.Generate(request, timeout=120)
    with grpc.insecure_channel(torchrun_engine) as channel:
        split = proto_stubs.grpc.EngineStub(channel).Generate(request, timeout=120)
    assert len(split.outputs) == len(single.outputs) == 1
    a, b = split.outputs[0], single.outputs[0]
    assert (a.mime_type, a.width, a.height) == (b.mime_type, b.width, b.height)
    assert psnr(_pixels(a.data), _pixels(b.data)) >= 40.0
    assert (split.seed, split.model) == (single.seed, single.model)
    assert [(s.step, s.cached) for s in split.cache_stats.steps] == [
        (s.step, s.cached) for s in single.cache_stats.steps
    ]
    assert split.cache_stats.policy == single.cache_stats.policy


def test_torchrun_engine_answers_stream_like_one_process(torchrun_engine, stub, proto_stubs):
    pb = proto_stubs.pb
    request = pb.GenerateRequest(prompt="a red circle", num_inference_steps=5, seed=4, preview_every=2)

    def summary(events):
        kinds, steps, previews, completed = [], [], 0, None
        for event in events:
            kind = event.WhichOneof("event")
            kinds.append(kind)
            if kind == "step":
                steps.append((event.step.step, event.step.total_steps))
            elif kind == "preview":
                previews += 1
            elif kind == "completed":
                completed = event.completed
        return kinds, steps, previews, completed

    single = summary(stub.Stream(request, timeout=120))
    with grpc.insecure_channel(torchrun_engine) as channel:
        split = summary(proto_stubs.grpc.EngineStub(channel).Stream(request, timeout=120))
    assert split[:3] == single[:3]
    assert single[2] == 2
    assert psnr(_pixels(split[3].outputs[0].data), _pixels(single[3].outputs[0].data)) >= 40.0


def test_cancel_reaches_every_rank_of_the_torchrun_engine(torchrun_engine, proto_stubs):
    """A running request cancelled mid-way stops on all ranks: the next request runs normally."""
    pb = proto_stubs.pb
    with grpc.insecure_channel(torchrun_engine) as channel:
        engine = proto_stubs.grpc.EngineStub(channel)
        request = pb.GenerateRequest(prompt="a red circle", num_inference_steps=400, request_id="long-one")
        steps = 0
        with pytest.raises(grpc.RpcError) as cancelled:
            for event in engine.Stream(request, timeout=120):
                if event.WhichOneof("event") == "step":
                    steps += 1
                    if steps == 2:
                        engine.Cancel(pb.CancelRequest(request_id="long-one"), timeout=10)
        assert cancelled.value.code() == grpc.StatusCode.CANCELLED
        assert steps < 400
        after = engine.Generate(pb.GenerateRequest(prompt="a red circle", num_inference_steps=3, seed=1), timeout=60)
        assert len(after.outputs) == 1 and len(after.cache_stats.steps) == 3


@pytest.mark.parametrize("when", ["idle", "in flight"])
def test_a_lost_rank_turns_the_engine_not_serving(proto_stubs, when):
    """Ranks started as torchrun starts them; rank 1 is killed; rank 0 stays up and says why it cannot serve.

    Idle, rank 0 notices through its heartbeat; in flight, the request fails at its next collective.
    (Under torchrun itself the launcher then stops rank 0 as well: it ends a group whose member died.)
    """
    port, master = free_port(), free_port()
    base = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(master), "WORLD_SIZE": "2"}
    command = [sys.executable, "-m", "engine_service", "serve", "--parallel", "ring=2", "--device", "cpu"]
    command += ["--parallel-timeout", "20", "--port", str(port)]
    ranks = [_launch(command, {**base, "RANK": str(r), "LOCAL_RANK": str(r)}) for r in (0, 1)]
    address = f"127.0.0.1:{port}"
    pb = proto_stubs.pb
    try:
        wait_serving(address, timeout=180, process=ranks[0])
        with grpc.insecure_channel(address) as channel:
            engine = proto_stubs.grpc.EngineStub(channel)
            if when == "idle":
                ranks[1].kill()
            else:
                long_request = pb.GenerateRequest(prompt="a cat", num_inference_steps=1000)
                with pytest.raises(grpc.RpcError) as failed:
                    for event in engine.Stream(long_request, timeout=120):
                        if event.WhichOneof("event") == "step" and event.step.step == 1:
                            ranks[1].kill()
                assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
                assert "rank" in failed.value.details()
            ranks[1].wait()
            health = health_pb2_grpc.HealthStub(channel)
            deadline = time.monotonic() + 60
            while health.Check(health_pb2.HealthCheckRequest(), timeout=5).status != (
                health_pb2.HealthCheckResponse.NOT_SERVING
            ):
                assert time.monotonic() < deadline, "health still SERVING a minute after a rank was lost"
                time.sleep(0.2)
            with pytest.raises(grpc.RpcError) as refused:
                engine.Generate(pb.GenerateRequest(prompt="a cat", num_inference_steps=2), timeout=30)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "not serving" in refused.value.details() and "rank" in refused.value.details()
        assert ranks[0].poll() is None
    finally:
        for process in ranks:
            _end(process)


# -- the SDK over several engines ----------------------------------------------------------


@pytest.fixture(scope="module")
def second_engine():
    """A second single-process engine serving the builtin default model."""
    from engine_service.bootstrap import build_engine
    from engine_service.config import ServerConfig
    from engine_service.server.background import BackgroundServer

    server = BackgroundServer(build_engine([], device="cpu"), ServerConfig(host="127.0.0.1", port=0)).start()
    yield server
    server.stop()


def test_sdk_round_robin_spreads_requests_over_engines(engine_server, second_engine):
    from client_sdk import Client

    addresses = [engine_server.address, second_engine.address]

    def successes(address: str) -> int:
        with Client(address, timeout=30) as client:
            return sum(m.success.count for m in client.stats(model="default").models)

    before = [successes(a) for a in addresses]
    target = "ipv4:" + ",".join(addresses)
    with Client(target, timeout=60, channel_options=[("grpc.lb_policy_name", "round_robin")]) as client:
        for seed in range(4):
            client.generate("a red circle", num_inference_steps=2, seed=seed)
    gained = [successes(a) - b for a, b in zip(addresses, before, strict=True)]
    assert sum(gained) == 4
    assert all(g >= 1 for g in gained), gained
