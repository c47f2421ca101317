"""A server that cannot serve as configured says so in one ``error:`` line and exits 2; signals stop it cleanly.

The configuration cases call the ``ditserve`` entry point in-process: each fails before
anything listens. The signal case runs the real command as a subprocess.
"""

from __future__ import annotations

import json
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.conftest import free_port

DITSERVE = [str(pathlib.Path(sys.executable).parent / "ditserve")]


def _serve(capsys, *flags: str) -> tuple[int, str]:
    from engine_service import cli

    code = cli.main(["serve", "--port", str(free_port()), "--device", "cpu", *flags])
    return code, capsys.readouterr().err


def _assert_one_error_line(code: int, err: str, *words: str) -> None:
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2, err
    assert len(lines) == 1, err
    assert "Traceback" not in err, err
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture
def model_copy(local_model_dir, tmp_path) -> pathlib.Path:
    """A writable copy of the tiny FLUX directory, to break one file of."""
    copy = tmp_path / "model"
    shutil.copytree(local_model_dir, copy)
    return copy


# Each of these would start a server (or hang) before the fix; pytest-timeout turns that into a failure.
@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--port", "70000"], ["--port", "65535"]),
        (["--metrics-port", "-1"], ["--metrics-port"]),
        (["--grace", "-5"], ["--grace"]),
        (["--grace", "nan"], ["--grace"]),
        (["--auth-token", ""], ["--auth-token"]),
        (["--auth-token", "   "], ["--auth-token"]),
        (["--cache-policy", "dbcache:max_warmup_steps=2000000"], ["max_warmup_steps", "1000"]),
        (["--cache-policy", "dbcache:warmup_interval=2000000000"], ["warmup_interval"]),
        (["--cache-policy", "dbcache:max_cached_steps=5000"], ["max_cached_steps"]),
        (["--cache-policy", "dbcache:fn_compute_blocks=500"], ["fn_compute_blocks", "default"]),
        (["--warmup-size", "4096x4096"], ["--warmup-size", "limits"]),
        (["--controlnet", "canny=/nets/canny:flux"], ["--controlnet", "'flux' is not a --model"]),
        (["--controlnet", "canny=/nets/canny"], ["--controlnet", "NAME=PATH:MODEL"]),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else None,
)
def test_a_bad_flag_is_one_error_line_and_exit_2(capsys, flags, words):
    code, err = _serve(capsys, *flags)
    _assert_one_error_line(code, err, *words)


@pytest.mark.timeout(120)
def test_metrics_port_equal_to_the_port_is_refused(capsys):
    from engine_service import cli

    port = str(free_port())
    code = cli.main(["serve", "--port", port, "--metrics-port", port, "--device", "cpu"])
    _assert_one_error_line(code, capsys.readouterr().err, "--metrics-port", "--port")


@pytest.mark.timeout(120)
def test_a_metrics_port_in_use_is_refused(capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        code, err = _serve(capsys, "--metrics-port", port)
    _assert_one_error_line(code, err, "metrics", port)


@pytest.mark.timeout(120)
def test_tls_files_that_are_not_pem_are_refused(capsys, tmp_path):
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    code, err = _serve(capsys, "--tls-cert", str(junk), "--tls-key", str(junk))
    _assert_one_error_line(code, err, "--tls-cert")


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("file", "content", "words"),
    [
        ("model_index.json", [], ["model_index.json", "_class_name"]),
        ("ditserve.json", {"width": -64}, ["width"]),
        ("ditserve.json", {"steps": 0}, ["steps"]),
        ("ditserve.json", {"guidance_scale": "high"}, ["guidance_scale"]),
        ("ditserve.json", {"call_defaults": {"output_type": "pil"}}, ["call_defaults", "output_type"]),
        ("ditserve.json", {"call_defaults": ["max_sequence_length"]}, ["call_defaults"]),
        # Loads, but the pipeline refuses every call: the warm-up run fails.
        ("ditserve.json", {"call_defaults": {"max_sequence_length": 4096}}, ["'m'", "warm-up", "max_sequence_length"]),
    ],
    ids=lambda v: json.dumps(v) if not isinstance(v, str) else v,
)
def test_a_broken_model_directory_is_one_error_line_and_exit_2(capsys, model_copy, file, content, words):
    (model_copy / file).write_text(json.dumps(content))
    code, err = _serve(capsys, "--model", f"m={model_copy}")
    _assert_one_error_line(code, err, *words)


def _health(address: str) -> int | None:
    with grpc.insecure_channel(address) as channel:
        try:
            return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1).status
        except grpc.RpcError:
            return None


@pytest.mark.timeout(300)
def test_sigterm_during_warm_up_abandons_it_and_repeated_signals_still_exit_0():
    """A supervisor that signals again and again while the engine warms up: it never turns SERVING,
    and the process exits 0 (not -15) however many signals arrive."""
    port = free_port()
    address = f"127.0.0.1:{port}"
    # Many large warm-up sizes: a warm-up far longer than the test waits.
    sizes = [arg for _ in range(40) for arg in ("--warmup-size", "1024x1024")]
    process = subprocess.Popen(
        [*DITSERVE, "serve", "--port", str(port), "--grace", "5", *sizes],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while _health(address) != health_pb2.HealthCheckResponse.NOT_SERVING:
            assert process.poll() is None, process.stdout.read()
            assert time.monotonic() < deadline, "never listened"
            time.sleep(0.2)
        seen = set()
        deadline = time.monotonic() + 120
        while process.poll() is None:
            process.send_signal(signal.SIGTERM)
            seen.add(_health(address))
            assert time.monotonic() < deadline, "did not exit after SIGTERM"
            time.sleep(0.05)
        output = process.stdout.read()
        assert process.returncode == 0, output
        assert health_pb2.HealthCheckResponse.SERVING not in seen, output
        assert "abandoning" in output
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.timeout(120)
def test_a_continued_video_history_above_the_input_video_frame_limit_is_refused(capsys, tmp_path):
    """SkyReels-V2 video-to-video continues from its last overlap_history frames (5 here): with
    --max-input-video-frames 4 every request would be refused, so the server does not start."""
    from tiny_families.skyreels_v2 import CASES, CONTINUATION

    (case,) = [case for case in CASES if case.name == "skyreels-v2-df-v2v"]
    directory = tmp_path / "v2v"
    case.build().save_pretrained(directory)
    (directory / "ditserve.json").write_text(json.dumps(CONTINUATION))
    code, err = _serve(capsys, "--model", f"v2v={directory}", "--max-input-video-frames", "4")
    _assert_one_error_line(code, err, "'v2v'", "last 5 frames", "--max-input-video-frames 4")
