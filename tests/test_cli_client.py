"""The client subcommands against a real ``ditserve serve`` that speaks TLS, wants a token and serves a
tiny Wan 2.1 image-to-video directory: video flags, input images, previews, output names, cancel,
TLS flags; the SDK's PIL and numpy input images; start-up refusals; an SDK-only install."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import threading
import time

import pytest

from client_sdk import Client, errors
from tests.conftest import free_port
from tests.test_security import pki  # noqa: F401 - the certificates, shared as a fixture

DITSERVE = [str(pathlib.Path(sys.executable).parent / "ditserve")]
TOKEN = "cli-client-token"


@pytest.fixture(scope="module")
def files(tmp_path_factory, pki):  # noqa: F811 - the imported fixture
    """The model directory, the PEM files and an input picture."""
    from tiny_families import input_image
    from tiny_families.wan import VIDEO, build_wan_i2v

    root = tmp_path_factory.mktemp("cli-client")
    model = root / "wan-i2v"
    build_wan_i2v().save_pretrained(model)
    (model / "ditserve.json").write_text(json.dumps({**VIDEO, "steps": 4}))
    paths = {"model": model, "picture": root / "picture.png"}
    paths["picture"].write_bytes(input_image("image", (16, 16)).data)
    for name in ("ca", "server_cert", "server_key", "client_cert", "client_key"):
        paths[name] = root / f"{name}.pem"
        paths[name].write_bytes(pki[name])
    return paths


@pytest.fixture(scope="module")
def engine(files, pki):  # noqa: F811 - the imported fixture
    port = free_port()
    process = subprocess.Popen(
        [*DITSERVE, "serve", "--port", str(port), "--model", f"wan-i2v={files['model']}"]
        + ["--tls-cert", str(files["server_cert"]), "--tls-key", str(files["server_key"])],
        env={**os.environ, "DITSERVE_AUTH_TOKEN": TOKEN},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    address = f"127.0.0.1:{port}"
    try:
        with Client(address, root_certificates=pki["ca"]) as client:
            client.wait_ready(timeout=180, model="wan-i2v")  # Health/Watch needs no token
        yield address
    finally:
        process.terminate()
        process.wait(timeout=60)


def _cli(engine: str, files, *args: str, token: str | None = TOKEN, timeout: float = 180):
    env = {k: v for k, v in os.environ.items() if k != "DITSERVE_AUTH_TOKEN"}
    if token:
        env["DITSERVE_AUTH_TOKEN"] = token
    command = [*DITSERVE, *args, "--target", engine, "--tls-ca", str(files["ca"])]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)


def test_generate_makes_a_9_frame_mp4_from_an_input_image(engine, files, tmp_path):
    import imageio.v3 as iio

    result = _cli(
        engine,
        files,
        "generate",
        "a cat turns its head",
        "--model",
        "wan-i2v",
        "--input-image",
        str(files["picture"]),
        "--frames",
        "9",
        "--fps",
        "8",
        "--seed",
        "3",
        "--preview-every",
        "2",
        "--request-id",
        "i2v-cli-1",
        "--out",
        str(tmp_path),
        "--name",
        "{request_id}-{seed}",
    )
    assert result.returncode == 0, result.stderr
    video = tmp_path / "i2v-cli-1-3.mp4"
    assert f"saved {video}" in result.stdout
    frames = iio.imread(video, plugin="FFMPEG")
    assert frames.shape[0] == 9 and frames.shape[1:3] == (16, 16)
    previews = sorted(p.name for p in tmp_path.glob("*.preview-*.png"))
    assert previews and all(name.startswith("i2v-cli-1-3.preview-") for name in previews), previews


def test_input_image_flags_read_an_optional_role():
    from engine_service.cli import _input_images

    here = pathlib.Path(__file__)
    assert _input_images([str(here), f"mask={here}", f"control_image={here}"]) == [
        ("image", here),
        ("mask", here),
        ("control_image", here),
    ]
    with pytest.raises(ValueError, match="no such file 'missing.png'"):
        _input_images(["mask=missing.png"])


def test_a_poses_file_whose_numbers_are_no_numbers_is_a_usage_error(tmp_path, capsys):
    """--camera-poses with a 3x3 K matrix as intrinsics, a pose holding a string, or a misspelt key (read
    as the SDK's CameraTrajectory.from_json reads it) is one error line and exit 2 before any request."""
    from engine_service import cli

    pose = [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
    files = {
        "k-matrix": {"c2w": [pose], "intrinsics": [[16, 0, 16], [0, 16, 16], [0, 0, 1]]},
        "string-intrinsics": {"c2w": [pose], "intrinsics": "1234"},
        "string-pose": {"c2w": [[["x"] * 4] * 4], "intrinsics": [16, 16, 16, 16]},
        "misspelt-key": {"c2w": [pose], "intrinsic": [16, 16, 16, 16]},
    }
    for name, data in files.items():
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(data))
        code = cli.main(["generate", "x", "--target", "127.0.0.1:1", "--camera-poses", str(path)])
        err = capsys.readouterr().err
        assert code == 2, name
        expected = "error: --camera-poses: " + (
            f"{path}: unknown keys intrinsic" if name == "misspelt-key" else "camera "
        )
        assert err.startswith(expected) and err.count("\n") == 1, (name, err)


def test_the_video_flag_help_names_every_video_role(capsys):
    from engine_service.cli import build_parser
    from engine_service.models.families import FAMILIES

    with pytest.raises(SystemExit):
        build_parser().parse_args(["generate", "--help"])
    shown = " ".join(capsys.readouterr().out.split())  # argparse wraps the help text
    flag = shown[shown.index("--input-video [ROLE=]PATH, --video") :]
    roles = {role for family in FAMILIES for role in family.video_roles}
    assert roles == {"video", "control", "reference", "pose", "face", "background", "mask"}
    assert "ROLE is video (the default), control (a control video), reference" in flag
    assert "or pose, face, background and mask" in flag  # (Wan-Animate), which argparse may break at its hyphen
    # A model that continues its video (SkyReels-V2 diffusion forcing) returns its frames and --frames new ones;
    # a video upscaler takes an empty prompt.
    assert "followed by --frames new ones" in flag
    frames = shown[shown.index("--frames FRAMES ") :]
    assert frames.startswith("--frames FRAMES video frames, for video models (default: the model's); for a model")
    assert 'text prompt ("" for a model that takes none' in shown


def test_generate_without_the_image_or_with_a_missing_file_says_so(engine, files, tmp_path):
    missing = _cli(engine, files, "generate", "a cat", "--model", "wan-i2v", "--out", str(tmp_path))
    assert missing.returncode == 1 and "input_images" in missing.stderr and "request " in missing.stderr
    absent = _cli(engine, files, "generate", "a cat", "--input-image", "mask=/nonexistent.png")
    assert absent.returncode == 2 and "/nonexistent.png" in absent.stderr


def test_ctrl_c_during_generate_is_one_error_line_and_cancels_the_request(engine, files, pki):  # noqa: F811
    """SIGINT while the steps run: the last line says the request was cancelled (no traceback), exit 130, and
    the engine counts the request as cancelled."""
    import signal

    def cancelled() -> int:
        with Client(engine, root_certificates=pki["ca"], auth_token=TOKEN) as client:
            (model,) = client.stats().models
            return model.cancelled.count

    before = cancelled()
    env = {**os.environ, "DITSERVE_AUTH_TOKEN": TOKEN}
    command = [*DITSERVE, "generate", "a cat", "--model", "wan-i2v", "--input-image", str(files["picture"])]
    command += ["--steps", "500", "--out", "/nonexistent", "--target", engine, "--tls-ca", str(files["ca"])]
    process = subprocess.Popen(
        command,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        env=env,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # a background job ignores it
    )
    seen = b""
    while b"denoising" not in seen:  # the bar's line once the steps run
        chunk = process.stderr.read1(4096)
        assert chunk, seen
        seen += chunk
    process.send_signal(signal.SIGINT)
    rest = process.stderr.read()
    assert process.wait(timeout=60) == 130
    lines = (seen + rest).decode().replace("\r", "\n").splitlines()
    assert "Traceback" not in "".join(lines)
    assert lines[-1] == "error: interrupted; the request was cancelled"
    deadline = time.monotonic() + 60
    while cancelled() == before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert cancelled() == before + 1


def test_client_commands_need_the_tls_flags_and_the_token(engine, files):
    stats = _cli(engine, files, "stats")
    assert stats.returncode == 0 and "wan-i2v" in stats.stdout, stats.stderr
    models = _cli(engine, files, "models")
    assert models.returncode == 0 and "wan-i2v" in models.stdout
    named = _cli(engine, files, "models", "--tls-server-name", "localhost")
    assert named.returncode == 0, named.stderr
    no_token = _cli(engine, files, "stats", token=None)
    assert no_token.returncode == 1 and "UNAUTHENTICATED" in no_token.stderr
    plaintext = subprocess.run(
        [*DITSERVE, "stats", "--target", engine, "--timeout", "5"],
        capture_output=True,
        text=True,
        env={**os.environ, "DITSERVE_AUTH_TOKEN": TOKEN},
    )
    assert plaintext.returncode == 1 and "UNAVAILABLE" in plaintext.stderr
    wrong_name = _cli(engine, files, "stats", "--tls-server-name", "elsewhere.example", "--timeout", "5")
    assert wrong_name.returncode == 1 and "UNAVAILABLE" in wrong_name.stderr
    unreadable = _cli(engine, files, "stats", "--tls-cert", "/nonexistent.pem", "--tls-key", "/nonexistent.pem")
    assert unreadable.returncode == 2 and "/nonexistent.pem" in unreadable.stderr


def test_cancel_stops_a_running_request_by_its_id(engine, files, pki):  # noqa: F811
    outcome: list = []

    def run() -> None:
        with Client(engine, root_certificates=pki["ca"], auth_token=TOKEN, timeout=300) as client:
            try:
                for event in client.stream(
                    "a cat",
                    model="wan-i2v",
                    input_images=files["picture"],
                    num_inference_steps=500,
                    request_id="long-1",
                ):
                    outcome.append(event)
            except errors.DitServeError as err:
                outcome.append(err)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 120
    while not any(type(e).__name__ == "Step" for e in outcome):
        assert time.monotonic() < deadline and thread.is_alive(), outcome
        time.sleep(0.05)
    result = _cli(engine, files, "cancel", "long-1")
    assert result.returncode == 0 and "cancelled long-1 (running)" in result.stdout, result.stderr
    thread.join(60)
    assert isinstance(outcome[-1], errors.RequestCancelledError) and outcome[-1].request_id == "long-1"
    again = _cli(engine, files, "cancel", "long-1")
    assert again.returncode == 1 and "NOT_FOUND" in again.stderr


def test_the_sdk_takes_pil_images_numpy_arrays_and_role_pairs(engine, pki):  # noqa: F811
    import numpy as np
    from PIL import Image

    picture = Image.new("RGB", (16, 16), (40, 90, 200))
    with Client(engine, root_certificates=pki["ca"], auth_token=TOKEN, timeout=120) as client:
        outputs = []
        for images in (picture, [("image", np.asarray(picture))]):
            result = client.generate("a cat", model="wan-i2v", input_images=images, seed=5, output_format="mp4")
            outputs.append(result.outputs[0].data)
        assert len(set(outputs)) == 1, "the same picture, however it was given, makes the same video"
        with pytest.raises(errors.InvalidArgumentError) as info:
            client.generate("a cat", model="wan-i2v", input_images=("mask", picture))
        assert "role" in str(info.value)


def test_serve_refuses_a_queue_smaller_than_a_batch():
    result = subprocess.run(
        [*DITSERVE, "serve", "--port", "0", "--max-queue", "2", "--max-batch", "4"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "--max-queue 2 is smaller than --max-batch 4" in result.stderr


_SDK_ONLY = """
import sys
for name in ("torch", "numpy", "PIL", "diffusers", "transformers"):
    sys.modules[name] = None  # as in `pip install ditserve` without the engine extra
from engine_service.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize(
    ("command", "shown"),
    [
        (["serve"], "ditserve serve"),
        (["models", "--supported"], "ditserve models --supported"),
        (["metrics", "psnr", "a.png", "b.png"], "ditserve metrics"),
    ],
)
def test_an_sdk_only_install_names_the_extra_to_install(command, shown):
    result = subprocess.run([sys.executable, "-c", _SDK_ONLY, *command], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and shown in lines[0] and 'pip install "ditserve[engine]"' in lines[0], result.stderr


@pytest.mark.parametrize("spelling", ["exr_frames", "exr-frames", "EXR-Frames", "EXR_FRAMES", "MP4", "PNG-frames"])
def test_generate_format_names_read_as_the_sdk_reads_them(spelling):
    """--format reads a name case-blind with "-" as "_", as the SDK's output_format does (EXR-Frames worked in
    the SDK and was an argparse error in the CLI)."""
    from engine_service.cli import build_parser

    args = build_parser().parse_args(["generate", "a cat", "--format", spelling])
    assert args.format == spelling.lower().replace("-", "_")
