"""Families whose pipelines differ from plain text-to-image, through a batching engine and the SDK.

DiT is class-conditional (the prompt names a class), renders one size and has no
step callback; aMUSEd takes a single random generator, so its jobs never batch;
HunyuanVideo 1.5 has no step callback either (the engine follows its scheduler's
steps, which cancellation stops) and its image-to-video pipeline renders its
resolution buckets only; its VAE cannot decode a batch, so the engine decodes video by video.
A Motif-Video checkpoint with decoder layers fails to load (the cache cannot follow them).
Kandinsky 5's image pipelines render only their resolutions list, and its jobs run alone (a
batch's prompts are padded and the transformer attends to the padding); its editor and
Kandinsky 6 take one input image for several outputs. JoyImage Edit renders only its ~1 MP
bucket sizes. Helios samples its video chunk by chunk, each chunk a whole denoising loop: progress
counts the steps of every chunk, the cache restarts at each chunk, and cancellation stops it at a step
of any chunk. AnyFlow-FAR also samples chunk by chunk and, between chunks, calls its transformer once more
to fill the attention key-value cache the next chunk attends to: the block cache computes that call in full.
SkyReels-V2's diffusion forcing steps one scheduler copy per latent frame and never its own scheduler: each
step still counts once for the cache, and progress reports the noisiest frame's timestep.
"""

from __future__ import annotations

import asyncio
import time

import pytest
import torch
from diffusers import (
    HunyuanVideo15ImageToVideoPipeline,
    Kandinsky5I2IPipeline,
    Kandinsky5T2IPipeline,
    SkyReelsV2DiffusionForcingImageToVideoPipeline,
)
from tiny_families import input_image
from tiny_families.amused import build_tiny_amused
from tiny_families.anyflow import FAR_VIDEO, build_tiny_anyflow_far
from tiny_families.dit import build_tiny_dit
from tiny_families.helios import VIDEO as HELIOS
from tiny_families.helios import build_helios
from tiny_families.hunyuan_video15 import VIDEO, build_hunyuan_video15
from tiny_families.ideogram4 import build_tiny_ideogram4
from tiny_families.joyimage import build_tiny_joyimage_edit
from tiny_families.kandinsky5 import build_kandinsky5
from tiny_families.kandinsky6 import build_kandinsky6
from tiny_families.motif_video import build_tiny_motif_video
from tiny_families.skyreels_v2 import VIDEO as SKYREELS
from tiny_families.skyreels_v2 import build_skyreels_v2_df

from client_sdk import AsyncClient, CachePolicy, Client, Completed, Started, Step
from client_sdk.errors import InvalidArgumentError
from engine_service.config import BatchingConfig, Limits
from engine_service.errors import ModelLoadError
from engine_service.models import model_from_pipeline
from engine_service.runtime.engine import AsyncEngine
from engine_service.server.background import BackgroundServer

K5 = {"steps": 2, "call_defaults": {"max_sequence_length": 16}}
IDEOGRAM4 = {"width": 32, "height": 32, "steps": 2, "call_defaults": {"max_sequence_length": 64}}
K6 = {"width": 16, "height": 16, "frames": 5, "steps": 2, "call_defaults": {"max_sequence_length": 512}}


@pytest.fixture(scope="module")
def server():
    cpu = torch.device("cpu")
    models = {
        "dit": model_from_pipeline("dit", build_tiny_dit(), cpu, {"steps": 2}),
        "amused": model_from_pipeline("amused", build_tiny_amused(), cpu, {"width": 8, "height": 8, "steps": 3}),
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
        "ideogram4": model_from_pipeline("ideogram4", build_tiny_ideogram4(), cpu, IDEOGRAM4),
        "helios": model_from_pipeline("helios", build_helios(), cpu, HELIOS),
        "anyflow-far": model_from_pipeline("anyflow-far", build_tiny_anyflow_far(), cpu, FAR_VIDEO),
        "df": model_from_pipeline("df", build_skyreels_v2_df(), cpu, SKYREELS),
        "df-i2v": model_from_pipeline(
            "df-i2v", build_skyreels_v2_df(SkyReelsV2DiffusionForcingImageToVideoPipeline), cpu, SKYREELS
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


ALWAYS = CachePolicy(
    preset="dbcache", residual_diff_threshold=1.0, max_warmup_steps=1, warmup_interval=1, max_continuous_cached_steps=-1
)


def test_a_chunked_video_reports_every_step_of_every_chunk_and_the_cache_restarts_per_chunk(client):
    """9 frames in chunks of 5: two denoising loops of 3 steps, reported as steps 0-5 of 6."""
    events = list(client.stream("a red circle", model="helios", seed=3, cache=ALWAYS))
    (started,) = [event for event in events if isinstance(event, Started)]
    steps = [event for event in events if isinstance(event, Step)]
    (result,) = [event.result for event in events if isinstance(event, Completed)]
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


def test_diffusion_forcing_counts_a_step_once_for_all_frames_and_reports_the_noisiest_frames_timestep(client):
    """5 frames: 2 latent frames, each stepped by its own scheduler copy, 4 steps with CFG (two calls each).
    With threshold 1 both branches cache every step after the first. The image-to-video pipeline keeps the
    image's latent frame ready (timestep 0): its steps report the generated frames' timesteps, as text-to-video."""
    timesteps = {}
    for model, inputs in (("df", []), ("df-i2v", [input_image("image", (16, 16))])):
        events = list(client.stream("a red circle", model=model, seed=3, cache=ALWAYS, input_images=inputs))
        steps = [event for event in events if isinstance(event, Step)]
        assert [step.step for step in steps] == [0, 1, 2, 3]
        assert [step.cached for step in steps] == [False, True, True, True]
        assert [step.cfg_cached for step in steps] == [False, True, True, True]
        timesteps[model] = [step.timestep for step in steps]
    assert timesteps["df"] == timesteps["df-i2v"] == sorted(timesteps["df"], reverse=True)
    assert min(timesteps["df"]) > 0
