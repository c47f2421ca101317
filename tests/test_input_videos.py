"""Input videos through a real server: a tiny Wan 2.1 video-to-video model takes MP4, WebM and animated
PNG videos; its output's frames follow the video's (cut to the 4k + 1 rule, or the first num_frames of
them); every bad video is INVALID_ARGUMENT naming its field and the server keeps serving; ListModels
reports the video roles and limits; the SDK reads a video file and ``ditserve generate --video`` sends
one. CogVideoX video-to-video, Lucy Edit, CogVideoX-Fun Control, EasyAnimate Control and LTX-2 in-context
make several outputs from one video."""

from __future__ import annotations

import io
import pathlib
import struct
import subprocess
import sys
import zlib

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from tiny_families import all_cases, input_video, video_frames
from tiny_families.cogvideox import VIDEO as COGVIDEOX_VIDEO
from tiny_families.cogvideox import CogVideoXFunControlPipeline, CogVideoXVideoToVideoPipeline, _build
from tiny_families.wan import VIDEO, build_wan_v2v

from client_sdk import Client, InputVideo
from client_sdk.errors import InvalidArgumentError
from engine_service.config import Limits
from engine_service.errors import ModelLoadError
from engine_service.models import model_from_pipeline
from engine_service.runtime.engine import AsyncEngine
from engine_service.server.background import BackgroundServer

#: Tight video limits, so that a tiny video can exceed each; waiting requests may hold two 5-frame 16x16 videos.
LIMITS = Limits(
    max_input_video_bytes=60_000,
    max_input_video_frames=13,
    max_input_video_pixels=32 * 32,
    max_input_images=1,
    max_input_pixels=16 * 16,
    max_queued_input_pixels=2 * 5 * 16 * 16,
)
REQUEST = {"model": "wan-v2v", "seed": 3, "num_inference_steps": 2, "output_format": "png_frames"}


@pytest.fixture(scope="module")
def v2v_server():
    model = model_from_pipeline("wan-v2v", build_wan_v2v(), torch.device("cpu"), {**VIDEO, "steps": 4})
    engine = AsyncEngine({"wan-v2v": model}, "wan-v2v", LIMITS, "cpu")
    with BackgroundServer(engine) as server:
        yield server


@pytest.fixture(scope="module")
def v2v_address(v2v_server):
    return v2v_server.address


@pytest.fixture(scope="module")
def client(v2v_address):
    with Client(v2v_address, timeout=120) as client:
        yield client


def _encoded(frames: int, extension: str, codec: str, size=(16, 16)) -> bytes:
    pictures = np.stack([np.asarray(frame) for frame in video_frames(size, frames)])
    return iio.imwrite(
        "<bytes>", pictures, extension=extension, plugin="FFMPEG", fps=8, codec=codec, macro_block_size=1
    )


def _frames(result) -> list:
    return [output.sha256 for output in result.outputs]


@pytest.mark.parametrize(
    ("extension", "codec", "frames", "made"), [(".mp4", "libx264", 9, 9), (".webm", "libvpx-vp9", 7, 5)]
)
def test_an_mp4_or_webm_video_gives_its_frames_cut_to_the_frame_rule(client, extension, codec, frames, made):
    result = client.generate("a red circle", input_videos=[InputVideo(_encoded(frames, extension, codec))], **REQUEST)
    assert len(result.outputs) == made
    assert all((output.width, output.height) == (16, 16) for output in result.outputs)


def test_num_frames_takes_the_first_frames_of_the_video(client):
    """The first 5 of 9 frames give what a 5-frame video of them gives, bit for bit (lossless PNG)."""
    long = client.generate("a red circle", input_videos=[input_video("video", (16, 16), 9)], num_frames=5, **REQUEST)
    first = InputVideo.from_frames(video_frames((16, 16), 9)[:5])
    short = client.generate("a red circle", input_videos=[first], **REQUEST)
    assert len(long.outputs) == 5 and _frames(long) == _frames(short)
    # The frames are resized to the request's size.
    large = InputVideo.from_frames(video_frames((32, 32), 5))
    assert len(client.generate("a red circle", input_videos=[large], **REQUEST).outputs) == 5


def test_the_output_keeps_the_input_videos_frame_rate_unless_the_request_sets_fps(client):
    """One output frame per input frame: a request that leaves fps unset gets its video's rate (8 fps MP4,
    12 fps animated PNG), the default 16 for a video that states none; a request's fps wins."""
    import av

    def rate(video: InputVideo, **fields) -> float:
        (output,) = client.generate(
            "a red circle", input_videos=[video], **{**REQUEST, "output_format": "mp4", **fields}
        ).outputs
        with av.open(io.BytesIO(output.data)) as opened:
            return float(opened.streams.video[0].average_rate)

    mp4 = InputVideo(_encoded(5, ".mp4", "libx264"))
    assert rate(mp4) == 8 and rate(mp4, fps=24) == 24
    assert rate(InputVideo.from_frames(video_frames((16, 16), 5), fps=12)) == 12
    assert rate(input_video("video", (16, 16), 5)) == 16  # no rate stated
    with pytest.raises(ValueError, match="fps must be positive"):
        InputVideo.from_frames(video_frames((16, 16), 5), fps=0)


def _noise_video(frames: int, size=(16, 16)) -> InputVideo:
    rng = np.random.default_rng(0)
    return InputVideo.from_frames([rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8) for _ in range(frames)])


def _png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels and which holds none."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def _truncated_mp4() -> bytes:
    data = _encoded(9, ".mp4", "libx264")
    return data[: len(data) // 2]


BAD = [
    ("not a video", {"input_videos": [InputVideo(b"\x00" * 64)]}, "input_videos[0].data"),
    ("a JPEG image", {"input_videos": [InputVideo(b"\xff\xd8\xff\xe0" + b"\x00" * 64)]}, "input_videos[0].data"),
    ("a truncated MP4", {"input_videos": [InputVideo(_truncated_mp4())]}, "input_videos[0].data"),
    ("too many frames", {"input_videos": [input_video("video", (16, 16), 17)]}, "input_videos[0].data"),
    ("too many bytes", {"input_videos": [_noise_video(9, (64, 64))]}, "input_videos[0].data"),
    ("frames too large", {"input_videos": [input_video("video", (48, 48), 5)]}, "input_videos[0].data"),
    (
        "a PNG header beyond Pillow's ceiling",
        {"input_videos": [InputVideo(_png_claiming(10**5, 10**5))]},
        "input_videos[0].data",
    ),
    (
        "another role",
        {"input_videos": [input_video("video", (16, 16), 5), input_video("control", (16, 16), 5)]},
        "input_videos[1].role",
    ),
    ("no video", {"input_videos": []}, "input_videos"),
    (
        "more frames than the video",
        {"input_videos": [input_video("video", (16, 16), 5)], "num_frames": 9},
        "num_frames",
    ),
    (  # its first 17 frames are over the 13-frame limit: num_frames is what to change, not the video
        "more frames than the input frame limit",
        {"input_videos": [input_video("video", (16, 16), 17)], "num_frames": 17},
        "num_frames",
    ),
    (
        "a strength that runs no step",
        {"input_videos": [input_video("video", (16, 16), 5)], "strength": 0.3},
        "strength",
    ),
]


@pytest.mark.parametrize(("request_fields", "field"), [bad[1:] for bad in BAD], ids=[bad[0] for bad in BAD])
def test_a_bad_video_is_invalid_argument_naming_its_field_and_the_server_still_serves(client, request_fields, field):
    with pytest.raises(InvalidArgumentError) as raised:
        client.generate("a red circle", **{**REQUEST, **request_fields})
    assert {violation.field for violation in raised.value.field_violations} == {field}, raised.value
    good = client.generate("a red circle", input_videos=[input_video("video", (16, 16), 5)], **REQUEST)
    assert len(good.outputs) == 5


def test_the_byte_limit_case_is_over_it_and_the_pixel_case_is_not_a_byte_problem():
    """The bad cases above exceed the limit they are named for, and only it."""
    assert len(_noise_video(9, (64, 64)).data) > LIMITS.max_input_video_bytes
    assert len(input_video("video", (48, 48), 5).data) < LIMITS.max_input_video_bytes
    assert 48 * 48 > LIMITS.max_input_video_pixels >= 32 * 32


def test_queued_decoded_video_frames_are_bounded(v2v_server):
    """Waiting requests hold at most max_queued_input_pixels of decoded input images and video frames."""
    from client_sdk._core import build_request
    from engine_service.errors import QueueFull
    from engine_service.server import validation

    engine = v2v_server.engine
    model = engine.models["wan-v2v"]
    request = build_request("a cat", input_videos=[input_video("video", (16, 16), 5)])

    async def scenario():
        # Queued (the engine loop has not run yet): two 5-frame videos hold the limit.
        queued = [engine.submit(validation.validate(request, model, LIMITS)) for _ in range(2)]
        try:
            with pytest.raises(QueueFull) as info:
                engine.submit(validation.validate(request, model, LIMITS))
            return info.value.retry_after
        finally:
            for job in queued:
                engine.cancel_job(job, "cancelled by the test")

    assert v2v_server.call(scenario(), timeout=60) >= 1.0


def test_list_models_shows_the_video_roles_and_limits(client):
    from client_sdk import console

    listed = client.list_models()
    table = console.models_table(listed)
    (row,) = [line for line in table.splitlines() if "wan-v2v" in line]
    assert "  video  strength (default 0.8)  " in row  # its inputs, then its parameters
    assert "  of video  " in row  # its frames follow the video, whatever its default frame count
    assert "input videos of 0.1 MiB, 13 frames and 1024 px a frame" in table
    (info,) = listed.models
    assert (info.video_roles, info.required_video_roles, info.frames_from_video) == (("video",), ("video",), "video")
    assert info.input_roles == () and "strength" in info.parameters
    limits = listed.limits
    assert (limits.max_input_video_bytes, limits.max_input_video_frames, limits.max_input_video_pixels) == (
        60_000,
        13,
        1024,
    )


def test_generate_video_flag_sends_a_video_file(v2v_address, tmp_path):
    path = tmp_path / "input.mp4"
    path.write_bytes(_encoded(9, ".mp4", "libx264"))
    assert InputVideo.from_path(path).data == path.read_bytes()
    ditserve = str(pathlib.Path(sys.executable).parent / "ditserve")
    command = [ditserve, "generate", "a red circle", "--model", "wan-v2v", "--video", str(path), "--frames", "5"]
    command += ["--steps", "2", "--seed", "1", "--target", v2v_address, "--out", str(tmp_path), "--name", "out"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert iio.imread(tmp_path / "out.mp4", plugin="FFMPEG").shape == (5, 16, 16, 3)
    missing = subprocess.run([*command[:5], "--video", "/nonexistent.mp4"], capture_output=True, text=True)
    assert missing.returncode == 2 and "/nonexistent.mp4" in missing.stderr


@pytest.mark.parametrize(
    "name", ["wan-v2v", "cogvideox-v2v", "lucy-edit", "cogvideox-fun-control", "easyanimate-control", "ltx2-in-context"]
)
def test_several_outputs_of_one_video(name):
    """Each pipeline gets the one video for all outputs its own way: Wan V2V broadcasts its latents over
    the noise, CogVideoX V2V would encode ``video[i]`` for the i-th of a list of generators and gets the
    job's one generator (``generator_per_output=False``), Lucy Edit compares the condition's batch with
    the noise's and CogVideoX-Fun Control and EasyAnimate Control join the control latents to the noise's
    channels: they get the video once per output. LTX-2 in-context encodes its reference once and appends
    its tokens to every output's."""
    case = next(case for case in all_cases() if case.name == name)
    model = model_from_pipeline(name, case.build(), torch.device("cpu"), case.defaults)
    engine = AsyncEngine({name: model}, name, Limits(), "cpu")
    ((role, size, frames),) = case.videos
    request = {"input_videos": [input_video(role, size, frames)], "num_inference_steps": 2, "seed": 1}
    with BackgroundServer(engine) as server, Client(server.address, timeout=120) as client:
        two = client.generate("a red circle", num_outputs=2, **request)
        one = client.generate("a red circle", **request)
    assert len(two.outputs) == 2 and two.outputs[0].sha256 != two.outputs[1].sha256
    assert {output.num_frames for output in [*two.outputs, *one.outputs]} == {frames}


def test_cogvideox_video_to_video_takes_8k_plus_1_frames():
    """Its VAE decodes an even count of latent frames to 4 frames each: 5 frames (2 latent frames) would
    come back as 8, so 5 is refused and a 7-frame video is cut to 1 frame."""
    model = model_from_pipeline(
        "cogvideox-v2v", _build(CogVideoXVideoToVideoPipeline), torch.device("cpu"), COGVIDEOX_VIDEO
    )
    engine = AsyncEngine({"cogvideox-v2v": model}, "cogvideox-v2v", Limits(), "cpu")
    request = {"input_videos": [input_video("video", (16, 16), 7)], "num_inference_steps": 2}
    with BackgroundServer(engine) as server, Client(server.address, timeout=120) as client:
        with pytest.raises(InvalidArgumentError) as raised:
            client.generate("a red circle", num_frames=5, **request)
        cut = client.generate("a red circle", output_format="png_frames", **request)
    assert {violation.field for violation in raised.value.field_violations} == {"num_frames"}
    assert len(cut.outputs) == 1


@pytest.mark.parametrize("pipeline_class", [CogVideoXVideoToVideoPipeline, CogVideoXFunControlPipeline])
def test_cogvideox_15_video_input_pipelines_fail_to_load_naming_why(pipeline_class):
    channels = 8 if pipeline_class is CogVideoXFunControlPipeline else 4
    pipeline = _build(pipeline_class, patch_size_t=2, patch_bias=False, sample_frames=9, in_channels=channels)
    with pytest.raises(ModelLoadError, match=f"{pipeline_class.__name__} with a CogVideoX 1.5 transformer"):
        model_from_pipeline("cogvideox-1.5-v2v", pipeline, torch.device("cpu"), COGVIDEOX_VIDEO)
