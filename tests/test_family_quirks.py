"""Families whose pipelines differ from plain text-to-image, through a batching engine and the SDK.

DiT is class-conditional (the prompt names a class), renders one size and has no
step callback; aMUSEd takes a single random generator, so its jobs never batch, and its
image-to-image pipeline runs int(steps x strength) steps;
HunyuanVideo 1.5 has no step callback either (the engine follows its scheduler's
steps, which cancellation stops) and its image-to-video pipeline renders its
resolution buckets only; its VAE cannot decode a batch, so the engine decodes video by video.
A Motif-Video checkpoint with decoder layers fails to load (the cache cannot follow them).
Kandinsky 5's image pipelines render only their resolutions list, and its jobs run alone (a
batch's prompts are padded and the transformer attends to the padding); its editor and
Kandinsky 6 take one input image for several outputs. JoyImage Edit renders only its ~1 MP
bucket sizes. Helios samples its video chunk by chunk, each chunk a whole denoising loop: progress
counts the steps of every chunk, the cache restarts at each chunk, and cancellation stops it at a step
of any chunk; AnyFlow-FAR also samples chunk by chunk and, between chunks, calls its transformer once more
to fill the attention key-value cache the next chunk attends to: the block cache computes that call in full.
Helios Pyramid runs each chunk as stages at growing resolutions, each a fresh run of
the cache, a distilled model's first chunk twice as many steps. LTX long multi-prompt samples
overlapping windows that each run one step fewer than asked: progress and the cache's step mask
follow the steps that run, windows with another overlap make other frame counts than asked, a
prompt with ``|`` gives each window its own, and the request's seed draws every window's noise.
Qwen-Image Layered gives each output as its layers, in order, RGBA, reads its input image's
alpha channel, its preview is its first layer over white, and the CLI writes one file per layer.
VisualCloze takes a task prompt and lays its grid out by roles; its combined pipeline reports its
generation pass, then the upsampling steps its strength leaves.
OmniGen's prompt names its reference images by tags that must match the images sent,
its CFG runs two branches per call without references and three with them, and its jobs run
alone (its rotary embedding takes the first row's positions for the whole batch). Latte's
spatial and temporal blocks run as pairs that give the stock transformer's output bit for bit.
SkyReels-V2's diffusion forcing steps one scheduler copy per latent frame and never its own scheduler: each
step still counts once for the cache, and progress reports the noisiest frame's timestep. Its video-to-video
pipeline returns the input video's frames and then the new ones, sampled in windows, each a loop over fresh
scheduler copies that the cache restarts at. Kandinsky 6 SR takes no prompt or guidance, renders the size its
input video gives and refines it tile by tile, each tile a loop whose count follows the video's size.
LTX-2 in-context takes its reference video as the pipeline's reference condition, every frame of it, and
makes the reference's frames (8k + 1, or the first num_frames of it); served from a directory, an IC-LoRA
loaded as a request adapter steers it. LTX-2 HDR makes linear light: its OpenEXR frames hold the pipeline's
own values (above 1.0 too), its MP4 and PNG frames are diffusers' SDR rendering of them, and any other model
refuses OpenEXR frames. An LTX-2 DFR pass runs its sigma schedule: its steps are the schedule's
(progress, the cache and ListModels count them; another step count is refused), and the engine's video is the
pipeline's own with its keyframe slots; a checkpoint whose steps or transformer do not fit the pass fails to load.
EasyAnimate Control, whose diffusers 0.42.1 call fails on every call, works on the served instance and
follows its control video frame for frame (frames 4k + 1, or the first num_frames of it).
Sana-WM follows the camera trajectory each request sends (an action string gives the frames its rolled-out
poses give), refuses a malformed one naming its field, and reads action strings exactly as diffusers does.
Wan-Animate makes its pose video's frames in segments, each a whole denoising loop: progress counts the
steps of every segment the pose video needs and the cache restarts at each; a background video with its
mask video switches it to replacing the person, and videos that do not go together are refused.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import pathlib
import subprocess
import sys
import time

import hypothesis
import hypothesis.strategies as st
import numpy as np
import pytest
import torch
from diffusers import (
    AmusedImg2ImgPipeline,
    EasyAnimateControlPipeline,
    EasyAnimateInpaintPipeline,
    HeliosDMDScheduler,
    HeliosPyramidPipeline,
    HunyuanVideo15ImageToVideoPipeline,
    Kandinsky5I2IPipeline,
    Kandinsky5T2IPipeline,
    SkyReelsV2DiffusionForcingImageToVideoPipeline,
    SkyReelsV2DiffusionForcingVideoToVideoPipeline,
)
from diffusers.pipelines.ltx2.pipeline_ltx2_ic_lora import LTX2ReferenceCondition
from PIL import Image
from tiny_families import all_cases, input_image, input_video, video_frames
from tiny_families.amused import build_tiny_amused
from tiny_families.anyflow import FAR_VIDEO, build_tiny_anyflow_far
from tiny_families.dit import build_tiny_dit
from tiny_families.easyanimate import VIDEO as EASYANIMATE
from tiny_families.easyanimate import build_easyanimate
from tiny_families.helios import PYRAMID, build_helios
from tiny_families.helios import VIDEO as HELIOS
from tiny_families.hunyuan_video15 import VIDEO, build_hunyuan_video15
from tiny_families.ideogram4 import build_tiny_ideogram4
from tiny_families.joyimage import build_tiny_joyimage_edit
from tiny_families.kandinsky5 import build_kandinsky5
from tiny_families.kandinsky6 import build_kandinsky6, build_kandinsky6_sr
from tiny_families.latte import FRAMES as LATTE_FRAMES
from tiny_families.latte import build_tiny_latte
from tiny_families.ltx2 import DFR, DFR_SIGMAS, build_dfr, build_hdr, build_in_context
from tiny_families.ltx2 import VIDEO as LTX2_VIDEO
from tiny_families.ltx_video_long import VIDEO as LTX_LONG
from tiny_families.ltx_video_long import build_ltx_long
from tiny_families.motif_video import build_tiny_motif_video
from tiny_families.omnigen import build_tiny_omnigen
from tiny_families.skyreels_v2 import CONTINUATION, build_skyreels_v2_df
from tiny_families.skyreels_v2 import VIDEO as SKYREELS
from tiny_families.wan import ANIMATE, build_wan_animate

from client_sdk import (
    AsyncClient,
    CachePolicy,
    CameraTrajectory,
    Client,
    Completed,
    InputImage,
    InputVideo,
    Started,
    Step,
)
from client_sdk.errors import InvalidArgumentError
from engine_service import cli
from engine_service.config import BatchingConfig, Limits
from engine_service.errors import ModelLoadError
from engine_service.jobs import JobSpec, OutputFormat
from engine_service.models import model_from_pipeline
from engine_service.runtime.encoding import encode_mp4, to_uint8
from engine_service.runtime.engine import AsyncEngine, warmup_spec
from engine_service.server.background import BackgroundServer

K5 = {"steps": 2, "call_defaults": {"max_sequence_length": 16}}
IDEOGRAM4 = {"width": 32, "height": 32, "steps": 2, "call_defaults": {"max_sequence_length": 64}}
#: LTX long windows of 3 latent frames overlapping by 2.
OVERLAP_2 = {"temporal_tile_size": 24, "temporal_overlap": 16}
#: The condition image every LTX long request sends.
LTX_IMAGE = [input_image("image", (32, 32))]
LONG = {"model": "ltx-long", "input_images": LTX_IMAGE}
OVERLAPPING = {"model": "ltx-long-overlap2", "input_images": LTX_IMAGE}
#: Threshold 1 after one warm-up step: every step but the first of each run is cached.
ALWAYS_CACHE = CachePolicy(
    preset="dbcache", residual_diff_threshold=1.0, max_warmup_steps=1, warmup_interval=1, max_continuous_cached_steps=-1
)
#: Wan-Animate segments of 13 frames, each after the first starting on the last 5 of the one before.
ANIMATE_PREV5 = {
    **ANIMATE,
    "call_defaults": {**ANIMATE["call_defaults"], "segment_frame_length": 13, "prev_segment_conditioning_frames": 5},
}
#: Threshold 0: the cache decides every step and never reuses one.
NEVER_CACHE = CachePolicy(preset="dbcache", residual_diff_threshold=0.0)
K6 = {"width": 16, "height": 16, "frames": 5, "steps": 2, "call_defaults": {"max_sequence_length": 512}}


#: One chunk (5 frames) whose 2 stages run twice the request's steps (a distilled model's first chunk).
DISTILLED = {**PYRAMID, "frames": 5, "call_defaults": {**PYRAMID["call_defaults"], "is_amplify_first_chunk": True}}


def _distilled_pyramid() -> HeliosPyramidPipeline:
    """Helios Pyramid as a step-distilled checkpoint: the DMD scheduler and ``is_distilled``."""
    pipeline = build_helios(HeliosPyramidPipeline, stages=2)
    pipeline.scheduler = HeliosDMDScheduler(stages=2, stage_range=[0, 0.5, 1], use_dynamic_shifting=True)
    pipeline.register_to_config(is_distilled=True)
    return pipeline


@pytest.fixture(scope="module")
def omnigen():
    return build_tiny_omnigen()


@pytest.fixture(scope="module")
def continuation():
    return build_skyreels_v2_df(SkyReelsV2DiffusionForcingVideoToVideoPipeline)


@pytest.fixture(scope="module")
def server(omnigen, continuation):
    cpu = torch.device("cpu")
    models = {
        "dit": model_from_pipeline("dit", build_tiny_dit(), cpu, {"steps": 2}),
        "amused": model_from_pipeline("amused", build_tiny_amused(), cpu, {"width": 8, "height": 8, "steps": 3}),
        "amused-i2i": model_from_pipeline(
            "amused-i2i", build_tiny_amused(AmusedImg2ImgPipeline), cpu, {"width": 8, "height": 8, "steps": 10}
        ),
        "hv15": model_from_pipeline("hv15", build_hunyuan_video15(), cpu, VIDEO),
        "hv15-i2v": model_from_pipeline(
            "hv15-i2v", build_hunyuan_video15(HunyuanVideo15ImageToVideoPipeline), cpu, VIDEO
        ),
        # No width or height: the default is the pipeline's first resolution.
        "k5": model_from_pipeline("k5", build_kandinsky5(Kandinsky5T2IPipeline), cpu, K5),
        "k5-i2i": model_from_pipeline(
            "k5-i2i", build_kandinsky5(Kandinsky5I2IPipeline), cpu, {**K5, "call_defaults": {"max_sequence_length": 64}}
        ),
        "k6": model_from_pipeline("k6", build_kandinsky6(), cpu, K6),
        # The pipeline's own 2.25x upscale (a 1.125x pre-upscale, then 2x).
        "k6-sr": model_from_pipeline("k6-sr", build_kandinsky6_sr(), cpu, {"width": 24, "height": 16, "steps": 2}),
        "ideogram4": model_from_pipeline("ideogram4", build_tiny_ideogram4(), cpu, IDEOGRAM4),
        "helios": model_from_pipeline("helios", build_helios(), cpu, HELIOS),
        "wan-animate": model_from_pipeline("wan-animate", build_wan_animate(), cpu, ANIMATE),
        "wan-animate-prev5": model_from_pipeline("wan-animate-prev5", build_wan_animate(), cpu, ANIMATE_PREV5),
        "omnigen": model_from_pipeline("omnigen", omnigen, cpu, {"width": 32, "height": 32, "steps": 2}),
        "anyflow-far": model_from_pipeline("anyflow-far", build_tiny_anyflow_far(), cpu, FAR_VIDEO),
        "df": model_from_pipeline("df", build_skyreels_v2_df(), cpu, SKYREELS),
        "df-i2v": model_from_pipeline(
            "df-i2v", build_skyreels_v2_df(SkyReelsV2DiffusionForcingImageToVideoPipeline), cpu, SKYREELS
        ),
        "df-v2v": model_from_pipeline("df-v2v", continuation, cpu, CONTINUATION),
        "helios-pyramid": model_from_pipeline("helios-pyramid", build_helios(HeliosPyramidPipeline, 2), cpu, PYRAMID),
        "helios-distilled": model_from_pipeline("helios-distilled", _distilled_pyramid(), cpu, DISTILLED),
        "ltx-long": model_from_pipeline("ltx-long", build_ltx_long(), cpu, LTX_LONG),
        "ltx2-ic": model_from_pipeline("ltx2-ic", build_in_context(), cpu, LTX2_VIDEO),
        "ltx2-hdr": model_from_pipeline("ltx2-hdr", build_hdr(), cpu, LTX2_VIDEO),
        "ltx2-dfr": model_from_pipeline("ltx2-dfr", build_dfr(), cpu, DFR),
        "easyanimate-control": model_from_pipeline(
            "easyanimate-control", build_easyanimate(EasyAnimateControlPipeline), cpu, EASYANIMATE
        ),
        # Half-strength attention between the noisy and the reference tokens: a video self-attention mask.
        "ltx2-ic-masked": model_from_pipeline(
            "ltx2-ic-masked",
            build_in_context(),
            cpu,
            {**LTX2_VIDEO, "call_defaults": {**LTX2_VIDEO["call_defaults"], "conditioning_attention_strength": 0.5}},
        ),
        # Windows of 3 latent frames overlapping by 2: each window after the first adds a frame more than
        # it advances, so only one-window videos (9 or 17 frames) come out as asked.
        "ltx-long-overlap2": model_from_pipeline(
            "ltx-long-overlap2",
            build_ltx_long(),
            cpu,
            {**LTX_LONG, "call_defaults": {**LTX_LONG["call_defaults"], **OVERLAP_2}},
        ),
    }
    batching = BatchingConfig(max_batch=4, batch_window_ms=300)
    engine = AsyncEngine(models, "dit", Limits(), "cpu", batching)
    with BackgroundServer(engine) as server:
        yield server


@pytest.fixture(scope="module")
def client(server):
    with Client(server.address, timeout=120) as client:
        yield client


def _fields(err: InvalidArgumentError) -> dict[str, str]:
    return {v.field: v.description for v in err.field_violations}


def _streamed(events: list) -> tuple[Started, list[Step], object]:
    """A finished stream's Started event, its Step events in order, and its result."""
    (started,) = [event for event in events if isinstance(event, Started)]
    steps = [event for event in events if isinstance(event, Step)]
    (result,) = [event.result for event in events if isinstance(event, Completed)]
    return started, steps, result


def test_the_prompt_names_a_class_by_name_synonym_or_index(client):
    by_name = client.generate("Golden Retriever", seed=1)
    by_index = client.generate(" 2 ", seed=1)
    assert by_name.outputs[0].sha256 == by_index.outputs[0].sha256
    synonym = client.generate("red disc", seed=1)
    assert synonym.outputs[0].sha256 == client.generate("0", seed=1).outputs[0].sha256
    assert synonym.outputs[0].image.size == (16, 16)


@pytest.mark.parametrize("prompt", ["a green triangle", "1000", "-1"])
def test_a_prompt_naming_no_class_is_invalid_and_the_server_keeps_serving(client, prompt):
    with pytest.raises(InvalidArgumentError) as info:
        client.generate(prompt)
    description = _fields(info.value)["prompt"]
    assert "class index 0-999" in description and "'a blue square'" in description
    assert client.generate("1").outputs


def test_an_ideogram_prompt_longer_than_its_token_limit_is_invalid_and_the_server_keeps_serving(client):
    """The pipeline raises on a prompt of more than ``max_sequence_length`` tokens; the engine refuses it first."""
    with pytest.raises(InvalidArgumentError) as info:
        client.generate("a red circle on a blue square " * 8, model="ideogram4")
    assert "the model takes at most 64" in _fields(info.value)["prompt"]
    assert client.generate("a red circle", model="ideogram4", seed=1).outputs


def test_a_size_other_than_the_native_one_is_invalid(client):
    with pytest.raises(InvalidArgumentError) as info:
        client.generate("1", width=32, height=32)
    assert "renders 16x16 only" in _fields(info.value)["width"]
    with pytest.raises(InvalidArgumentError) as info:
        client.generate("1", negative_prompt="blurry")
    assert "negative_prompt" in _fields(info.value)
    assert client.generate("1", width=16, height=16).outputs


def test_steps_of_a_pipeline_without_step_callback_are_reported(client):
    steps = [event for event in client.stream("3", num_inference_steps=3) if isinstance(event, Step)]
    assert [step.step for step in steps] == [0, 1, 2]


async def _together(address: str, requests: list[dict]) -> list:
    async with AsyncClient(address, timeout=120) as client:
        return await asyncio.gather(*(client.generate(**r) for r in requests))


def test_a_single_generator_pipeline_gives_each_request_the_image_it_gets_alone(server, client):
    requests = [{"prompt": "a red circle", "model": "amused", "seed": seed} for seed in (1, 2, 3)]
    alone = [client.generate(**r).outputs[0].sha256 for r in requests]
    crowd = asyncio.run(_together(server.address, requests))
    assert [r.outputs[0].sha256 for r in crowd] == alone
    assert len(set(alone)) == 3


def test_leaving_the_stream_of_a_pipeline_without_step_callback_stops_it_at_a_step(client):
    before = client.stats(model="hv15").models[0]
    for event in client.stream("a red circle", model="hv15", num_inference_steps=200, preview_every=1):
        if isinstance(event, Step):
            break
    deadline = time.monotonic() + 60
    while client.stats(model="hv15").models[0].cancelled.count == before.cancelled.count:
        assert time.monotonic() < deadline, "the left stream's job was not cancelled"
        time.sleep(0.05)
    after = client.stats(model="hv15").models[0]
    assert after.cancelled_steps - before.cancelled_steps < 200
    assert client.generate("a red circle", model="hv15").outputs  # the pipeline serves the next request


def test_an_image_to_video_size_off_the_resolution_buckets_is_invalid(client):
    image = input_image("image", (48, 32))
    with pytest.raises(InvalidArgumentError) as info:
        client.generate("a red circle", model="hv15-i2v", width=48, height=32, input_images=[image])
    assert "the nearest to 48x32 is 32x32" in _fields(info.value)["width"]
    # A bucket of another aspect ratio than the image: the image is cropped to it, the video has its size.
    video = client.generate("a red circle", model="hv15-i2v", width=32, height=16, input_images=[image])
    assert (video.outputs[0].width, video.outputs[0].height) == (32, 16)


def test_a_request_for_two_videos_gets_both_although_the_vae_cannot_decode_a_batch(client):
    videos = client.generate("a red circle", model="hv15", num_outputs=2, seed=4).outputs
    assert [video.num_frames for video in videos] == [VIDEO["frames"]] * 2
    assert videos[0].sha256 != videos[1].sha256


def test_the_image_to_video_default_size_is_the_checkpoints_16_9_bucket():
    pipeline = build_hunyuan_video15(HunyuanVideo15ImageToVideoPipeline)
    model = model_from_pipeline("hv15-i2v", pipeline, torch.device("cpu"), {"frames": 5})
    # target_size 32 has no 16:9 bucket; the pipeline's own choice for 16:9 is 32x32 (the family's
    # default, for the 480p checkpoints, is 848x480).
    assert (model.default_width, model.default_height) == (32, 32)
    assert model.family.check_size(pipeline, model.default_width, model.default_height) is None


def test_a_motif_video_checkpoint_with_decoder_layers_fails_to_load():
    pipeline = build_tiny_motif_video()
    config = dict(pipeline.transformer.config)
    config["num_decoder_layers"] = 1
    pipeline.transformer = type(pipeline.transformer).from_config(config).eval()
    with pytest.raises(ModelLoadError, match="model 'motif-video': MotifVideoPipeline with num_decoder_layers=1"):
        model_from_pipeline("motif-video", pipeline, torch.device("cpu"), {"width": 32, "height": 32, "frames": 5})


def test_a_kandinsky5_image_size_off_its_resolutions_is_invalid_naming_the_size_it_would_render(client):
    with pytest.raises(InvalidArgumentError) as info:
        client.generate("a red circle", model="k5", width=96, height=32)
    assert "96x32 would be rendered as 64x32" in _fields(info.value)["width"]
    (default,) = client.generate("a red circle", model="k5").outputs
    (listed,) = client.generate("a red circle", model="k5", width=64, height=32).outputs
    assert (default.width, default.height, listed.width, listed.height) == (32, 32, 64, 32)


def test_kandinsky5_requests_sent_together_get_the_images_they_get_alone(server, client):
    """Prompts of other lengths: in one call the shorter would be padded, and the transformer attends to padding."""
    requests = [
        {"prompt": prompt, "model": "k5", "seed": 2} for prompt in ("a red circle", "a blue square on a green field")
    ]
    alone = [client.generate(**r).outputs[0].sha256 for r in requests]
    crowd = asyncio.run(_together(server.address, requests))
    assert [r.outputs[0].sha256 for r in crowd] == alone


@pytest.mark.parametrize(("model", "size"), [("k5-i2i", (32, 32)), ("k6", (16, 16))])
def test_one_input_image_conditions_every_output_of_a_request(client, model, size):
    outputs = client.generate("a red circle", model=model, num_outputs=2, input_images=[input_image("image", size)])
    assert len(outputs.outputs) == 2 and outputs.outputs[0].sha256 != outputs.outputs[1].sha256


def test_joyimage_edit_defaults_to_its_square_bucket_and_refuses_sizes_off_its_bucket_table():
    """With diffusers' own ~1 MP bucket table (the tiny family case lists tiny buckets)."""
    pipeline = build_tiny_joyimage_edit(tiny_buckets=False)
    model = model_from_pipeline("joyimage-edit", pipeline, torch.device("cpu"), {"steps": 2})
    assert (model.default_width, model.default_height) == (1024, 1024)
    assert model.family.check_size(pipeline, 1216, 832) is None and model.family.check_size(pipeline, 832, 1216) is None
    assert "1040x1024 would be rendered as 1024x1024" in model.family.check_size(pipeline, 1040, 1024)
    assert "512x512 would be rendered as 1024x1024" in model.family.check_size(pipeline, 512, 512)


def test_a_chunked_video_reports_every_step_of_every_chunk_and_the_cache_restarts_per_chunk(client):
    """9 frames in chunks of 5: two denoising loops of 3 steps, reported as steps 0-5 of 6."""
    events = list(client.stream("a red circle", model="helios", seed=3, cache=ALWAYS_CACHE))
    started, steps, result = _streamed(events)
    assert started.total_steps == 6 and {step.total_steps for step in steps} == {6}
    assert [step.step for step in steps] == list(range(6))
    # Each chunk's scheduler runs the same timesteps; each chunk warms the cache up on its first step.
    assert [step.timestep for step in steps[:3]] == [step.timestep for step in steps[3:]]
    assert [step.cached for step in steps] == [False, True, True, False, True, True]
    assert [stat.step for stat in result.cache_stats.steps] == list(range(6))
    assert [stat.cached for stat in result.cache_stats.steps] == [step.cached for step in steps]
    assert result.cache_stats.cached_steps == 4


def test_a_frame_count_that_whole_chunks_do_not_make_is_invalid(client):
    with pytest.raises(InvalidArgumentError) as info:
        client.generate("a red circle", model="helios", num_frames=21)
    assert "ask for 25" in _fields(info.value)["num_frames"]
    (video,) = client.generate("a red circle", model="helios", num_frames=13, num_inference_steps=1).outputs
    assert video.num_frames == 13  # three chunks


def test_leaving_the_stream_of_a_chunked_video_stops_it_at_a_step_of_a_later_chunk(client):
    before = client.stats(model="helios").models[0]
    for event in client.stream("a red circle", model="helios", num_inference_steps=80):
        if isinstance(event, Step) and event.step == 80:  # the first step of the second chunk
            break
    deadline = time.monotonic() + 60
    while client.stats(model="helios").models[0].cancelled.count == before.cancelled.count:
        assert time.monotonic() < deadline, "the left stream's job was not cancelled"
        time.sleep(0.05)
    after = client.stats(model="helios").models[0]
    assert 81 <= after.cancelled_steps - before.cancelled_steps < 160
    assert client.generate("a red circle", model="helios").outputs  # the pipeline serves the next request


REFERENCE = input_image("reference", (32, 32))


@pytest.mark.parametrize(
    ("prompt", "references"),
    [
        ("<img><|image_1|></img> a red circle", 0),  # a tag without its image
        ("a red circle", 1),  # an image without its tag
        ("<img><|image_2|></img> a red circle", 1),  # the tags count from 1
        ("<img><|image_1|></img> and <img><|image_2|></img>", 1),  # one image for two tags
        ("<img><|image_1|></img> a red circle", 2),  # two images for one tag
        ("<|image_1|> a red circle", 1),  # a tag without its <img> ... </img>
    ],
)
def test_an_omnigen_prompt_whose_image_tags_do_not_name_its_references_is_invalid(client, prompt, references):
    with pytest.raises(InvalidArgumentError) as info:
        client.generate(prompt, model="omnigen", input_images=[REFERENCE] * references)
    assert set(_fields(info.value)) == {"prompt"}
    assert "reference image" in _fields(info.value)["prompt"]
    both = client.generate(
        "<img><|image_2|></img> on <img><|image_1|></img>", model="omnigen", input_images=[REFERENCE] * 2
    )
    assert len(both.outputs) == 1


@pytest.mark.parametrize(
    "prompt", ["<img><|image_1|></img> on <|image_2|>", "<img><|image_01|></img> <img><|image_2|></img>"]
)
def test_an_omnigen_tag_not_written_in_full_is_named_as_written_wrong(client, prompt):
    """The numbers are right, so the message names the tag to write in full rather than listing them."""
    with pytest.raises(InvalidArgumentError) as info:
        client.generate(prompt, model="omnigen", input_images=[REFERENCE] * 2)
    missing = "<img><|image_2|></img>" if "on" in prompt else "<img><|image_1|></img>"
    assert _fields(info.value)["prompt"].startswith(f"does not name {missing} in full"), info.value


def test_omnigen_runs_two_cfg_branches_without_references_and_three_with_them(client, omnigen):
    """Text only: prompt and negative prompt; with references also the references alone (image guidance)."""
    rows = []
    hook = omnigen.transformer.register_forward_pre_hook(
        lambda module, args, kwargs: rows.append(kwargs["hidden_states"].shape[0]), with_kwargs=True
    )
    try:
        client.generate("a red circle", model="omnigen", num_outputs=2)
        client.generate("<img><|image_1|></img> a red circle", model="omnigen", input_images=[REFERENCE])
    finally:
        hook.remove()
    assert rows == [4, 4, 3, 3]


def test_an_omnigen_text_only_request_caches_like_one_with_references(client):
    plain = client.generate("a red circle", model="omnigen", seed=4)
    never = client.generate(
        "a red circle", model="omnigen", seed=4, cache=CachePolicy(preset="dbcache", residual_diff_threshold=0.0)
    )
    always = client.generate(
        "a red circle",
        model="omnigen",
        seed=4,
        cache=CachePolicy(preset="dbcache", residual_diff_threshold=1.0, max_warmup_steps=1, warmup_interval=1),
    )
    assert never.outputs[0].sha256 == plain.outputs[0].sha256
    assert always.cache_stats.cached_steps == 1 and always.outputs[0].sha256 != plain.outputs[0].sha256


def test_omnigen_requests_sent_together_get_the_images_they_get_alone(server, client):
    """Prompts of other lengths: in one call the rotary embedding of every row would follow the first row's."""
    requests = [
        {"prompt": prompt, "model": "omnigen", "seed": 2}
        for prompt in ("a red circle", "a blue square on a green field")
    ]
    alone = [client.generate(**r).outputs[0].sha256 for r in requests]
    crowd = asyncio.run(_together(server.address, requests))
    assert [r.outputs[0].sha256 for r in crowd] == alone


def test_amused_image_to_image_reports_and_caches_the_int_of_steps_times_strength_steps_it_runs(client):
    """10 steps at strength 0.35: aMUSEd runs int(3.5) = 3; diffusers' usual count, 10 - int(6.5), would say 4."""
    policy = CachePolicy(preset="dbcache", residual_diff_threshold=1.0, max_warmup_steps=1, warmup_interval=1)
    request = {"model": "amused-i2i", "strength": 0.35, "input_images": [input_image("image", (8, 8))]}
    events = list(client.stream("a red circle", cache=policy, **request))
    started, steps, result = _streamed(events)
    assert started.total_steps == 3 and [(s.step, s.total_steps) for s in steps] == [(0, 3), (1, 3), (2, 3)]
    assert (result.cache_stats.computed_steps, result.cache_stats.cached_steps) == (1, 2)


@pytest.mark.parametrize(
    ("fields", "field", "why"),
    [
        ({"strength": 0.05}, "strength", "runs no denoising step"),  # int(0.05 x 10) = 0
        ({"num_inference_steps": 1}, "num_inference_steps", "runs no denoising step"),  # int(0.5 x 1) = 0
        ({"strength": 1.0}, "strength", "masks no token"),  # it would noise for index -1 of its schedule
    ],
)
def test_an_amused_image_to_image_strength_it_would_run_wrong_is_invalid(client, fields, field, why):
    request = {"model": "amused-i2i", "input_images": [input_image("image", (8, 8))]}
    with pytest.raises(InvalidArgumentError) as info:
        client.generate("a red circle", **request, **fields)
    assert set(_fields(info.value)) == {field} and why in _fields(info.value)[field]
    assert len(client.generate("a red circle", **request, strength=0.1).outputs) == 1


@pytest.mark.parametrize("temporal", [True, False])
def test_latte_pair_blocks_give_the_stock_transformers_video_bit_for_bit(temporal):
    """Each pair runs a spatial block, the reshapes, temp_pos_embed (once, in the first pair) and the temporal
    block as the transformer's own loop does; a call without temporal attention runs the spatial blocks alone."""
    stock = build_tiny_latte()
    served = model_from_pipeline("latte", build_tiny_latte(), torch.device("cpu"), {}).pipeline
    assert type(served.transformer.transformer_blocks[0]).__name__ == "LattePairBlock"

    def video(pipe):
        return pipe(
            "a red circle",
            width=32,
            height=32,
            video_length=LATTE_FRAMES,
            num_inference_steps=2,
            clean_caption=False,
            enable_temporal_attentions=temporal,
            generator=torch.Generator().manual_seed(3),
            output_type="np",
        ).frames

    assert np.array_equal(video(served), video(stock))


def test_an_omnigen_reference_more_elongated_than_128_to_1_is_invalid(client):
    """4096x16 would become 4096x16 pixels again after the pipeline's scaling (1024 wide, 4 high, then 16
    high): 256 patches, more than the transformer's 192 positions a side."""
    prompt = "<img><|image_1|></img> a red circle"
    with pytest.raises(InvalidArgumentError) as info:
        client.generate(prompt, model="omnigen", input_images=[input_image("reference", (4096, 16))])
    assert "128:1" in _fields(info.value)["input_images[0].data"]
    served = client.generate(prompt, model="omnigen", input_images=[input_image("reference", (1024, 16))])
    assert len(served.outputs) == 1


def test_the_key_value_fill_between_chunks_runs_every_block_whatever_the_cache_would_reuse(client):
    """Two chunks of 3 steps; after the first, the pipeline calls the transformer a fourth time (timestep 0)
    to write the chunk's keys and values into each block's attention cache. A warm-up of 3 steps computes
    every denoising step, and threshold 1 would reuse the middle blocks' residual at any other call: the
    video equals the uncached one only when the fill call runs every block (a skipped block would leave
    its layer of the key-value cache empty for the second chunk)."""
    policy = CachePolicy(
        preset="dbcache",
        residual_diff_threshold=1.0,
        max_warmup_steps=3,
        warmup_interval=1,
        max_continuous_cached_steps=-1,
    )
    request = {"model": "anyflow-far", "seed": 3, "output_format": "png_frames", "num_inference_steps": 3}
    plain = client.generate("a red circle", **request)
    warm = client.generate("a red circle", **request, cache=policy)
    assert [stat.cached for stat in warm.cache_stats.steps] == [False] * 6
    assert [output.sha256 for output in warm.outputs] == [output.sha256 for output in plain.outputs]


def test_windows_that_skip_their_last_timestep_report_the_steps_that_run_and_cache_by_them(client):
    """17 frames in 2 windows of 4 - 1 = 3 steps each: steps 0-5 of 6; the step mask covers one window's
    3 steps and computes each window's last step."""
    policy = CachePolicy(
        preset="dbcache",
        residual_diff_threshold=1.0,
        max_warmup_steps=1,
        warmup_interval=1,
        max_continuous_cached_steps=-1,
        steps_computation_mask=(1, 0, 1),
    )
    events = list(client.stream("a red circle", **LONG, seed=3, num_inference_steps=4, cache=policy))
    started, steps, result = _streamed(events)
    assert started.total_steps == 6 and {step.total_steps for step in steps} == {6}
    assert [step.step for step in steps] == list(range(6))
    assert [step.timestep for step in steps[:3]] == [step.timestep for step in steps[3:]]
    assert [step.cached for step in steps] == [False, True, False, False, True, False]
    assert result.cache_stats.cached_steps == 2
    # A mask has an entry per step of one window (3), not per requested step.
    mask = CachePolicy(steps_computation_mask=(1, 0, 0, 1))
    with pytest.raises(InvalidArgumentError) as info:
        client.generate("a red circle", **LONG, num_inference_steps=4, cache=mask)
    assert "3" in _fields(info.value)["cache.steps_computation_mask"]


def test_a_window_without_a_step_is_invalid(client):
    with pytest.raises(InvalidArgumentError) as info:
        client.generate("a red circle", **LONG, num_inference_steps=1)
    assert "at least one" in _fields(info.value)["num_inference_steps"]
    assert client.generate("a red circle", **LONG, num_inference_steps=2).outputs


def test_a_frame_count_that_the_windows_do_not_make_is_invalid_naming_the_count_they_make(client):
    with pytest.raises(InvalidArgumentError) as info:
        client.generate("a red circle", **OVERLAPPING, num_frames=25)
    # 25 frames make 33, and 33 would make 49: the nearest count the windows make is 17 (one window).
    assert "make 33 frames; ask for 17" in _fields(info.value)["num_frames"]
    (video,) = client.generate("a red circle", **OVERLAPPING, num_frames=17, num_inference_steps=2).outputs
    assert video.num_frames == 17


def test_the_long_video_seed_draws_every_window_and_a_bar_gives_each_window_its_prompt(client):
    def video(prompt: str, seed: int = 3) -> str:
        (output,) = client.generate(prompt, **LONG, seed=seed, num_inference_steps=2).outputs
        return output.sha256

    plain = video("a red circle")
    assert video("a red circle", seed=4) != plain
    # The prompt is split at the bar: the same prompt for both windows is the plain prompt.
    assert video("a red circle | a red circle") == plain
    assert video("a red circle | a blue square") != plain


@pytest.mark.parametrize("prompt", ["|", "a red circle |", " | a blue square", "a | | b"])
def test_an_empty_window_prompt_is_invalid_naming_the_prompt(client, prompt):
    with pytest.raises(InvalidArgumentError) as info:
        client.generate(prompt, **LONG, seed=3, num_inference_steps=2)
    assert "window prompts split at '|' must not be empty" in _fields(info.value)["prompt"]


def test_a_pyramid_video_reports_every_stage_of_every_chunk_and_the_cache_restarts_per_stage(client):
    """2 chunks of 2 stages (a 2x2 then a 4x4 latent) of 2 steps: steps 0-7 of 8, each stage warming up."""
    events = list(client.stream("a red circle", model="helios-pyramid", seed=3, cache=ALWAYS_CACHE))
    started, steps, result = _streamed(events)
    assert started.total_steps == 8 and {step.total_steps for step in steps} == {8}
    assert [step.step for step in steps] == list(range(8))
    assert [step.cached for step in steps] == [False, True] * 4
    assert result.cache_stats.cached_steps == 4
    (video,) = result.outputs
    assert (video.num_frames, video.width, video.height) == (9, 32, 32)


def test_a_pyramid_size_its_lowest_stage_cannot_patch_is_invalid_argument_naming_width(client):
    """48x48 is a 6x6 latent: its 2-stage pyramid's first stage would be 3x3, which 2x2 patches do not tile."""
    with pytest.raises(InvalidArgumentError) as raised:
        client.generate("a red circle", model="helios-pyramid", width=48, height=48)
    assert {violation.field for violation in raised.value.field_violations} == {"width"}, raised.value
    assert "multiples of 32" in str(raised.value)
    (video,) = client.generate("a red circle", model="helios-pyramid", width=64, height=32).outputs
    assert (video.width, video.height) == (64, 32)


def test_a_distilled_pyramid_video_runs_twice_the_steps_in_its_first_chunk(client):
    events = list(client.stream("a red circle", model="helios-distilled", seed=3, num_inference_steps=1))
    (started,) = [event for event in events if isinstance(event, Started)]
    steps = [event.step for event in events if isinstance(event, Step)]
    assert started.total_steps == 4 and steps == list(range(4))  # 1 chunk: 2 stages of 2 x 1 steps


@pytest.fixture(scope="module")
def layered():
    """A Qwen-Image Layered server (its own: its warm-up splits a 640x640 picture into 4 layers)."""
    case = next(c for c in all_cases() if c.name == "qwen-image-layered")
    model = model_from_pipeline(case.name, case.build(), torch.device("cpu"), case.defaults)
    with BackgroundServer(AsyncEngine({case.name: model}, case.name, Limits(), "cpu")) as server:
        with Client(server.address, timeout=300) as client:
            yield server, client


def _rgba_picture(alpha: int) -> InputImage:
    """A 64x32 PNG whose right half has ``alpha``; its colours are the same whatever ``alpha``."""
    image = Image.new("RGBA", (64, 32), (40, 90, 200, 255))
    image.paste((230, 200, 30, alpha), (32, 0, 64, 32))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return InputImage(data=buffer.getvalue(), role="image")


def test_layered_outputs_come_layer_by_layer_of_each_output_with_their_alpha(layered):
    """Two outputs of one layer each: diffusers 0.42.1 cuts its flat list of images every layers + 1, so
    the engine joins them back in order; each is an RGBA image, the first what a request for one gives."""
    _, client = layered
    request = {"input_images": [_rgba_picture(255)], "seed": 3, "layers": 1}
    (alone,) = client.generate("a red circle", **request).outputs
    two = client.generate("a red circle", num_outputs=2, **request).outputs
    assert len(two) == 2 and all(o.image.mode == "RGBA" and o.image.size == (896, 448) for o in two)
    assert two[0].sha256 != two[1].sha256
    first, single = np.asarray(two[0].image, dtype=np.int16), np.asarray(alone.image, dtype=np.int16)
    assert np.abs(first - single).max() <= 2  # batched arithmetic may round a few pixels otherwise


def test_outputs_times_layers_beyond_max_outputs_is_invalid_naming_layers(layered):
    """Each layer is an output of the response: 3 outputs x 3 layers (9) exceed the default max_outputs (8)."""
    _, client = layered
    request = {"input_images": [_rgba_picture(255)], "seed": 3}
    with pytest.raises(InvalidArgumentError) as info:
        client.generate("a red circle", num_outputs=3, layers=3, **request)
    assert "9 images, more than the engine's max_outputs (8)" in _fields(info.value)["layers"]
    assert len(client.generate("a red circle", num_outputs=2, layers=1, **request).outputs) == 2


def test_layered_reads_the_input_images_alpha_channel(layered):
    """The same colours with a transparent half give other layers than opaque ones."""
    _, client = layered
    results = [
        client.generate("a red circle", input_images=[_rgba_picture(alpha)], seed=3, layers=1).outputs[0].sha256
        for alpha in (255, 0)
    ]
    assert results[0] != results[1]


def test_generate_writes_one_file_per_layer(layered, tmp_path):
    server, _ = layered
    picture = tmp_path / "in.png"
    picture.write_bytes(_rgba_picture(128).data)
    command = [str(pathlib.Path(sys.executable).parent / "ditserve"), "generate", "a red circle"]
    command += ["--target", server.address, "--input-image", str(picture), "--layers", "3", "--seed", "1"]
    command += ["--out", str(tmp_path / "out")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    files = sorted((tmp_path / "out").iterdir())
    assert [f.name for f in files] == ["1-0.png", "1-1.png", "1-2.png"]  # 3 layers, not the model's 2
    assert all(Image.open(f).mode == "RGBA" for f in files)


def test_layered_renders_about_its_resolution_squared_in_the_input_images_aspect():
    """640 by default (the pipeline's), 1024 from the model's call defaults: the size a request gets."""
    case = next(c for c in all_cases() if c.name == "qwen-image-layered")
    pipeline = case.build()
    rule = model_from_pipeline(case.name, pipeline, torch.device("cpu"), case.defaults).family.size_from_input
    assert rule(pipeline, 64, 32, {}) == (896, 448)
    assert rule(pipeline, 64, 32, {"resolution": 1024}) == (1440, 736)
    assert rule(pipeline, 30, 40, {"resolution": 1024}) == (896, 1184)


@pytest.fixture(scope="module")
def visualcloze():
    """The generation pipeline (the default model) and the combined one (``visualcloze``)."""
    cases = [c for c in all_cases() if c.name in ("visualcloze-generation", "visualcloze")]
    models = {c.name: model_from_pipeline(c.name, c.build(), torch.device("cpu"), c.defaults) for c in cases}
    with BackgroundServer(AsyncEngine(models, "visualcloze-generation", Limits(), "cpu")) as server:
        with Client(server.address, timeout=120) as client:
            yield client


@pytest.mark.parametrize(("strength", "upsampling_steps"), [(None, 2), (0.7, 3), (0.3, 1)])
def test_visualcloze_reports_the_generation_pass_then_the_upsampling_steps_its_strength_leaves(
    visualcloze, strength, upsampling_steps
):
    """3 steps of generation, then the upsampling pass's 3 - int(3 - strength x 3) (default strength 0.4)."""
    request = {"task_prompt": "In each row, [IMAGE2] is a painting of [IMAGE1]", "seed": 3, "strength": strength}
    query = [input_image("image", (48, 32))]
    events = list(visualcloze.stream("a red circle", model="visualcloze", input_images=query, **request))
    total = 3 + upsampling_steps
    assert [e.total_steps for e in events if isinstance(e, Started)] == [total]
    assert [(e.step, e.total_steps) for e in events if isinstance(e, Step)] == [(i, total) for i in range(total)]
    (output,) = next(e.result for e in events if isinstance(e, Completed)).outputs
    assert output.image.size == (32, 32)  # the request's size (the model's default here)


def test_visualcloze_reads_the_task_prompt_and_its_in_context_rows(visualcloze):
    """The query row (role image) alone, another task prompt, and one in-context row (role reference: its
    condition image, then its target) each give another target; a row left short is refused."""
    task = "In each row, [IMAGE2] is a painting of [IMAGE1]"
    query = [input_image("image", (48, 32))]
    row = [input_image("reference", (32, 32)), input_image("mask", (32, 32))]
    row[1] = InputImage(data=row[1].data, role="reference")
    alone = visualcloze.generate("a red circle", task_prompt=task, input_images=query, seed=3)
    other_task = visualcloze.generate(
        "a red circle", task_prompt="In each row, [IMAGE2] blurs [IMAGE1]", input_images=query, seed=3
    )
    in_context = visualcloze.generate("a red circle", task_prompt=task, input_images=[*row, *query], seed=3)
    hashes = {r.outputs[0].sha256 for r in (alone, other_task, in_context)}
    assert len(hashes) == 3
    assert all(r.outputs[0].image.size == (32, 16) for r in (alone, other_task, in_context))
    with pytest.raises(InvalidArgumentError) as refused:
        visualcloze.generate("a red circle", task_prompt=task, input_images=[row[0], *query], seed=3)
    assert "whole in-context rows of 2" in _fields(refused.value)["input_images"]
    assert (
        visualcloze.generate("a red circle", task_prompt=task, input_images=query, seed=3).outputs[0].sha256 in hashes
    )


def test_cogvideox_makes_8k_plus_1_frames():
    """CogVideoX's VAE decodes an even count of latent frames to 4 frames each: asked for 13 frames (4
    latent frames), the pipeline makes 16, so the engine refuses 13 naming num_frames and makes 17 as asked."""
    from diffusers import CogVideoXPipeline
    from tiny_families.cogvideox import VIDEO as COGVIDEOX
    from tiny_families.cogvideox import _build

    pipeline = _build(CogVideoXPipeline)
    call = {"prompt": "a cat", "height": 16, "width": 16, "num_inference_steps": 1, "max_sequence_length": 16}
    with torch.no_grad():
        assert pipeline(**call, num_frames=13, output_type="np").frames.shape[1] == 16
    model = model_from_pipeline("cogvideox", pipeline, torch.device("cpu"), COGVIDEOX)
    with BackgroundServer(AsyncEngine({"cogvideox": model}, "cogvideox", Limits(), "cpu")) as server:
        with Client(server.address, timeout=120) as client:
            with pytest.raises(InvalidArgumentError) as refused:
                client.generate("a cat", num_frames=13)
            made = client.generate("a cat", num_frames=17, num_inference_steps=2, output_format="png_frames")
    assert set(_fields(refused.value)) == {"num_frames"}
    assert len(made.outputs) == 17


def test_a_layered_preview_of_the_last_latents_is_the_first_layer_over_white():
    """The packed latents hold the re-made input image, then the layers: a preview decodes the first layer,
    its alpha composited over white, as the pipeline decodes it."""
    case = next(c for c in all_cases() if c.name == "qwen-image-layered")
    pipeline = case.build()
    model = model_from_pipeline(case.name, pipeline, torch.device("cpu"), case.defaults)
    picture = Image.open(io.BytesIO(_rgba_picture(128).data))
    job = JobSpec(
        request_id="preview",
        model=case.name,
        prompt="a red circle",
        negative_prompt="",
        width=896,
        height=448,
        num_inference_steps=2,
        guidance_scale=1.0,
        seed=3,
        num_outputs=1,
        num_frames=1,
        fps=0,
        output_format=OutputFormat.PNG,
        output_quality=90,
        preview_every=1,
        input_images=(("image", picture.convert("RGBA")),),
        layers=2,
    )
    last = {}

    def keep_latents(pipe, index, timestep, tensors):
        last["latents"] = tensors["latents"]
        return {}

    kwargs = {**model.call_defaults, **model.family.build_call_kwargs(pipeline, [job])}
    kwargs["callback_on_step_end"] = keep_latents
    with torch.no_grad():
        output = pipeline(**kwargs, generator=torch.Generator().manual_seed(3), output_type="np")
        (preview,) = model.family.decode_latents(pipeline, last["latents"], job)
    layers = model.family.read_output(output)
    assert layers.shape == (2, 448, 896, 4)
    first = torch.from_numpy(layers[0])
    alpha = first[..., 3:]
    torch.testing.assert_close(preview, first[..., :3] * alpha + (1 - alpha), atol=1e-4, rtol=0)


def test_a_models_default_layers_must_be_one_its_family_takes():
    """``layers`` in a model's ``ditserve.json``: the request's default, 1 to the family's most, and only
    for a family that splits its image into layers."""
    case = next(c for c in all_cases() if c.name == "qwen-image-layered")
    cpu = torch.device("cpu")
    assert model_from_pipeline(case.name, case.build(), cpu, {**case.defaults, "layers": 6}).default_layers == 6
    with pytest.raises(ModelLoadError, match="layers must be between 1 and 8, got 9"):
        model_from_pipeline(case.name, case.build(), cpu, {**case.defaults, "layers": 9})
    with pytest.raises(ModelLoadError, match="splits no image into layers"):
        model_from_pipeline("dit", build_tiny_dit(), cpu, {"steps": 2, "layers": 2})


def test_the_models_command_shows_the_layers_a_layered_model_takes(layered, capsys):
    server, client = layered
    (info,) = client.list_models().models
    assert (info.parameters, info.default_layers, info.max_layers, info.outputs_alpha) == (("layers",), 2, 8, True)
    assert cli.main(["models", "--target", server.address]) == 0
    (row,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("* qwen-image-layered")]
    assert "layers (default 2, 1-8)" in row and "of input" in row


def test_list_models_says_which_visualcloze_model_takes_a_task_prompt_and_a_strength(visualcloze):
    info = {m.name: m for m in visualcloze.list_models().models}
    assert info["visualcloze-generation"].parameters == ("task_prompt",)
    assert info["visualcloze"].parameters == ("strength", "task_prompt")
    assert info["visualcloze"].default_strength == pytest.approx(0.4)
    assert info["visualcloze"].repeated_roles == ("image", "reference")


def test_diffusion_forcing_counts_a_step_once_for_all_frames_and_reports_the_noisiest_frames_timestep(client):
    """5 frames: 2 latent frames, each stepped by its own scheduler copy, 4 steps with CFG (two calls each).
    With threshold 1 both branches cache every step after the first. The image-to-video pipeline keeps the
    image's latent frame ready (timestep 0): its steps report the generated frames' timesteps, as text-to-video."""
    timesteps = {}
    for model, inputs in (("df", []), ("df-i2v", [input_image("image", (16, 16))])):
        events = list(client.stream("a red circle", model=model, seed=3, cache=ALWAYS_CACHE, input_images=inputs))
        steps = [event for event in events if isinstance(event, Step)]
        assert [step.step for step in steps] == [0, 1, 2, 3]
        assert [step.cached for step in steps] == [False, True, True, True]
        assert [step.cfg_cached for step in steps] == [False, True, True, True]
        timesteps[model] = [step.timestep for step in steps]
    assert timesteps["df"] == timesteps["df-i2v"] == sorted(timesteps["df"], reverse=True)
    assert min(timesteps["df"]) > 0


#: The 7-frame video the continuation requests send.
CONTINUED = [input_video("video", (16, 16), 7)]


@pytest.mark.parametrize(("frames", "steps", "windows"), [(13, 3, 2), (17, 2, 3)])
def test_a_continued_video_holds_the_input_then_reports_and_caches_every_window(
    client, continuation, frames, steps, windows
):
    """Windows of 3 latent frames overlapping by 2 add one latent frame (4 frames) each: 13 new frames take
    2 windows, 17 take 3, each a whole loop of the request's steps over fresh scheduler copies, reported in
    order and each a fresh run of the cache (warm-up on its first step): the last block runs on the
    warm-up step of each window alone, twice (CFG). The output is the 7 input frames (exactly: they are
    16 x 16 already) followed by the new ones."""
    last_block = continuation.transformer.blocks[-1]
    calls = []
    hook = last_block.register_forward_pre_hook(lambda module, args: calls.append(1))
    try:
        events = list(
            client.stream(
                "a red circle",
                model="df-v2v",
                seed=3,
                num_frames=frames,
                num_inference_steps=steps,
                input_videos=CONTINUED,
                cache=ALWAYS_CACHE,
                output_format="png_frames",
            )
        )
    finally:
        hook.remove()
    assert len(calls) == 2 * windows
    started, reported, result = _streamed(events)
    total = steps * windows
    assert started.total_steps == total and {step.total_steps for step in reported} == {total}
    assert [step.step for step in reported] == list(range(total))
    # Every window's copies run the same timesteps, the noisiest (a new frame's) reported.
    assert [step.timestep for step in reported] == [step.timestep for step in reported[:steps]] * windows
    assert [step.cached for step in reported] == ([False] + [True] * (steps - 1)) * windows
    assert result.cache_stats.cached_steps == (steps - 1) * windows
    assert len(result.outputs) == 7 + frames
    shown = [np.asarray(output.image) for output in result.outputs]
    assert all((a == np.asarray(b)).all() for a, b in zip(shown, video_frames((16, 16), 7), strict=False))
    assert not (shown[7] == shown[6]).all()  # the sampled frames follow


def test_a_continuation_that_samples_no_frame_past_its_history_is_invalid(client):
    """5 new frames are 2 latent frames, all of them the 5-frame history: nothing would be sampled."""
    with pytest.raises(InvalidArgumentError) as info:
        client.generate("a red circle", model="df-v2v", num_frames=5, input_videos=CONTINUED)
    assert "make 9 frames; ask for 9" in _fields(info.value)["num_frames"]
    # A count off the 4k + 1 rule is shown one the windows make: 9, not the 5 they would refuse.
    with pytest.raises(InvalidArgumentError) as info:
        client.generate("a red circle", model="df-v2v", num_frames=6, input_videos=CONTINUED)
    assert "multiple of 4 plus 1 for skyreels-v2-df-v2v (e.g. 9); got 6" in _fields(info.value)["num_frames"]
    with pytest.raises(InvalidArgumentError) as info:
        client.generate("a red circle", model="df-v2v", input_videos=[input_video("video", (16, 16), 4)])
    assert "last 5 frames" in _fields(info.value)["input_videos[0].data"]
    # A video over the frame limit: num_frames counts the new frames and never cuts it, so it is not offered.
    with pytest.raises(InvalidArgumentError) as info:
        long = [input_video("video", (16, 16), 258)]
        client.generate("a red circle", model="df-v2v", num_frames=9, input_videos=long)
    too_long = _fields(info.value)["input_videos[0].data"]
    assert "more than 257 frames" in too_long and "num_frames" not in too_long, too_long
    # The output holds the input's frames and the new ones: together they are held to the frame limit.
    with pytest.raises(InvalidArgumentError) as info:
        client.generate(
            "a red circle", model="df-v2v", num_frames=9, input_videos=[input_video("video", (16, 16), 250)]
        )
    assert "250 + 9 frames exceed the limit of 257; ask for at most 7" in _fields(info.value)["num_frames"]
    (model,) = [m for m in client.list_models().models if m.name == "df-v2v"]
    assert (model.continues_video, model.frames_from_video) == ("video", "")
    (video,) = client.generate(
        "a red circle", model="df-v2v", num_frames=9, num_inference_steps=1, input_videos=CONTINUED
    ).outputs
    assert video.num_frames == 7 + 9  # one window


def test_a_video_upscale_reports_every_tile_loop_and_renders_the_size_its_video_gives(client):
    """2.25x: a 24x16 video is pre-upscaled to 28x16 (multiples of the VAE's 4), tiled by 16x16 tiles
    (two across) and upscaled 2x to 56x32; each tile is a loop of the request's steps with the scheduler's
    timesteps set anew, reported in order and each a fresh run of the cache. The video's 7 frames are cut
    to 5 (4k + 1). A wider video takes more tiles, and every output its own loops."""
    video = [input_video("video", (24, 16), 7)]
    events = list(
        client.stream("", model="k6-sr", seed=3, input_videos=video, cache=ALWAYS_CACHE, output_format="png_frames")
    )
    started, steps, result = _streamed(events)
    assert started.total_steps == 4 and {step.total_steps for step in steps} == {4}
    assert [step.step for step in steps] == [0, 1, 2, 3]
    assert [step.timestep for step in steps[:2]] == [step.timestep for step in steps[2:]]
    assert [step.cached for step in steps] == [False, True, False, True]
    assert result.cache_stats.cached_steps == 2
    assert [output.image.size for output in result.outputs] == [(56, 32)] * 5
    wide = [input_video("video", (40, 16), 5)]  # 44x16 after the pre-upscale: four tiles across
    started, steps, result = _streamed(
        list(client.stream("", model="k6-sr", input_videos=wide, num_inference_steps=1, num_outputs=2))
    )
    assert started.total_steps == len(steps) == 2 * 4
    assert [(output.width, output.height, output.num_frames) for output in result.outputs] == [(88, 32, 5)] * 2


#: Requests a video upscaler refuses: (prompt, fields, the field named, part of why).
UPSCALE_REFUSALS = [
    ("a red circle", {}, "prompt", "takes no prompt"),
    ("", {"guidance_scale": 2.0}, "guidance_scale", "takes no guidance scale"),
    ("", {"width": 48}, "width", "renders 56x32 for this 24x16 input video"),
    ("", {"input_videos": [input_video("video", (12, 8), 5)]}, "input_videos[0].data", "smaller than one 16x16 tile"),
]


def test_a_video_upscale_with_a_prompt_guidance_another_size_or_a_video_below_a_tile_is_invalid(client):
    video = [input_video("video", (24, 16), 5)]
    for prompt, fields, field, why in UPSCALE_REFUSALS:
        with pytest.raises(InvalidArgumentError) as info:
            client.generate(prompt, **{"model": "k6-sr", "input_videos": video, **fields})
        assert why in _fields(info.value)[field], field
    (model,) = [m for m in client.list_models().models if m.name == "k6-sr"]
    listed = (model.refuses_prompt, model.refuses_guidance_scale, model.default_width, model.default_height)
    assert listed == (True, True, 0, 0)
    (output,) = client.generate("", model="k6-sr", input_videos=video, num_inference_steps=1).outputs
    assert (output.width, output.height) == (56, 32)


def _animate(
    frames: int = 9, *, face_frames: int | None = None, replace: bool = False, model: str = "wan-animate", **videos
) -> dict:
    """A Wan-Animate request: the reference image, a pose and a face video of ``frames`` frames (the face
    video ``face_frames``), with ``replace`` a background and a mask video too; ``videos`` replaces a role's
    video (``None`` leaves it out)."""
    sent = {
        "pose": input_video("pose", (16, 16), frames),
        "face": input_video("face", (16, 16), face_frames or frames),
        "background": input_video("background", (16, 16), frames, other=True) if replace else None,
        "mask": input_video("mask", (16, 16), frames) if replace else None,
    }
    sent.update(videos)
    return {
        "model": model,
        "seed": 3,
        "input_images": [input_image("image", (16, 16))],
        "input_videos": [video for video in sent.values() if video is not None],
    }


@pytest.mark.parametrize(("frames", "segments"), [(9, 2), (13, 3)])
def test_an_animation_reports_every_step_of_every_segment_its_pose_video_needs_and_caches_per_segment(
    client, frames, segments
):
    """Segments of 5 frames, each after the first starting on the last frame of the one before: 9 pose frames
    take 2 segments, 13 take 3, each a denoising loop of 2 steps that warms the cache up on its first."""
    events = list(client.stream("a red circle", cache=ALWAYS_CACHE, **_animate(frames)))
    started, steps, result = _streamed(events)
    total = 2 * segments
    assert started.total_steps == total and {step.total_steps for step in steps} == {total}
    assert [step.step for step in steps] == list(range(total))
    assert [step.cached for step in steps] == [False, True] * segments
    assert [stat.cached for stat in result.cache_stats.steps] == [False, True] * segments
    assert result.cache_stats.cached_steps == segments
    (video,) = result.outputs
    assert video.num_frames == frames


def test_an_animation_of_num_frames_takes_the_segments_of_those_first_frames(client):
    """The first 5 of 13 frames: one segment. Two outputs share the videos, each with its own noise."""
    events = client.stream("a red circle", num_frames=5, num_outputs=2, **_animate(13))
    started, steps, result = _streamed(list(events))
    assert started.total_steps == len(steps) == 2
    assert [video.num_frames for video in result.outputs] == [5, 5]
    assert result.outputs[0].sha256 != result.outputs[1].sha256


def test_list_models_tells_the_animation_videos_and_that_the_pose_video_sets_the_frames(client):
    (info,) = [model for model in client.list_models().models if model.name == "wan-animate"]
    assert info.video_roles == ("pose", "face", "background", "mask")
    assert info.required_video_roles == ("pose", "face")
    assert info.frames_from_video == "pose"
    assert (info.input_roles, info.required_roles) == (("image",), ("image",))


def test_a_background_and_mask_video_replace_the_person_each_changing_the_video(client):
    def pixels(request):
        return client.generate("a red circle", output_format="png_frames", **request).outputs[0].sha256

    animated, replaced = pixels(_animate()), pixels(_animate(replace=True))
    other_background = pixels(_animate(replace=True, background=input_video("background", (16, 16), 9)))
    other_mask = pixels(_animate(replace=True, mask=input_video("mask", (16, 16), 9, other=True)))
    assert len({animated, replaced, other_background, other_mask}) == 4


@pytest.mark.parametrize(
    ("request_fields", "field", "words"),
    [
        ({"background": None}, "input_videos", "a mask video needs a background video"),
        ({"mask": None}, "input_videos", "a background video needs a mask video"),
        ({"face": input_video("face", (16, 16), 7)}, "input_videos[1].data", "has 7 frames"),
        ({"mask": input_video("mask", (16, 16), 11)}, "input_videos[3].data", "its pose video (input_videos[0])"),
        (
            # One frame: no segment after the first's conditioning frame.
            {
                "pose": input_video("pose", (16, 16), 1),
                "face": input_video("face", (16, 16), 1),
                "background": None,
                "mask": None,
            },
            "input_videos[0].data",
            "makes at least 2",
        ),
    ],
)
def test_animation_videos_that_do_not_go_together_are_invalid_and_the_server_keeps_serving(
    client, request_fields, field, words
):
    with pytest.raises(InvalidArgumentError) as raised:
        client.generate("a red circle", **_animate(replace=True, **request_fields))
    assert words in _fields(raised.value)[field]
    assert set(_fields(raised.value)) == {field}
    assert client.generate("a red circle", num_inference_steps=1, **_animate()).outputs[0].num_frames == 9


def test_with_num_frames_every_animation_video_needs_that_many_first_frames(client):
    """13 pose frames and a face video of 11 make 9 frames (the first 9 of each); a face video of 7 is refused."""
    with pytest.raises(InvalidArgumentError) as raised:
        client.generate("a red circle", num_frames=9, **_animate(13, face_frames=7))
    (field,) = _fields(raised.value)
    assert field == "input_videos[1].data"
    assert "has 7 frames; wan-animate takes the first 9 (num_frames)" in _fields(raised.value)[field]
    result = client.generate("a red circle", num_frames=9, num_inference_steps=1, **_animate(13, face_frames=11))
    assert result.outputs[0].num_frames == 9


def test_num_frames_below_the_fewest_an_animation_makes_is_refused_once(client):
    """1 frame is below the 2 Wan-Animate makes at least: one violation saying so (not a second one about its
    segments, which cannot make 1 frame either)."""
    with pytest.raises(InvalidArgumentError) as raised:
        client.generate("a red circle", num_frames=1, **_animate())
    assert [(v.field, v.description) for v in raised.value.field_violations] == [
        ("num_frames", "wan-animate makes at least 2 frames; got 1")
    ]


def test_a_model_conditioning_segments_on_5_frames_needs_6_and_counts_its_segments_by_8_new_frames(client):
    """Segments of 13 frames that start on the last 5 of the one before add 8 frames each: 17 frames take 2
    segments; 5 frames make no segment, whether the pose video has them or num_frames asks for them."""
    started, steps, result = _streamed(list(client.stream("a red circle", **_animate(17, model="wan-animate-prev5"))))
    assert started.total_steps == len(steps) == 4 and result.outputs[0].num_frames == 17
    with pytest.raises(InvalidArgumentError) as short:
        client.generate("a red circle", **_animate(5, model="wan-animate-prev5"))
    assert "send 6 frames or more" in _fields(short.value)["input_videos[0].data"]
    with pytest.raises(InvalidArgumentError) as asked:
        client.generate("a red circle", num_frames=5, **_animate(9, model="wan-animate-prev5"))
    assert "ask for 6" in _fields(asked.value)["num_frames"]
    assert client.generate("a red circle", num_frames=6, **_animate(9, model="wan-animate-prev5")).outputs


#: An LTX-2 in-context request; its reference video's frames are 32x32, the output's size.
IN_CONTEXT = {"model": "ltx2-ic", "seed": 3, "fps": 16, "num_inference_steps": 2, "output_format": "png_frames"}


def _reference(frames: list) -> list[InputVideo]:
    return [InputVideo.from_frames(frames, "reference")]


def _frames(result) -> list[str]:
    return [output.sha256 for output in result.outputs]


def test_the_in_context_reference_video_is_the_pipelines_reference_condition():
    """The engine's video is the pipeline's own with the reference video as its reference condition, frame
    for frame: not dropped, not taken as a first-frame image or keyframe condition."""
    frames = video_frames((32, 32), 9)
    pipeline = build_in_context()
    call = {**LTX2_VIDEO["call_defaults"], **_in_context_call(frames)}
    with torch.no_grad():
        video = pipeline(**call, generator=torch.Generator().manual_seed(3), output_type="np").frames[0]
    model = model_from_pipeline("ltx2-ic", pipeline, torch.device("cpu"), LTX2_VIDEO)
    with BackgroundServer(AsyncEngine({"ltx2-ic": model}, "ltx2-ic", Limits(), "cpu")) as server:
        with Client(server.address, timeout=120) as client:
            result = client.generate("a red circle", input_videos=_reference(frames), **IN_CONTEXT)
    made = np.stack([np.asarray(output.image) for output in result.outputs])
    np.testing.assert_array_equal(made, to_uint8(video))


def _in_context_call(frames: list) -> dict:
    """The in-context pipeline's arguments for ``IN_CONTEXT`` with ``frames`` as its reference, written out."""
    return {
        "prompt": ["a red circle"],
        "negative_prompt": [""],
        "width": 32,
        "height": 32,
        "num_frames": len(frames),
        "num_inference_steps": 2,
        "guidance_scale": 3.0,
        "frame_rate": 16,
        "stg_scale": 0.0,
        "audio_stg_scale": 0.0,
        "modality_scale": 1.0,
        "audio_modality_scale": 1.0,
        "reference_conditions": [LTX2ReferenceCondition(frames=frames, strength=1.0)],
    }


def test_the_in_context_frames_follow_the_reference_video(client):
    """The output has the reference's frames cut to 8k + 1 (13 give 9, 17 give 17), or its first
    ``num_frames``: 9 of 17 give what a reference of those 9 frames gives."""
    frames = video_frames((32, 32), 17)
    cut = client.generate("a red circle", input_videos=_reference(frames[:13]), **IN_CONTEXT)
    whole = client.generate("a red circle", input_videos=_reference(frames), **IN_CONTEXT)
    first = client.generate("a red circle", input_videos=_reference(frames), num_frames=9, **IN_CONTEXT)
    nine = client.generate("a red circle", input_videos=_reference(frames[:9]), **IN_CONTEXT)
    assert (len(cut.outputs), len(whole.outputs)) == (9, 17)
    assert _frames(first) == _frames(nine) == _frames(cut)


def test_every_frame_of_the_in_context_reference_steers_the_video(client):
    """A reference whose square moves and one that holds its first frame give other videos: the pipeline
    gets the reference as a video, not its first frame alone."""
    frames = video_frames((32, 32), 9)
    moving = client.generate("a red circle", input_videos=_reference(frames), **IN_CONTEXT)
    still = client.generate("a red circle", input_videos=_reference([frames[0]] * 9), **IN_CONTEXT)
    assert _frames(moving) != _frames(still)


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"input_videos": []}, {"input_videos"}),
        # A video of another role: the reference is missing and the role is not one the model takes.
        ({"input_videos": [input_video("video", (32, 32), 9)]}, {"input_videos", "input_videos[0].role"}),
        ({"input_videos": _reference(video_frames((32, 32), 9)), "num_frames": 17}, {"num_frames"}),
    ],
    ids=["no reference", "another role", "more frames than the reference"],
)
def test_a_bad_in_context_reference_is_invalid_naming_the_field_and_the_server_still_serves(client, fields, named):
    with pytest.raises(InvalidArgumentError) as raised:
        client.generate("a red circle", **{**IN_CONTEXT, **fields})
    assert set(_fields(raised.value)) == named, raised.value
    good = client.generate("a red circle", input_videos=_reference(video_frames((32, 32), 9)), **IN_CONTEXT)
    assert len(good.outputs) == 9


def test_an_in_context_attention_mask_reaches_every_block_with_and_without_cache(client):
    """A model's conditioning_attention_strength below 1 makes the pipeline pass a video self-attention mask
    over the noisy and reference tokens: it changes the video, threshold 0 gives it bit for bit and
    threshold 1 caches every step after the warm-up."""
    request = {**IN_CONTEXT, "input_videos": _reference(video_frames((32, 32), 9))}
    masked = {**request, "model": "ltx2-ic-masked"}
    plain = client.generate("a red circle", **masked)
    never = client.generate("a red circle", **masked, cache=NEVER_CACHE)
    always = client.generate("a red circle", **masked, cache=ALWAYS_CACHE)
    unmasked = client.generate("a red circle", **request)
    assert _frames(plain) == _frames(never) != _frames(unmasked)
    assert always.cache_stats.cached_steps == request["num_inference_steps"] - 1
    assert _frames(always) != _frames(plain)


#: A request to the tiny DFR pass (three sigmas).
DFR_REQUEST = {"model": "ltx2-dfr", "seed": 3, "fps": 16, "output_format": "png_frames"}


def test_a_dfr_pass_reports_and_caches_the_steps_of_its_sigma_schedule(client):
    """The tiny DFR model's schedule has three sigmas: ListModels' default steps, Started's total and the Step
    events count them (not the family's 8, nor a request's), the cache warms up on the first and caches the
    other two, and a request that sends those three steps gets the video of one that sends none."""
    (info,) = [m for m in client.list_models().models if m.name == "ltx2-dfr"]
    started, steps, cached = _streamed(list(client.stream("a red circle", cache=ALWAYS_CACHE, **DFR_REQUEST)))
    plain = client.generate("a red circle", **DFR_REQUEST)
    explicit = client.generate("a red circle", num_inference_steps=3, **DFR_REQUEST)
    assert info.default_steps == len(DFR_SIGMAS) == 3 and info.refuses_guidance_scale
    assert started.total_steps == 3 and [(s.step, s.total_steps) for s in steps] == [(0, 3), (1, 3), (2, 3)]
    assert (cached.cache_stats.computed_steps, cached.cache_stats.cached_steps) == (1, 2)
    assert _frames(explicit) == _frames(plain) != _frames(cached)


@pytest.mark.parametrize("steps", [2, 8])
def test_a_dfr_step_count_off_its_schedule_is_invalid_and_the_server_still_serves(client, steps):
    with pytest.raises(InvalidArgumentError) as raised:
        client.generate("a red circle", num_inference_steps=steps, **DFR_REQUEST)
    assert _fields(raised.value).keys() == {"num_inference_steps"}
    assert "sigma schedule of 3 steps" in _fields(raised.value)["num_inference_steps"]
    assert len(client.generate("a red circle", **DFR_REQUEST).outputs) == 9


def test_a_dfr_pass_is_the_pipelines_own_call_with_its_sigmas_and_keyframe_slots(client):
    """The engine's video is the pipeline's own call at the request's size, frames and frame rate with the
    model's sigmas and the pipeline's default keyframe slots, frame for frame (no step count, no guidance)."""
    pipeline = build_dfr()
    with torch.no_grad():
        video = pipeline(
            prompt=["a red circle"],
            width=32,
            height=32,
            num_frames=9,
            frame_rate=16,
            **DFR["call_defaults"],
            generator=torch.Generator().manual_seed(3),
            output_type="np",
        ).frames[0]
    result = client.generate("a red circle", **DFR_REQUEST)
    made = np.stack([np.asarray(output.image) for output in result.outputs])
    np.testing.assert_array_equal(made, to_uint8(video))


def test_a_dfr_model_whose_steps_or_transformer_do_not_fit_its_pass_fails_to_load():
    """Without sigmas of its own a model runs diffusers' 8 distilled ones; a model default steps other than
    its schedule's, sigmas that are no list, a model default guidance_scale (it takes none), and a
    transformer without the keyframe-slot embedding (every call would fail) stop loading naming them."""
    cpu, pipeline = torch.device("cpu"), build_dfr()
    assert model_from_pipeline("dfr", pipeline, cpu, {**DFR, "call_defaults": {}}).default_steps == 8
    # The warm-up runs (and counts) the schedule's steps, not the two of other models' warm-ups.
    assert warmup_spec(model_from_pipeline("dfr", pipeline, cpu, DFR)).num_inference_steps == 3
    with pytest.raises(ModelLoadError, match="sigma schedule of 3 steps and takes no step count; steps is 8"):
        model_from_pipeline("dfr", pipeline, cpu, {**DFR, "steps": 8})
    with pytest.raises(ModelLoadError, match="sigmas must be a non-empty list of numbers"):
        model_from_pipeline("dfr", pipeline, cpu, {**DFR, "call_defaults": {"sigmas": []}})
    # A guidance scale it takes none of would be dropped from every call while ListModels refuses it.
    with pytest.raises(ModelLoadError, match="ltx2-dfr takes no guidance scale; guidance_scale is 3.0"):
        model_from_pipeline("dfr", pipeline, cpu, {**DFR, "guidance_scale": 3.0})
    config = dict(pipeline.transformer.config)
    config["use_keyframes_abs_pos_embedding"] = False
    pipeline.transformer = type(pipeline.transformer).from_config(config).eval()
    with pytest.raises(ModelLoadError, match="model 'dfr': a DFR pass generates keyframe slots"):
        model_from_pipeline("dfr", pipeline, cpu, DFR)


def test_an_in_context_model_directory_serves_an_ic_lora_as_a_request_adapter(tmp_path):
    """``serve --model ic=DIR --lora pose=FILE:ic``: the in-context pipeline loads from its directory (its
    ``ditserve.json`` the tiny defaults) and a request that picks the IC-LoRA gets another video than one
    without it, each with the reference video."""
    import json

    from diffusers import LTX2InContextPipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    from engine_service.bootstrap import ModelSource, build_engine
    from engine_service.models.lora import LoraSource

    build_in_context().save_pretrained(tmp_path / "ic")
    (tmp_path / "ic" / "ditserve.json").write_text(json.dumps(LTX2_VIDEO))
    transformer = build_in_context().transformer
    torch.manual_seed(0)  # a LoRA whose lora_B is not zero, so that it changes the video
    transformer.add_adapter(LoraConfig(r=2, lora_alpha=2, init_lora_weights=False, target_modules=["to_q", "to_v"]))
    LTX2InContextPipeline.save_lora_weights(
        tmp_path / "pose", transformer_lora_layers=get_peft_model_state_dict(transformer)
    )
    engine = build_engine(
        [ModelSource("ic", str(tmp_path / "ic"))], device="cpu", loras=[LoraSource("pose", str(tmp_path / "pose"))]
    )
    request = {**IN_CONTEXT, "model": "ic", "input_videos": _reference(video_frames((32, 32), 9))}
    with BackgroundServer(engine) as server, Client(server.address, timeout=120) as client:
        plain = client.generate("a red circle", **request)
        steered = client.generate("a red circle", loras=[("pose", 1.0)], **request)
        (info,) = client.list_models().models
    assert (info.pipeline_class, info.video_roles, info.frames_from_video) == (
        "LTX2InContextPipeline",
        ("reference",),
        "reference",
    )
    assert len(plain.outputs) == len(steered.outputs) == 9 and _frames(plain) != _frames(steered)


#: An EasyAnimate Control request; its control video's frames are 32x32, the output's size.
EASYANIMATE_CONTROL = {
    "model": "easyanimate-control",
    "seed": 3,
    "num_inference_steps": 2,
    "output_format": "png_frames",
}


def _control(frames: list) -> list[InputVideo]:
    return [InputVideo.from_frames(frames, "control")]


def _control_call(frames: list) -> dict:
    """The control pipeline's arguments for ``EASYANIMATE_CONTROL`` with ``frames`` as its control video,
    written out: (1, 3, F, H, W) in [0, 1]."""
    video = torch.from_numpy(np.stack([np.asarray(frame, dtype=np.float32) / 255.0 for frame in frames]))
    return {
        "prompt": ["a red circle"],
        "negative_prompt": [""],
        "width": 32,
        "height": 32,
        "num_frames": len(frames),
        "num_inference_steps": 2,
        "guidance_scale": 5.0,
        "control_video": video.permute(3, 0, 1, 2)[None],
    }


def test_easyanimate_control_fails_as_diffusers_ships_it_and_serves_its_own_call_repaired():
    """diffusers 0.42.1's ``__call__`` passes ``encode_prompt`` an argument it does not take (TypeError on
    every call) and decodes with a ``decode_latents`` the class lacks. The served instance runs: the engine's
    video is the pipeline's own call with the control video, and its decode is ``EasyAnimatePipeline``'s,
    ``vae.decode(latents / scaling_factor)``."""
    frames = video_frames((32, 32), 5)
    pipeline = build_easyanimate(EasyAnimateControlPipeline)
    with pytest.raises(TypeError, match="text_encoder_index"), torch.no_grad():
        pipeline(**_control_call(frames), generator=torch.Generator().manual_seed(3), output_type="latent")
    model = model_from_pipeline("easyanimate-control", pipeline, torch.device("cpu"), EASYANIMATE)
    with torch.no_grad():
        video = pipeline(**_control_call(frames), generator=torch.Generator().manual_seed(3), output_type="np")
        latents = pipeline(**_control_call(frames), generator=torch.Generator().manual_seed(3), output_type="latent")
        decoded = pipeline.vae.decode(latents.frames / pipeline.vae.config.scaling_factor, return_dict=False)[0]
    np.testing.assert_array_equal(video.frames, pipeline.video_processor.postprocess_video(decoded, output_type="np"))
    engine = AsyncEngine({"easyanimate-control": model}, "easyanimate-control", Limits(), "cpu")
    with BackgroundServer(engine) as server, Client(server.address, timeout=120) as client:
        result = client.generate("a red circle", input_videos=_control(frames), **EASYANIMATE_CONTROL)
    made = np.stack([np.asarray(output.image) for output in result.outputs])
    np.testing.assert_array_equal(made, to_uint8(video.frames[0]))


def test_easyanimate_control_follows_its_control_video_frame_for_frame(client):
    """The output has the control video's frames cut to 4k + 1 (7 give 5, 9 give 9), or its first
    ``num_frames`` (5 of 9 give what those 5 give); the same frames played backwards give another video:
    each control frame steers its own frames, not the first alone."""
    frames = video_frames((32, 32), 9)
    cut = client.generate("a red circle", input_videos=_control(frames[:7]), **EASYANIMATE_CONTROL)
    whole = client.generate("a red circle", input_videos=_control(frames), **EASYANIMATE_CONTROL)
    first = client.generate("a red circle", input_videos=_control(frames), num_frames=5, **EASYANIMATE_CONTROL)
    backwards = client.generate("a red circle", input_videos=_control(frames[::-1]), **EASYANIMATE_CONTROL)
    assert (len(cut.outputs), len(whole.outputs)) == (5, 9)
    assert _frames(first) == _frames(cut)
    assert _frames(backwards) != _frames(whole)


@pytest.mark.parametrize(
    ("pipeline_class", "channels", "message"),
    [
        (EasyAnimateControlPipeline, 8, "transformer of 8 input channels is not served"),
        (EasyAnimateInpaintPipeline, 4, "transformer of 4 input channels"),
    ],
    ids=["control without reference channels", "inpainting without mask channels"],
)
def test_easyanimate_transformers_that_fail_every_call_fail_to_load_naming_why(pipeline_class, channels, message):
    """A control transformer without reference-image channels (the pipeline always joins them) and an
    inpainting transformer of the noise's channels only (diffusers 0.42.1's loop then calls
    ``torch.tensor([timestep], noise)``) fail on every call: loading refuses them naming why."""
    pipeline = build_easyanimate(pipeline_class, in_channels=channels)
    with pytest.raises(ModelLoadError, match=message):
        model_from_pipeline("easyanimate", pipeline, torch.device("cpu"), EASYANIMATE)


def _reference_tensor(picture: Image.Image) -> torch.Tensor:
    """A reference image as the control pipeline's ``ref_image``: a one-frame video (1, 3, 1, H, W) in [0, 1]."""
    return torch.from_numpy(np.asarray(picture, dtype=np.float32) / 255.0).permute(2, 0, 1)[None, :, None]


def test_easyanimate_control_takes_a_reference_image_and_refuses_one_it_would_drop(client):
    """The ``reference`` image is the pipeline's ``ref_image``: the engine's video is the pipeline's own call
    with it. The pipeline reads it only when more than one latent frame follows (its own one-frame calls
    with and without it are alike), so a one-frame request with a reference is INVALID_ARGUMENT naming the
    image's role, and the server still serves it without one."""
    frames = video_frames((32, 32), 5)
    reference = input_image("reference", (32, 32))
    picture = Image.open(io.BytesIO(reference.data)).convert("RGB")
    pipeline = build_easyanimate(EasyAnimateControlPipeline)
    model_from_pipeline("easyanimate-control", pipeline, torch.device("cpu"), EASYANIMATE)  # repaired
    ref_image = _reference_tensor(picture)
    with torch.no_grad():
        video = pipeline(
            **_control_call(frames), ref_image=ref_image, generator=torch.Generator().manual_seed(3), output_type="np"
        ).frames[0]
        single = [
            pipeline(**_control_call(frames[:1]), generator=torch.Generator().manual_seed(3), output_type="np", **ref)
            for ref in ({}, {"ref_image": ref_image})
        ]
    np.testing.assert_array_equal(single[0].frames, single[1].frames)
    request = {**EASYANIMATE_CONTROL, "input_images": [reference]}
    served = client.generate("a red circle", input_videos=_control(frames), **request)
    np.testing.assert_array_equal(np.stack([np.asarray(output.image) for output in served.outputs]), to_uint8(video))
    with pytest.raises(InvalidArgumentError) as raised:
        client.generate("a red circle", input_videos=_control(frames[:1]), **request)
    assert set(_fields(raised.value)) == {"input_images[0].role"}, raised.value
    with pytest.raises(InvalidArgumentError) as raised:  # one frame of a longer control video
        client.generate("a red circle", input_videos=_control(frames), num_frames=1, **request)
    assert set(_fields(raised.value)) == {"input_images[0].role"}, raised.value
    alone = client.generate("a red circle", input_videos=_control(frames[:1]), **EASYANIMATE_CONTROL)
    assert len(alone.outputs) == 1


@pytest.fixture(scope="module")
def sana_wm():
    """A Sana-WM server (its own: every request carries a camera trajectory) and its tiny case."""
    case = next(c for c in all_cases() if c.name == "sana-wm")
    model = model_from_pipeline(case.name, case.build(), torch.device("cpu"), case.defaults)
    with BackgroundServer(AsyncEngine({case.name: model}, case.name, Limits(), "cpu")) as server:
        with Client(server.address, timeout=120) as client:
            yield server, client, case


def _wm_request(case, **fields) -> dict:
    return {"input_images": [input_image("image", (32, 32))], "seed": 3, "output_format": "png_frames", **fields}


def test_sana_wm_follows_the_trajectory_as_action_or_as_the_poses_it_rolls_out(sana_wm):
    """The action string and the poses diffusers rolls it out to give the same frames bit for bit (the poses
    reach the pipeline as sent); another trajectory, and the same with other intrinsics, give other frames."""
    from diffusers.pipelines.sana_wm.cam_utils import action_string_to_c2w

    _, client, case = sana_wm
    lens = case.camera.intrinsics
    poses = action_string_to_c2w(case.camera.action)
    assert len(poses) == 9  # w-8: the start pose and 8 moves
    by_action = client.generate("a red circle", **_wm_request(case, camera=case.camera))
    by_poses = client.generate("a red circle", **_wm_request(case, camera=CameraTrajectory(lens, c2w=poses)))
    turned = client.generate("a red circle", **_wm_request(case, camera=case.other_camera))
    wider = CameraTrajectory((8.0, 8.0, 16.0, 16.0), action=case.camera.action)
    widened = client.generate("a red circle", **_wm_request(case, camera=wider))
    frames = [[o.sha256 for o in result.outputs] for result in (by_action, by_poses, turned, widened)]
    assert len(frames[0]) == 9
    assert frames[0] == frames[1]
    assert frames[2] != frames[0] and frames[3] != frames[0] and frames[2] != frames[3]


_IDENTITY = [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
_SCALED = [[2.0, 0.0, 0.0, 0.0], [0.0, 2.0, 0.0, 0.0], [0.0, 0.0, 2.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
_PROJECTIVE = [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 1.0, 1.0]]
_MIRRORED = [[-1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
_LENS = (16.0, 16.0, 16.0, 16.0)


#: Trajectories Sana-WM refuses (for 9 frames), the field each names and a part of the reason.
_BAD_CAMERAS = [
    (CameraTrajectory(_LENS), "camera", "give an action string"),
    (CameraTrajectory(_LENS, action=" , "), "camera.action", "is not '<keys>-<frames>'"),
    (CameraTrajectory(_LENS, action="w8"), "camera.action", "is not '<keys>-<frames>'"),
    (CameraTrajectory(_LENS, action="w-4,,w-4"), "camera.action", "segment '' is not"),
    (CameraTrajectory(_LENS, action="w-0,w-8"), "camera.action", "positive whole number"),
    (CameraTrajectory(_LENS, action="w-x"), "camera.action", "positive whole number"),
    (CameraTrajectory(_LENS, action="wq-8"), "camera.action", "holds 'q'"),
    (CameraTrajectory(_LENS, action="w-16"), "camera.action", "over 17 frames; the video has 9"),
    (CameraTrajectory(_LENS, action="w-" + "9" * 40), "camera.action", "the video has 9"),
    (CameraTrajectory(_LENS, c2w=[_IDENTITY] * 10), "camera.c2w", "holds 10 poses; the video has 9"),
    (CameraTrajectory(_LENS, c2w=[1.0] * 17), "camera.c2w", "holds 17 numbers"),
    (CameraTrajectory(_LENS, c2w=[_IDENTITY] * 8 + [[[float("nan")] * 4] * 4]), "camera.c2w", "finite"),
    (CameraTrajectory(_LENS, c2w=[_IDENTITY] * 8 + [_SCALED]), "camera.c2w", "pose 8 has a rotation part"),
    (CameraTrajectory(_LENS, c2w=[_MIRRORED] + [_IDENTITY] * 8), "camera.c2w", "pose 0 has a rotation part"),
    (CameraTrajectory(_LENS, c2w=[_IDENTITY] * 8 + [_PROJECTIVE]), "camera.c2w", "row 0 0 0 1"),
    (CameraTrajectory((16.0, 16.0, 16.0), action="w-8"), "camera.intrinsics", "got 3 numbers"),
    (CameraTrajectory((16.0, float("inf"), 16.0, 16.0), action="w-8"), "camera.intrinsics", "4 finite"),
    (CameraTrajectory((16.0, -1.0, 16.0, 16.0), action="w-8"), "camera.intrinsics", "must be positive"),
]


def test_a_bad_camera_trajectory_is_invalid_naming_its_field_and_the_server_keeps_serving(sana_wm):
    _, client, case = sana_wm
    for camera, field, why in _BAD_CAMERAS:
        with pytest.raises(InvalidArgumentError) as refused:
            client.generate("a red circle", **_wm_request(case, camera=camera))
        assert _fields(refused.value).keys() == {field}, camera
        assert why in _fields(refused.value)[field], camera
    assert len(client.generate("a red circle", **_wm_request(case, camera=case.camera)).outputs) == 9


def test_a_sana_wm_frame_count_off_the_rule_is_refused_on_num_frames_alone(sana_wm):
    """The trajectory's count is checked against a frame count the model makes only."""
    _, client, case = sana_wm
    with pytest.raises(InvalidArgumentError) as refused:
        client.generate("a red circle", **_wm_request(case, camera=case.camera, num_frames=10))
    assert set(_fields(refused.value)) == {"num_frames"}
    longer = CameraTrajectory(case.camera.intrinsics, action="w-8,jw-8")
    assert len(client.generate("a red circle", **_wm_request(case, camera=longer, num_frames=17)).outputs) == 17


_ACTION_TEXT = st.text(alphabet="wasdijklWKnoe q-,\uff0c 0129\t\u00b2\u0663", max_size=14)
#: Segments of the grammar's edge cases: keys in any case, "none", none at all, unknown keys, a dash among
#: the keys; counts of zero, a superscript (a digit to str.isdigit that int() cannot read), an Arabic-Indic
#: digit (one int() reads), letters, nothing.
_SEGMENTS = st.tuples(
    st.sampled_from(["w", "jW", "", "none", "NONE", "sd", "q", "w-a", " i k "]),
    st.one_of(st.integers(0, 30).map(str), st.sampled_from(["\u00b2", "\u0663", "1\u0663", "x", "", "-1"])),
)


@hypothesis.settings(max_examples=400, deadline=None)
@hypothesis.given(
    st.one_of(
        _ACTION_TEXT,
        st.tuples(st.lists(_SEGMENTS, min_size=1, max_size=4), st.sampled_from([",", "\uff0c", " , "])).map(
            lambda drawn: drawn[1].join(f"{keys}-{count}" for keys, count in drawn[0])
        ),
    )
)
def test_the_action_parser_accepts_exactly_the_strings_diffusers_does_and_counts_their_frames(action):
    """The family's parser (which never rolls poses out) against diffusers' own: the same strings refused
    (both raise ValueError), the same frame count for the others."""
    from diffusers.pipelines.sana_wm.cam_utils import _parse_action_string

    from engine_service.models.families.sana_video import action_frames

    try:
        expected = len(_parse_action_string(action)) + 1
    except ValueError:
        expected = None
    try:
        counted = action_frames(action)
    except ValueError:
        counted = None
    assert counted == expected


def test_list_models_and_the_models_command_say_sana_wm_needs_a_camera_trajectory(sana_wm, capsys):
    server, client, _ = sana_wm
    (info,) = client.list_models().models
    assert info.requires_camera and info.required_roles == ("image",)
    assert cli.main(["models", "--target", server.address]) == 0
    (row,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("* sana-wm")]
    assert "image, camera trajectory" in row


def test_generate_sends_the_camera_action_or_the_poses_file(sana_wm, tmp_path):
    """--camera-action and --camera-poses (with the file's intrinsics, or --camera-intrinsics) give the
    frames the SDK's requests give; both at once is a usage error."""
    from diffusers.pipelines.sana_wm.cam_utils import action_string_to_c2w

    server, client, case = sana_wm
    picture = tmp_path / "first.png"
    picture.write_bytes(input_image("image", (32, 32)).data)
    expected = [o.sha256 for o in client.generate("a red circle", **_wm_request(case, camera=case.camera)).outputs]
    poses = tmp_path / "poses.json"
    lens = list(case.camera.intrinsics)
    poses.write_text(json.dumps({"c2w": action_string_to_c2w("w-8").tolist(), "intrinsics": lens}))
    base = ["generate", "a red circle", "--target", server.address, "--input-image", str(picture), "--seed", "3"]
    base += ["--format", "png_frames"]
    lens_flag = ["--camera-intrinsics", ",".join(map(str, lens))]
    runs = {
        "action": ["--camera-action", "w-8", *lens_flag],
        "poses": ["--camera-poses", str(poses)],
        "list": ["--camera-poses", str(tmp_path / "list.json"), *lens_flag],
    }
    (tmp_path / "list.json").write_text(json.dumps(action_string_to_c2w("w-8").tolist()))
    for name, flags in runs.items():
        out = tmp_path / name
        assert cli.main([*base, *flags, "--out", str(out)]) == 0
        written = sorted(out.iterdir(), key=lambda f: int(f.stem.split("-")[-1]))
        assert [hashlib.sha256(f.read_bytes()).hexdigest() for f in written] == expected, name
    assert cli.main([*base, "--camera-action", "w-8", "--camera-poses", str(poses), "--out", str(tmp_path)]) == 2


#: An LTX-2 HDR request; its reference video's frames are 32x32, the output's size.
HDR = {"model": "ltx2-hdr", "seed": 3, "fps": 16, "num_inference_steps": 2}


def _diffusers_sdr(linear: np.ndarray) -> np.ndarray:
    """diffusers' 8-bit SDR frames of linear HDR light, written out as
    ``diffusers.pipelines.ltx2.export_utils.encode_hdr_tensor_to_mp4`` computes them with its default tone
    map: clip to [0, 1], the sRGB (Rec. 709) transfer function, then ``(sdr * 255 + 0.5).astype(uint8)``."""
    mapped = np.clip(linear, 0.0, 1.0)
    sdr = np.where(mapped <= 0.0031308, mapped * 12.92, 1.055 * np.power(mapped, 1.0 / 2.4) - 0.055)
    return (sdr * 255.0 + 0.5).astype(np.uint8)


def _read_exr(data: bytes) -> np.ndarray:
    import OpenEXR

    with OpenEXR.File(io.BytesIO(data)) as image:
        return image.channels()["RGB"].pixels


def test_hdr_exr_frames_hold_the_pipelines_linear_light_and_mp4_and_png_frames_its_sdr_rendering(client):
    """OpenEXR frames are the pipeline's own linear HDR video (its reference video as its reference
    condition) in half floats, values above 1.0 kept; PNG frames are diffusers' SDR rendering of it, and
    the MP4 encodes those very frames."""
    from diffusers.pipelines.ltx2.pipeline_ltx2_hdr_lora import LTX2HDRReferenceCondition

    frames = video_frames((32, 32), 9)
    call = {
        "prompt": ["a red circle"],
        "negative_prompt": [""],
        "width": 32,
        "height": 32,
        "num_frames": 9,
        "num_inference_steps": 2,
        "guidance_scale": 1.0,
        "frame_rate": 16,
        "stg_scale": 0.0,
        "modality_scale": 1.0,
        "reference_conditions": [LTX2HDRReferenceCondition(frames=frames, strength=1.0)],
        **LTX2_VIDEO["call_defaults"],
    }
    with torch.no_grad():
        video = build_hdr()(**call, generator=torch.Generator().manual_seed(3), output_type="np").frames[0]
    reference = _reference(frames)
    exr = client.generate("a red circle", input_videos=reference, output_format="exr_frames", **HDR)
    png = client.generate("a red circle", input_videos=reference, output_format="png_frames", **HDR)
    (mp4,) = client.generate("a red circle", input_videos=reference, **HDR).outputs
    assert [(o.mime_type, o.extension, o.width, o.height, o.num_frames) for o in exr.outputs] == [
        ("image/x-exr", "exr", 32, 32, 1)
    ] * 9
    linear = np.stack([_read_exr(output.data) for output in exr.outputs])
    assert linear.dtype == np.float16 and (linear > 1.0).mean() > 0.05  # light beyond SDR white survives
    np.testing.assert_array_equal(linear, video.astype(np.float16))
    shown = np.stack([np.asarray(output.image) for output in png.outputs])
    np.testing.assert_array_equal(shown, _diffusers_sdr(video))
    assert (mp4.mime_type, mp4.num_frames) == ("video/mp4", 9)
    assert mp4.data == encode_mp4(_diffusers_sdr(video), 16, 90).data
    with pytest.raises(ValueError, match="OpenEXR"):
        exr.outputs[0].image  # noqa: B018 - Pillow cannot read it: the SDK says how to


@pytest.mark.parametrize("model", ["ltx2-ic", "dit"])
def test_exr_frames_from_a_model_without_hdr_output_are_invalid_and_the_server_still_serves(client, model):
    """OpenEXR frames are for models that list ``outputs_hdr``: an 8-bit video model and an image model
    refuse them naming ``output_format``; the HDR model lists it and serves PNG frames as before."""
    request = {"model": model, "seed": 3, "output_format": "exr_frames"}
    if model == "ltx2-ic":
        request.update(IN_CONTEXT, output_format="exr_frames", input_videos=_reference(video_frames((32, 32), 9)))
    with pytest.raises(InvalidArgumentError) as raised:
        client.generate("1" if model == "dit" else "a red circle", **request)
    assert set(_fields(raised.value)) == {"output_format"}, raised.value
    infos = {info.name: info.outputs_hdr for info in client.list_models().models}
    assert infos["ltx2-hdr"] and not infos["ltx2-ic"] and not infos["dit"]
    served = client.generate("a red circle", input_videos=_reference(video_frames((32, 32), 9)), **HDR)
    assert served.outputs[0].mime_type == "video/mp4"


def test_generate_writes_one_exr_file_per_frame_of_an_hdr_video(server, tmp_path):
    """``ditserve generate --format exr-frames`` (or ``exr_frames``) writes the frames as OpenEXR files, linear
    light kept."""
    reference = tmp_path / "reference.png"
    reference.write_bytes(_reference(video_frames((32, 32), 9))[0].data)
    command = ["generate", "a red circle", "--target", server.address, "--model", "ltx2-hdr", "--seed", "3"]
    command += ["--steps", "2", "--fps", "16", "--video", f"reference={reference}", "--format", "exr-frames"]
    assert cli.main([*command, "--out", str(tmp_path / "out")]) == 0
    files = sorted((tmp_path / "out").iterdir())
    assert [f.suffix for f in files] == [".exr"] * 9
    assert any((_read_exr(f.read_bytes()) > 1.0).any() for f in files)
