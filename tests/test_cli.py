"""The real ``ditserve`` command: the server as a subprocess, the client subcommands, the demo."""

from __future__ import annotations

import pathlib
import signal
import subprocess
import sys
import threading
import time

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tests.conftest import free_port, wait_serving

#: The console script installed next to the interpreter, as a user runs it.
DITSERVE = [str(pathlib.Path(sys.executable).parent / "ditserve")]


def _run(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*DITSERVE, *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def cli_server():
    """``ditserve serve --host 127.0.0.1 --port P`` with no other flag."""
    port = free_port()
    process = subprocess.Popen(
        [*DITSERVE, "serve", "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    address = f"127.0.0.1:{port}"
    try:
        wait_serving(address, timeout=120, process=process)
        yield process, address
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_served_default_model_answers_stubs_compiled_from_proto(cli_server, proto_stubs):
    _, address = cli_server
    pb = proto_stubs.pb
    with grpc.insecure_channel(address) as channel:
        stub = proto_stubs.grpc.EngineStub(channel)
        request = pb.GenerateRequest(prompt="a cat", width=64, height=64, num_inference_steps=4, seed=7)
        first = stub.Generate(request, timeout=60)
        second = stub.Generate(request, timeout=60)
        assert len(first.outputs) == 1 and first.outputs[0].data.startswith(b"\x89PNG")
        assert (first.outputs[0].width, first.outputs[0].height) == (64, 64)
        assert first.outputs[0].data == second.outputs[0].data
        models = stub.ListModels(pb.ListModelsRequest(), timeout=10).models
        assert [m.name for m in models] == ["default"] and models[0].is_default
        stream_request = pb.GenerateRequest(prompt="a cat", width=64, height=64, num_inference_steps=6, seed=7)
        kinds = [e.WhichOneof("event") for e in stub.Stream(stream_request, timeout=60)]
        assert kinds.count("step") == 6 and kinds.count("completed") == 1 and kinds[-1] == "completed"
        stats = stub.Stats(pb.StatsRequest(), timeout=10)
        assert stats.models[0].success.count == 3 and stats.models[0].denoise.total_ms > 0


def test_served_engine_lists_its_services_by_reflection(cli_server):
    _, address = cli_server
    with grpc.insecure_channel(address) as channel:
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        names = {
            s.name
            for r in reflection.ServerReflectionInfo(iter([request]), timeout=10)
            for s in r.list_services_response.service
        }
    assert "ditserve.v1.Engine" in names


def test_generate_stats_and_models_subcommands(cli_server, tmp_path):
    _, address = cli_server
    out = tmp_path / "images"
    result = _run(
        [
            "generate",
            "a red circle",
            "--target",
            address,
            "--width",
            "64",
            "--height",
            "64",
            "--steps",
            "3",
            "--seed",
            "5",
            "--out",
            str(out),
        ]
    )
    assert result.returncode == 0, result.stderr
    saved = sorted(out.glob("*.png"))
    assert len(saved) == 1 and saved[0].read_bytes().startswith(b"\x89PNG")
    assert str(saved[0]) in result.stdout
    table_rows = [line for line in result.stdout.splitlines() if line.strip().split(" ")[0] in {"0", "1", "2"}]
    assert len(table_rows) == 3, result.stdout
    stats = _run(["stats", "--target", address])
    assert stats.returncode == 0 and "default" in stats.stdout
    models = _run(["models", "--target", address])
    assert models.returncode == 0 and "default" in models.stdout and "flux" in models.stdout


def test_generate_takes_a_cache_policy_and_prints_each_decision(cli_server, tmp_path):
    _, address = cli_server
    policy = "dbcache:residual_diff_threshold=1.0,max_warmup_steps=1"
    result = _run(
        ["generate", "a cat", "--target", address, "--width", "64", "--height", "64", "--steps", "3"]
        + ["--cache", policy, "--out", str(tmp_path)]
    )
    assert result.returncode == 0, result.stderr
    assert "computed 1 / cached 2 of 3 steps, policy DBCache_F1B0_W1I1M0MC3_R1.0" in result.stdout
    bad = _run(["generate", "a cat", "--target", address, "--cache", "fast:warp=1"])
    assert bad.returncode == 2 and "--cache" in bad.stderr and "'warp'" in bad.stderr
    assert "valid fields: fn_compute_blocks" in bad.stderr


def test_serve_refuses_an_unknown_default_cache_policy():
    result = _run(["serve", "--port", "0", "--cache-policy", "warp"])
    assert result.returncode == 2 and "warp" in result.stderr


def test_generate_reports_a_bad_request_clearly(cli_server):
    _, address = cli_server
    result = _run(["generate", "a cat", "--target", address, "--width", "65"])
    assert result.returncode == 1
    assert "width" in result.stderr and "multiple of 8" in result.stderr


def test_generate_sends_the_strength_the_model_then_refuses(cli_server):
    _, address = cli_server
    result = _run(["generate", "a cat", "--target", address, "--strength", "0.5"])
    assert result.returncode == 1
    assert "strength" in result.stderr and "takes no strength" in result.stderr


def test_sigterm_stops_the_server_cleanly(cli_server):
    process, address = cli_server
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=120) == 0, process.stdout.read()


def test_sigterm_drains_running_and_queued_work_then_exits_0():
    """SIGTERM: NOT_SERVING at once, new work refused, running and queued work finishes, exit 0."""

    port = free_port()
    # A grace period no busy test machine can outlast: the drain must finish the work, not cancel it.
    process = subprocess.Popen(
        [*DITSERVE, "serve", "--port", str(port), "--grace", "300"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    address = f"127.0.0.1:{port}"
    try:
        wait_serving(address, timeout=120, process=process)
        _drain(process, address)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _drain(process: subprocess.Popen, address: str) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from client_sdk import Client, Completed, Queued, Step, errors

    streams: dict[str, list] = {"running": [], "queued": []}

    def consume(name: str, steps: int) -> None:
        # A generous deadline: the running request must outlast the drain, not race a busy machine.
        with Client(address, timeout=600) as client:
            try:
                streams[name].extend(client.stream("a cat", width=256, height=256, num_inference_steps=steps))
            except errors.DitServeError as err:
                streams[name].append(err)

    def wait_for(name: str, kind: type) -> None:
        deadline = time.monotonic() + 60
        while not any(isinstance(e, kind) for e in streams[name]):
            assert time.monotonic() < deadline, streams[name]
            time.sleep(0.01)

    threads = {"running": threading.Thread(target=consume, args=("running", 100))}
    threads["running"].start()
    wait_for("running", Step)
    threads["queued"] = threading.Thread(target=consume, args=("queued", 2))
    threads["queued"].start()
    wait_for("queued", Queued)

    process.send_signal(signal.SIGTERM)
    with grpc.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        deadline = time.monotonic() + 30
        while (
            health.Check(health_pb2.HealthCheckRequest(), timeout=5).status
            != health_pb2.HealthCheckResponse.NOT_SERVING
        ):
            assert time.monotonic() < deadline, "still SERVING after SIGTERM"
            time.sleep(0.01)
    with Client(address, timeout=10) as client, pytest.raises(errors.UnavailableError):
        client.generate("a cat", width=64, height=64, num_inference_steps=2)
    for thread in threads.values():
        thread.join(600)
    assert isinstance(streams["running"][-1], Completed), streams["running"][-1]
    assert isinstance(streams["queued"][-1], Completed), streams["queued"][-1]
    assert process.wait(timeout=60) == 0, process.stdout.read()


def test_limits_are_configurable_and_reported(proto_stubs):
    port = free_port()
    process = subprocess.Popen(
        [*DITSERVE, "serve", "--port", str(port), "--max-steps", "10", "--max-outputs", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    address = f"127.0.0.1:{port}"
    pb = proto_stubs.pb
    try:
        wait_serving(address, timeout=120, process=process)
        with grpc.insecure_channel(address) as channel:
            stub = proto_stubs.grpc.EngineStub(channel)
            limits = stub.ListModels(pb.ListModelsRequest(), timeout=10).limits
            assert (limits.max_steps, limits.max_outputs) == (10, 2)
            with pytest.raises(grpc.RpcError) as info:
                stub.Generate(
                    pb.GenerateRequest(prompt="a cat", width=64, height=64, num_inference_steps=11), timeout=30
                )
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "10" in info.value.details()
            # The model's own default (20 steps) is held to the limit too, not only what a request sets.
            with pytest.raises(grpc.RpcError) as info:
                stub.Generate(pb.GenerateRequest(prompt="a cat", width=64, height=64), timeout=30)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "20 (the model's default num_inference_steps) exceeds the limit of 10" in info.value.details()
            done = stub.Generate(pb.GenerateRequest(prompt="a cat", width=64, height=64, num_inference_steps=2))
            assert len(done.cache_stats.steps) == 2
    finally:
        process.terminate()
        assert process.wait(timeout=60) == 0


def test_a_reader_that_goes_away_ends_the_command_without_a_traceback():
    """`ditserve models --supported | head -1`: the pipe's reader is gone before the table is written."""
    process = subprocess.Popen(
        [*DITSERVE, "models", "--supported"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    process.stdout.close()  # no reader: every write to stdout fails with EPIPE
    stderr = process.stderr.read()
    assert process.wait(timeout=60) == 1
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr


def test_python_dash_m_is_the_same_command():
    result = subprocess.run([sys.executable, "-m", "engine_service", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "serve" in result.stdout and "demo" in result.stdout


def test_unsupported_pipeline_fails_at_start_up_naming_it(tmp_path):
    model_dir = tmp_path / "not-a-dit"
    model_dir.mkdir()
    (model_dir / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline"}')
    result = _run(["serve", "--port", "0", "--model", f"sd={model_dir}"])
    assert result.returncode == 2
    assert "StableDiffusionPipeline" in result.stderr


def test_demo_generates_and_saves_an_image(tmp_path):
    import numpy as np
    from PIL import Image

    from engine_service.cache import steps_mask
    from engine_service.models import shapes

    result = _run(["demo", "--out", str(tmp_path), "--seed", "2"], timeout=180)
    assert result.returncode == 0, result.stderr
    saved = sorted(pathlib.Path(tmp_path).glob("*.png"))
    assert len(saved) == 1 and str(saved[0]) in result.stdout
    # The demo asks the default model (64x64, 20 steps) with the "fast" preset.
    computed = sum(steps_mask(total_steps=20, mask_policy="fast"))
    assert f"computed {computed} / cached {20 - computed} of 20 steps" in result.stdout
    # Its default prompt is "a yellow triangle on a blue background".
    image = np.asarray(Image.open(saved[0]).convert("RGB"))
    assert shapes.centre_and_corner_colours(image) == ("yellow", ["blue"] * 4)


def test_calibrate_cache_writes_teacache_and_magcache_data_into_the_model_directory(local_model_dir, tmp_path, capsys):
    import json
    import shutil

    from engine_service.cli import main

    directory = tmp_path / "model"
    shutil.copytree(local_model_dir, directory)
    (directory / "ditserve.json").write_text(json.dumps({"steps": 6}))
    # In-process: the command's code is the same, without a second interpreter's imports.
    assert main(["calibrate-cache", str(directory), "--steps", "6", "--prompts", "2", "--device", "cpu"]) == 0
    written = json.loads((directory / "ditserve.json").read_text())
    assert written["steps"] == 6  # the other keys stay
    calibration = written["cache"]
    assert calibration["steps"] == 6 and calibration["runs"] == 2 and len(calibration["magcache_ratios"]) == 6
    assert len(calibration["teacache_coefficients"]) == 2 and calibration["magcache_ratios"][0] == 1.0
    assert all(r > 0 for r in calibration["magcache_ratios"])
    assert main(["calibrate-cache", str(tmp_path / "nowhere"), "--device", "cpu"]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("family", ["skyreels-v2-df-v2v", "kandinsky6-sr"])
def test_calibrate_cache_counts_each_denoising_loop_from_step_0(family, tmp_path):
    """A continued video's windows (loops over fresh scheduler copies) and an upscaler's tile loops (whose
    pipeline has no "latent" output) are calibrated loop by loop, as the engine counts their steps: a
    3-step calibration has 3 MagCache ratios, however many loops each call runs."""
    import json

    from tiny_families import all_cases

    from engine_service.cli import main

    (case,) = [case for case in all_cases() if case.name == family]
    assert case.loops == 2
    directory = tmp_path / family
    case.build().save_pretrained(directory)
    (directory / "ditserve.json").write_text(json.dumps({**case.defaults, "steps": 3}))
    assert main(["calibrate-cache", str(directory), "--steps", "3", "--prompts", "1", "--device", "cpu"]) == 0
    calibration = json.loads((directory / "ditserve.json").read_text())["cache"]
    assert calibration["steps"] == 3 and calibration["runs"] == 1 and len(calibration["magcache_ratios"]) == 3
