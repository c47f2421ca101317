"""Every supported model family, run through the engine from a tiny offline pipeline.

Each case (tests/tiny_families) is served by its own engine on a free port and
asked through the SDK: without cache (streamed, with a preview after every step
where the family has previews), with residual threshold 0 (must give the uncached
output bit for bit) and with threshold 1 (every step after warmup is cached: all but
one per expert and those whose block input changed shape; an image-to-image pipeline
runs only the steps its strength leaves). Outputs are checked for kind and shape (the
size the input image gives, where the size follows it; sent as that size, the output is
unchanged; ListModels shows such a size as 0 x 0). Each
case must see what a request asks: the cached output, another guidance scale, and
another picture for each input role it sends (for a role sent with several pictures:
one fewer and one more) and another camera trajectory (a world model's) each change the
pixels, so that a dropped guidance scale, an ignored input image or trajectory or a cache that
never takes effect fails here. Requests the
family's rules refuse (a frame count off its rule, below its least or not made by whole chunks, a missing
required input image, a strength out of range or for a model without one, a mask of
another size than its image, a size off the family's size check or, where the size
follows the input image, another size than it gives, a guidance scale for a model that
takes none, a step count off a fixed sigma schedule, a prompt that names input images the request
does not send, a camera trajectory for a model that takes none, or for a world model none, both
forms, a malformed or short one) get INVALID_ARGUMENT naming the field, and the engine keeps
serving: the threshold-0 request comes after them (and for a video one more, in its default
format, MP4). A case may send its own prompt (OmniGen's names its reference images).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import warnings

import grpc
import imageio.v3 as iio
import pytest
import torch
from PIL import Image
from tiny_families import TinyCase, all_cases, input_image, input_video, video_frames

from client_sdk import CachePolicy, CameraTrajectory, Client, Completed, InputImage, Preview
from client_sdk._proto import engine_pb2, engine_pb2_grpc
from client_sdk.errors import InvalidArgumentError
from engine_service.config import Limits, ServerConfig
from engine_service.jobs import CameraTrajectory as JobCamera
from engine_service.jobs import JobSpec, OutputFormat
from engine_service.models import model_from_pipeline
from engine_service.models.families import FAMILIES
from engine_service.models.registry import ModelLoadError, load_local_model
from engine_service.models.spec import FamilySpec
from engine_service.quant import SpeedConfig
from engine_service.runtime.engine import AsyncEngine, warmup_specs
from engine_service.server.background import BackgroundServer

CASES = all_cases()


def family_of(case: TinyCase) -> FamilySpec:
    """The registry's family that serves the case's pipeline class."""
    return next(f for f in FAMILIES if case.pipeline_class in f.pipeline_classes)


VIDEO_CASES = [case for case in CASES if family_of(case).output_kind == "video"]
#: Longer videos than the cases' defaults, where the VAE decodes the preview's first frame from a
#: prefix of the latent frames (CogVideoX: its first frame batch; HunyuanVideo: its first temporal tile).
LONGER_VIDEOS = [("cogvideox", 17), ("cogvideox-1.5", 25), ("hunyuan-video", 25)]
NEVER_CACHE = CachePolicy(preset="dbcache", residual_diff_threshold=0.0)
ALWAYS_CACHE = CachePolicy(
    preset="dbcache", residual_diff_threshold=1.0, max_warmup_steps=1, warmup_interval=1, max_continuous_cached_steps=-1
)


def _bad_requests(
    model, images: list[InputImage], case_inputs=(), size=None, videos=(), camera=None
) -> list[tuple[dict, str]]:
    """Requests the family's rules refuse, with the field each must be refused for; ``size`` is the
    (width, height) the request renders, ``videos`` the input videos it sends, ``camera`` its camera
    trajectory."""
    family, frames = model.family, model.default_frames
    bad = []
    if family.takes_camera:
        # None, both forms, a trajectory one frame short, an action of an unknown key, a singular pose.
        identity = [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
        flat = [[0.0] * 4] * 3 + [[0.0, 0.0, 0.0, 1.0]]
        lens = camera.intrinsics
        bad.append(({"camera": None}, "camera"))
        bad.append(({"camera": CameraTrajectory(lens, action="w-1", c2w=[identity])}, "camera"))
        bad.append(({"camera": CameraTrajectory(lens, action=f"w-{frames - 2}")}, "camera.action"))
        bad.append(({"camera": CameraTrajectory(lens, action=f"q-{frames - 1}")}, "camera.action"))
        bad.append(({"camera": CameraTrajectory(lens, c2w=[identity] * (frames - 1))}, "camera.c2w"))
        bad.append(({"camera": CameraTrajectory(lens, c2w=[identity] * (frames - 1) + [flat])}, "camera.c2w"))
        bad.append(({"camera": CameraTrajectory((0.0, 1.0, 1.0, 1.0), action=f"w-{frames - 1}")}, "camera.intrinsics"))
    else:
        bad.append(({"camera": CameraTrajectory((1.0, 1.0, 0.5, 0.5), action="w-8")}, "camera"))
    if family.required_video_roles:
        bad.append(({"input_videos": [v for v in videos if v.role not in family.required_video_roles]}, "input_videos"))
    if videos:  # a second video of a role: each role is sent once
        bad.append(({"input_videos": [*videos, videos[0]]}, f"input_videos[{len(videos)}].role"))
    if not family.video_roles:
        bad.append(({"input_videos": [input_video("video", (16, 16), 1)]}, "input_videos"))
    if family.history_frames is not None:  # a continued video shorter than the frames it continues from
        index = next(i for i, v in enumerate(videos) if v.role == family.continues_video)
        short = input_video(family.continues_video, (16, 16), family.history_frames(model.call_defaults) - 1)
        bad.append(
            (
                {"input_videos": [short if i == index else v for i, v in enumerate(videos)]},
                f"input_videos[{index}].data",
            )
        )
    if family.frames_from_video:  # more frames than the video holds
        bad.append(({"num_frames": frames + family.frame_stride}, "num_frames"))
    if family.size_from_input is not None:
        # Another size than the one the input image gives.
        bad.append(({"width": size[0] + model.spatial_factor, "height": size[1]}, "width"))
        # An 8:1 input image (and mask) that gives a size beyond the engine's limits.
        side = max(model.spatial_factor, family.min_input_side)
        wide, limits = family.size_from_input(model.pipeline, 8 * side, side, model.call_defaults), Limits()
        if wide[0] > limits.max_width or wide[0] * wide[1] > limits.max_pixels:
            long = [input_image(i.role, (8 * side, side)) if i.role in ("image", "mask") else i for i in images]
            bad.append(({"input_images": long}, "width"))
    if family.schedule_steps is not None:  # a pipeline of a fixed sigma schedule runs its steps only
        bad.append(({"num_inference_steps": model.default_steps + 1}, "num_inference_steps"))
    if not family.takes_guidance:
        bad.append(({"guidance_scale": model.default_guidance_scale + 1.0}, "guidance_scale"))
    if not family.takes_prompt:  # a model without a prompt (a video upscaler) refuses one
        bad.append(({"prompt": "a red circle"}, "prompt"))
    if family.size_from_video is not None:
        # Another size than the one the input video gives, and a video too small for the pipeline's tiles.
        bad.append(({"width": size[0] + model.spatial_factor, "height": size[1]}, "width"))
        index = next(i for i, v in enumerate(videos) if v.role == family.frames_from_video)
        tiny = input_video(family.frames_from_video, (model.spatial_factor,) * 2, model.default_frames)
        bad.append(
            ({"input_videos": [tiny if i == index else v for i, v in enumerate(videos)]}, f"input_videos[{index}].data")
        )
    if family.check_size is not None:
        # One spatial factor wider than the default: off the rule of every family that checks sizes.
        bad.append(({"width": model.default_width + model.spatial_factor}, "width"))
    if family.output_kind == "video" and (
        family.frame_stride > 1 or family.frame_counts is not None or family.native_frames is not None
    ):
        bad.append(({"num_frames": frames + 1}, "num_frames"))
    if family.denoising_loops is not None:
        # The first count of the stride rule above the default that whole chunks do not make, if any:
        # AnyFlow-FAR's last chunk takes what is left, and LTX long's default windows make every count
        # (test_family_quirks refuses one of a model whose windows do not).
        counts = range(frames, frames + 64 * family.frame_stride, family.frame_stride)
        off = next((f for f in counts if family.denoising_loops(f, model.call_defaults)[1] != f), None)
        if off is not None:
            bad.append(({"num_frames": off}, "num_frames"))
    if family.output_kind == "video" and family.min_frames > 1:
        bad.append(({"num_frames": family.min_frames - family.frame_stride}, "num_frames"))
    if family.decode_latents is None:  # a family without previews refuses to stream them
        bad.append(({"preview_every": 1}, "preview_every"))
    if family.required_roles:
        bad.append(({"input_images": [i for i in images if i.role not in family.required_roles]}, "input_images"))
    if family.check_prompt_images is not None and images:
        # The case's prompt names the images it sends (OmniGen's tags): without them it names missing ones.
        bad.append(({"input_images": []}, "prompt"))
    if family.max_outputs is not None:
        bad.append(({"num_outputs": family.max_outputs + 1}, "num_outputs"))
    single = next((image for image in images if image.role not in (*family.repeated_roles, "control")), None)
    if single is not None:  # a second image of a role the pipeline takes one of would be silently dropped
        bad.append(({"input_images": [*images, single]}, f"input_images[{len(images)}].role"))
    if family.default_layers is not None:
        bad.append(({"layers": family.max_layers + 1}, "layers"))
    else:
        bad.append(({"layers": 2}, "layers"))
    if family.takes_task_prompt:
        bad.append(({"task_prompt": ""}, "task_prompt"))
    else:
        bad.append(({"task_prompt": "In each row, [IMAGE2] is [IMAGE1] drawn"}, "task_prompt"))
    if family.outputs_alpha:  # JPEG has no alpha channel
        bad.append(({"output_format": "jpeg"}, "output_format"))
    if family.default_strength is not None:
        bad.append(({"strength": 1.5}, "strength"))
    else:
        bad.append(({"strength": 0.5}, "strength"))
    masks = [index for index, image in enumerate(images) if image.role == "mask"]
    if masks:
        # Twice the masked image's width: large enough for any model's smallest input, not the image's size.
        # A ControlNet inpainting pipeline without an ``image`` masks its control image.
        roles = dict(reversed(case_inputs))  # role -> size of its first picture
        image_size = roles.get("image") or roles["control"]
        wrong_mask = input_image("mask", (2 * image_size[0], image_size[1]))
        wrong = [wrong_mask if image.role == "mask" else image for image in images]
        bad.append(({"input_images": wrong}, f"input_images[{masks[0]}].data"))
    return bad


def _other_guidance(default: float) -> float:
    """A guidance scale that must change the output: CFG off (1) from a higher default, else 3 more."""
    return 1.0 if default > 1.0 else default + 3.0


def _other_picture(role: str, size: tuple[int, int]) -> InputImage:
    """Another picture than ``input_image(role, size)``: other colours, a mask white on its left half."""
    width, height = size
    if role == "mask":
        image = Image.new("L", size, 0)
        image.paste(255, (0, 0, width // 2, height))
    else:
        image = Image.new("RGB", size, (200, 40, 90))
        image.paste((20, 220, 120), (0, 0, width // 2, height // 2))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return InputImage(data=buffer.getvalue(), role=role)


def _other_inputs(case: TinyCase) -> dict[str, list[dict[str, list]]]:
    """Per input role of the case, the request inputs (``input_images`` or ``input_videos``) that must
    each give another output: the role's picture replaced by another, or for a role sent several times,
    one picture fewer and one more; a video replaced by another of as many frames."""
    images = [input_image(role, size) for role, size in case.inputs]
    variants = {}
    for role in dict.fromkeys(role for role, _ in case.inputs):
        at = [index for index, (other, _) in enumerate(case.inputs) if other == role]
        if len(at) == 1:
            other = [_other_picture(role, case.inputs[at[0]][1]) if i == at[0] else im for i, im in enumerate(images)]
            variants[role] = [{"input_images": other}]
        else:
            fewer = [image for i, image in enumerate(images) if i != at[-1]]
            more = images[: at[-1] + 1] + [_other_picture(role, case.inputs[at[-1]][1])] + images[at[-1] + 1 :]
            variants[role] = [{"input_images": fewer}, {"input_images": more}]
    for index, (role, _size, _frames) in enumerate(case.videos):
        videos = [input_video(r, s, f, other=i == index) for i, (r, s, f) in enumerate(case.videos)]
        variants[f"video {role}"] = [{"input_videos": videos}]
    if case.other_camera is not None:
        variants["camera"] = [{"camera": case.other_camera}]
    return variants


def _job_camera(camera: CameraTrajectory | None) -> JobCamera | None:
    """The engine's form of a case's camera trajectory (an action string's), as validation makes it."""
    return None if camera is None else JobCamera(intrinsics=tuple(camera.intrinsics), action=camera.action)


def _violated_fields(client: Client, prompt: str, request: dict) -> set[str]:
    """The fields a request is refused for; a ``prompt`` in ``request`` replaces ``prompt``."""
    request = dict(request)
    prompt = request.pop("prompt", prompt)
    with pytest.raises(InvalidArgumentError) as raised:
        client.generate(prompt, **request)
    return {violation.field for violation in raised.value.field_violations}


def test_every_supported_pipeline_class_has_a_tiny_case():
    covered = {case.pipeline_class for case in CASES}
    claimed = {name for family in FAMILIES if family.unsupported_reason is None for name in family.pipeline_classes}
    assert claimed - covered == set(), "supported pipelines without a tiny test case"
    assert len({case.name for case in CASES}) == len(CASES), "tiny case names must be unique"


@pytest.mark.parametrize(
    "pipeline_class",
    [name for family in FAMILIES if family.unsupported_reason is not None for name in family.pipeline_classes],
)
def test_a_known_unsupported_pipeline_fails_to_load_naming_it_and_why(tmp_path, pipeline_class):
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": pipeline_class}))
    family = next(f for f in FAMILIES if pipeline_class in f.pipeline_classes)
    with pytest.raises(ModelLoadError) as raised:
        load_local_model("m", tmp_path, torch.device("cpu"), torch.float32)
    assert pipeline_class in str(raised.value) and family.unsupported_reason in str(raised.value)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_family_runs_through_the_engine_with_and_without_cache(case: TinyCase):
    pipeline = case.build()
    assert type(pipeline).__name__ == case.pipeline_class
    model = model_from_pipeline(case.name, pipeline, torch.device("cpu"), case.defaults)
    engine = AsyncEngine({case.name: model}, case.name, Limits(), "cpu")
    video = model.family.output_kind == "video"
    request = {
        "model": case.name,
        "seed": 3,
        "input_images": [input_image(role, size) for role, size in case.inputs],
        "input_videos": [input_video(role, size, frames) for role, size, frames in case.videos],
        "strength": case.strength,
        "task_prompt": case.task_prompt,
        "camera": case.camera,
        # Frames as PNGs compare exactly; the MP4 path is checked by the last request.
        "output_format": "png_frames" if video else "png",
    }
    other_inputs = _other_inputs(case)
    # The size the request renders: the model's default, or the one its first ``image`` gives.
    size = (model.default_width, model.default_height)
    if model.family.size_from_input is not None:
        first = next(s for role, s in case.inputs if role == "image")
        size = model.family.size_from_input(pipeline, *first, model.call_defaults)
    if model.family.size_from_video is not None:  # a video upscaler: the size its video gives
        given = next(s for role, s, _ in case.videos if role == model.family.frames_from_video)
        size = model.family.size_from_video(pipeline, *given, model.call_defaults)[:2]
    with BackgroundServer(engine) as server, Client(server.address, timeout=300) as client, warnings.catch_warnings():
        # NaN pixels (a tiny model gone wrong) surface as this warning when encoded: make them fail the request.
        warnings.filterwarnings("error", "invalid value encountered in cast", RuntimeWarning)
        # A family that decodes mid-run latents sends a preview after every step but the last.
        previews_every = 1 if model.family.decode_latents is not None else 0
        events = list(client.stream(case.prompt, preview_every=previews_every, **request))
        plain = next(event.result for event in events if isinstance(event, Completed))
        always = client.generate(case.prompt, cache=ALWAYS_CACHE, **request)
        guidance = _other_guidance(model.default_guidance_scale)
        guided = None  # a model that takes no guidance scale refuses one (a bad request below)
        if model.family.takes_guidance:
            guided = client.generate(case.prompt, **{**request, "guidance_scale": guidance})
        inputs = {
            role: [client.generate(case.prompt, **{**request, **inputs}) for inputs in variants]
            for role, variants in other_inputs.items()
        }
        bad = _bad_requests(model, request["input_images"], case.inputs, size, request["input_videos"], case.camera)
        refused = [_violated_fields(client, case.prompt, {**request, **fields}) for fields, _ in bad]
        # Still serving, bit-identical at threshold 0; the size sent as the one rendered changes nothing.
        rendered = {**request, "width": size[0], "height": size[1]}
        never = client.generate(case.prompt, cache=NEVER_CACHE, **rendered)
        # A video's MP4 (an image's default format is the PNG already asked for).
        again = client.generate(case.prompt, **{**rendered, "output_format": None}) if video else None
        (info,) = client.list_models().models

    def pixels(result):
        return [o.sha256 for o in result.outputs]

    assert refused == [{field} for _, field in bad]
    assert info.repeated_roles == model.family.repeated_roles
    assert info.requires_camera == model.family.takes_camera
    assert info.refuses_guidance_scale == (not model.family.takes_guidance)
    assert (info.default_layers, info.outputs_alpha) == (model.default_layers or 0, model.family.outputs_alpha)
    # A size that follows the input image or video is listed as 0 x 0.
    follows = model.family.size_from_input is not None or model.family.size_from_video is not None
    assert info.refuses_prompt == (not model.family.takes_prompt)
    assert (info.default_width, info.default_height) == ((0, 0) if follows else size)
    assert pixels(always) != pixels(plain), "the cached steps did not change the output"
    assert guided is None or pixels(guided) != pixels(plain), f"guidance {guidance} gave the default's output"
    for role, results in inputs.items():
        assert all(pixels(result) != pixels(plain) for result in results), f"another {role!r} input changed nothing"
        assert len({tuple(pixels(result)) for result in results}) == len(results), f"{role!r} inputs alike"
    strength = case.strength if case.strength is not None else model.family.default_strength
    cut = model.family.steps_run(model.default_steps, strength)
    if model.family.strength_on_last_loop:  # the strength cuts the last loop only (VisualCloze's upsampling)
        steps = model.default_steps * (case.loops - 1) + cut
    else:
        steps = (case.loop_steps or cut) * case.loops
    frames = model.default_frames if video else 1
    # A model that continues its input video returns that video's frames before the new ones.
    frames += sum(count for role, _, count in case.videos if role == model.family.continues_video)
    previews = [event for event in events if isinstance(event, Preview)]
    # A preview replaces an older one the client has not read yet (docs/serving.md), so a loaded machine
    # may skip some; the newest, of the last step but one, always arrives, and steps only go forward.
    shown = [p.step for p in previews]
    assert shown == sorted(set(shown)) and set(shown) <= set(range(steps - 1))
    assert shown[-1:] == ([steps - 2] if previews_every and steps > 1 else [])
    shrunk = Image.new("RGB", size)
    shrunk.thumbnail((256, 256))  # a preview is at most 256 pixels on its longer side (the contract)
    assert all((p.width, p.height) == shrunk.size for p in previews)
    assert all(Image.open(io.BytesIO(p.data)).size == (p.width, p.height) for p in previews)
    assert [o.sha256 for o in never.outputs] == [o.sha256 for o in plain.outputs]
    assert never.cache_stats.cached_steps == 0 and plain.cache_stats.policy == "none"
    # Each loop is a fresh run of the cache, with its own warm-up.
    cached = steps - case.loops * case.experts - case.reshaped_steps
    assert always.cache_stats.cached_steps == cached, always.cache_stats
    # A layered decomposition's output is one image per layer, each with its alpha channel.
    layers = model.default_layers or 1
    assert len(plain.outputs) == frames * layers
    for output in plain.outputs:
        assert (output.mime_type, output.num_frames) == ("image/png", 1)
        assert output.image.size == size
        assert output.image.mode == ("RGBA" if model.family.outputs_alpha else "RGB")
    if video:
        (result,) = again.outputs
        assert (result.mime_type, result.num_frames) == ("video/mp4", frames)
        assert (result.width, result.height) == size
        shown = iio.imread(result.data, extension=".mp4", plugin="FFMPEG")
        assert shown.shape == (frames, size[1], size[0], 3)


def test_the_warm_up_asks_a_pipeline_for_no_more_outputs_than_it_makes_per_call():
    """A compiled model also warms up a call of two outputs (a batch of two), unless its pipeline
    makes one output per call (Cosmos 3 Omni)."""
    case = next(c for c in CASES if c.name == "cosmos3-omni")
    speed = SpeedConfig(compile=True)
    model = model_from_pipeline(case.name, case.build(), torch.device("cpu"), case.defaults, speed, defer_speed=True)
    assert [spec.num_outputs for spec in warmup_specs(model, max_samples=4)] == [1]
    unlimited = dataclasses.replace(model, family=dataclasses.replace(model.family, max_outputs=None))
    assert [spec.num_outputs for spec in warmup_specs(unlimited, max_samples=4)] == [1, 2]


def test_a_streamed_video_arrives_in_chunks_and_reassembles_to_the_generated_mp4():
    case = next(c for c in CASES if c.name == "wan")
    model = model_from_pipeline(case.name, case.build(), torch.device("cpu"), case.defaults)
    engine = AsyncEngine({case.name: model}, case.name, Limits(), "cpu")
    # Chunks of 1 KiB so that a tiny MP4 takes several (the 1 MiB default is tested in test_generate).
    config = ServerConfig(port=0, stream_chunk_bytes=1024)
    request = engine_pb2.GenerateRequest(prompt="a red circle", model=case.name, seed=5)
    with BackgroundServer(engine, config) as server, grpc.insecure_channel(server.address) as channel:
        stub = engine_pb2_grpc.EngineStub(channel)
        generated = stub.Generate(request, timeout=120).outputs[0]
        events = list(stub.Stream(request, timeout=120))
    chunks = [e.chunk for e in events if e.HasField("chunk")]
    streamed = events[-1].completed.outputs[0]
    assert generated.mime_type == streamed.mime_type == "video/mp4" and streamed.data == b""
    assert len(chunks) > 1 and all(len(c.data) <= 1024 for c in chunks) and chunks[-1].last
    assert [c.offset for c in chunks] == [1024 * i for i in range(len(chunks))]
    data = b"".join(c.data for c in chunks)
    assert data == generated.data and hashlib.sha256(data).hexdigest() == streamed.sha256
    frames = iio.imread(data, extension=".mp4", plugin="FFMPEG")
    assert frames.shape == (model.default_frames, model.default_height, model.default_width, 3)


@pytest.mark.parametrize(
    ("case", "frames"),
    # A family that serves no previews (FamilySpec.decode_latents None) refuses preview_every instead.
    [(case, None) for case in VIDEO_CASES if family_of(case).decode_latents is not None]
    + [(next(c for c in CASES if c.name == name), frames) for name, frames in LONGER_VIDEOS],
    ids=lambda value: value.name if isinstance(value, TinyCase) else str(value or "default"),
)
def test_a_video_preview_of_the_last_latents_is_the_frame_the_video_shows(case: TinyCase, frames: int | None):
    """Text-to-video previews show the first frame, image-to-video ones the last (the first is the input
    image); decoded from the last step's latents, it equals that frame of the pipeline's own video."""
    pipeline = case.build()
    model = model_from_pipeline(case.name, pipeline, torch.device("cpu"), case.defaults)
    inputs = tuple((role, Image.open(io.BytesIO(input_image(role, size).data))) for role, size in case.inputs)
    job = JobSpec(
        request_id="preview",
        model=case.name,
        prompt="a red circle",
        negative_prompt="",
        width=model.default_width,
        height=model.default_height,
        num_inference_steps=model.default_steps,
        guidance_scale=model.default_guidance_scale,
        seed=3,
        num_outputs=1,
        num_frames=frames or model.default_frames,
        fps=16,
        output_format=OutputFormat.PNG_FRAMES,
        output_quality=90,
        preview_every=1,
        input_images=inputs,
        input_videos=tuple((role, tuple(video_frames(size, count))) for role, size, count in case.videos),
        strength=model.family.default_strength,
        camera=_job_camera(case.camera),
    )
    last = {}

    def keep_latents(pipe, index, timestep, tensors):
        last["latents"] = tensors["latents"]
        return {}

    kwargs = {**model.call_defaults, **model.family.build_call_kwargs(pipeline, [job])}
    if model.family.step_end_callback:
        kwargs["callback_on_step_end"] = keep_latents
    else:  # the engine reads these pipelines' latents from their scheduler's steps
        step = pipeline.scheduler.step

        def step_and_keep(*args, **step_kwargs):
            out = step(*args, **step_kwargs)
            last["latents"] = out[0]
            return out

        pipeline.scheduler.step = step_and_keep
    with torch.no_grad():
        output = pipeline(**kwargs, generator=torch.Generator().manual_seed(3), output_type="pt")
        video = (model.family.read_output(output) if model.family.read_output else output.frames)[0]
        (preview,) = model.family.decode_latents(pipeline, last["latents"], job)
    assert video.shape[0] == job.num_frames
    if case.preview_frame is not None:  # a chunked video: the first frame of its last chunk
        shown = video[case.preview_frame].permute(1, 2, 0)
    else:
        shown = video[-1 if model.family.input_roles else 0].permute(1, 2, 0)
    assert preview.shape == (job.height, job.width, 3) and not preview.isnan().any()
    torch.testing.assert_close(preview, shown, atol=1e-4, rtol=0)
