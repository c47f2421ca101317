"""FLUX.1, Qwen-Image, Z-Image, Sana, SD3 and HunyuanDiT ControlNet through the engine: control images, their
scales, and the cache.

The FLUX ControlNet pipeline is saved to a directory (the base pipeline plus its
``controlnet/`` component) and loaded as ``--model NAME=PATH`` loads it; the Qwen-Image
ones (ControlNet and ControlNet inpainting), Z-Image's, Sana's, SD3's (ControlNet and ControlNet
inpainting) and HunyuanDiT's are served as built. Their ControlNets add residuals after the
transformer's blocks (HunyuanDiT's: to its long skips): with DBCache at threshold 0 the image is
bit-identical to no cache, and at threshold 1 (every step after the first cached) it stays within
30 dB of full compute (HunyuanDiT: as close as without its ControlNet's residuals, which its tiny
transformer keeps below 30 dB).
"""

from __future__ import annotations

import hashlib
import json
import pathlib
import shutil

import numpy as np
import pytest
import torch
from diffusers import (
    FluxPipeline,
    HunyuanDiTPipeline,
    QwenImageMultiControlNetModel,
    QwenImagePipeline,
    SanaPipeline,
    StableDiffusion3Pipeline,
    ZImagePipeline,
)
from tiny_families import input_image
from tiny_families.flux import build_tiny_flux_controlnet
from tiny_families.hunyuandit import CASES as HUNYUANDIT_CASES
from tiny_families.qwen_image import build_tiny_qwen_image_controlnet, build_tiny_qwen_image_controlnet_inpaint
from tiny_families.sana import CASES as SANA_CASES
from tiny_families.sd3 import CASES as SD3_CASES
from tiny_families.sd3 import build_tiny_sd3_controlnet, build_tiny_sd3_controlnet_inpaint
from tiny_families.z_image import CASES as Z_IMAGE_CASES

from client_sdk import CachePolicy, Client, InputImage
from client_sdk.errors import InvalidArgumentError
from engine_service import cli
from engine_service.bootstrap import ModelSource, parse_controlnet_arg
from engine_service.config import Limits
from engine_service.metrics import psnr
from engine_service.models import model_from_pipeline
from engine_service.models.registry import ModelLoadError, load_local_model
from engine_service.runtime.engine import AsyncEngine
from engine_service.server.background import BackgroundServer

STEPS = 8
#: Tiny family cases served as built, beside FLUX.1 and Qwen-Image.
BUILT_CASES = ("z-image-controlnet", "sana-controlnet", "sd3-controlnet", "hunyuandit-controlnet")
#: Their base pipelines, saved as the directories a ControlNet is attached to.
BASE_PIPELINES = {
    "z-image-controlnet": ZImagePipeline,
    "sana-controlnet": SanaPipeline,
    "sd3-controlnet": StableDiffusion3Pipeline,
    "hunyuandit-controlnet": HunyuanDiTPipeline,
}
#: Models whose tiny transformer is itself far from full compute with every step after the first cached: the tiny
#: HunyuanDiT (4 blocks, 8 DDPM steps) is 19 dB from it with its ControlNet's residuals at scale 0. Its ControlNet
#: must add nothing to that error (tests/test_cache_hints.py checks where its residuals go, exactly).
OWN_CACHE_ERROR = ("hunyuandit-controlnet",)
TEXT = {"max_sequence_length": 16}
CONTROL = input_image("control", (32, 32))
IMAGE = input_image("image", (32, 32))
MASK = input_image("mask", (32, 32))
#: Models whose requests send more than the control image: the ControlNet inpainting pipelines mask their
#: control image (mask white = repaint).
MASKED = {"qwen-controlnet-inpaint": [MASK], "sd3-controlnet-inpaint": [MASK]}
NEVER = CachePolicy(preset="dbcache", residual_diff_threshold=0.0)
ALWAYS = CachePolicy(
    preset="dbcache", residual_diff_threshold=1.0, max_warmup_steps=1, warmup_interval=1, max_continuous_cached_steps=-1
)


@pytest.fixture(scope="module")
def directories(tmp_path_factory) -> dict[str, pathlib.Path]:
    """The tiny FLUX ControlNet pipeline saved whole, and as its base pipeline and ControlNet apart."""
    pipeline = build_tiny_flux_controlnet()
    found = {name: tmp_path_factory.mktemp(name) for name in ("whole", "base", "controlnet")}
    pipeline.save_pretrained(found["whole"])
    assert (found["whole"] / "controlnet" / "config.json").is_file()
    FluxPipeline.from_pipe(pipeline).save_pretrained(found["base"])
    defaults = {"width": 32, "height": 32, "steps": STEPS, "call_defaults": TEXT}
    (found["base"] / "ditserve.json").write_text(json.dumps(defaults))
    pipeline.controlnet.save_pretrained(found["controlnet"])
    return found


@pytest.fixture(scope="module")
def served(directories, tmp_path_factory):
    """The engine's address and an SDK client of it."""
    cpu = torch.device("cpu")
    flux = load_local_model("flux-controlnet", directories["whole"], cpu, torch.float32)
    flux.default_width = flux.default_height = 32
    flux.default_steps = STEPS
    flux.call_defaults = {**flux.call_defaults, **TEXT}
    # As ``serve --controlnet NAME=PATH:MODEL`` loads them: the base directory with one or two ControlNets.
    net = str(directories["controlnet"])
    attached = load_local_model("flux-attached", directories["base"], cpu, torch.float32, controlnets=[net])
    two = load_local_model("flux-two-nets", directories["base"], cpu, torch.float32, controlnets=[net, net])
    qwen = model_from_pipeline(
        "qwen-controlnet",
        build_tiny_qwen_image_controlnet(),
        cpu,
        {"width": 32, "height": 32, "steps": STEPS, "guidance_scale": 1.0, "call_defaults": TEXT},
    )
    qwen_inpaint = model_from_pipeline(
        "qwen-controlnet-inpaint",
        build_tiny_qwen_image_controlnet_inpaint(),
        cpu,
        {"width": 32, "height": 32, "steps": STEPS, "guidance_scale": 1.0, "call_defaults": TEXT},
    )
    sd3_inpaint = model_from_pipeline(
        "sd3-controlnet-inpaint",
        build_tiny_sd3_controlnet_inpaint(),
        cpu,
        {"width": 32, "height": 32, "steps": STEPS, "call_defaults": TEXT},
    )
    models = {
        "flux-controlnet": flux,
        "qwen-controlnet": qwen,
        "qwen-controlnet-inpaint": qwen_inpaint,
        "sd3-controlnet-inpaint": sd3_inpaint,
        "flux-attached": attached,
        "flux-two-nets": two,
    }
    for case in [*Z_IMAGE_CASES, *SANA_CASES, *SD3_CASES, *HUNYUANDIT_CASES]:
        if case.name not in BUILT_CASES:
            continue
        defaults = {**case.defaults, "steps": STEPS}
        pipeline = case.build()
        models[case.name] = model_from_pipeline(case.name, pipeline, cpu, defaults)
        # The same pipeline as its base model directory with the ControlNet attached at start-up.
        base, net = tmp_path_factory.mktemp(f"{case.name}-base"), tmp_path_factory.mktemp(f"{case.name}-net")
        BASE_PIPELINES[case.name].from_pipe(pipeline).save_pretrained(base)
        (base / "ditserve.json").write_text(json.dumps(defaults))
        pipeline.controlnet.save_pretrained(net)
        attached_name = f"{case.name}-attached"
        models[attached_name] = load_local_model(attached_name, base, cpu, torch.float32, controlnets=[str(net)])
    engine = AsyncEngine(models, "flux-controlnet", Limits(), "cpu")
    with BackgroundServer(engine) as server, Client(server.address, timeout=300) as client:
        yield server.address, client


@pytest.fixture(scope="module")
def client(served):
    return served[1]


def _pixels(result) -> np.ndarray:
    return np.asarray(result.outputs[0].image.convert("RGB"))


@pytest.mark.parametrize("model", ["flux-controlnet", "qwen-controlnet", *MASKED, *BUILT_CASES])
def test_cache_places_the_controlnet_residuals_exactly_once(client, model):
    request = {"model": model, "seed": 4, "input_images": [CONTROL, *MASKED.get(model, [])]}
    full = client.generate("a red circle", **request)
    never = client.generate("a red circle", cache=NEVER, **request)
    always = client.generate("a red circle", cache=ALWAYS, **request)
    assert never.outputs[0].sha256 == full.outputs[0].sha256 and never.cache_stats.cached_steps == 0
    assert always.cache_stats.cached_steps == STEPS - 1
    assert always.outputs[0].sha256 != full.outputs[0].sha256
    floor = 30.0
    if model in OWN_CACHE_ERROR:  # no worse than the same request with the ControlNet's residuals at 0
        quiet = {**request, "input_images": [InputImage(CONTROL.data, "control", 0.0), *MASKED.get(model, [])]}
        cached = client.generate("a red circle", cache=ALWAYS, **quiet)
        floor = psnr(_pixels(cached), _pixels(client.generate("a red circle", **quiet))) - 1.0
    assert psnr(_pixels(always), _pixels(full)) >= floor


@pytest.mark.parametrize("model", ["flux-controlnet", "qwen-controlnet", *MASKED, *BUILT_CASES])
def test_the_conditioning_scale_steers_the_image(client, model):
    masked = MASKED.get(model, [])

    def run(scale):
        control = InputImage(CONTROL.data, "control", scale)
        return client.generate("a red circle", model=model, seed=4, input_images=[control, *masked]).outputs[0].sha256

    default = client.generate("a red circle", model=model, seed=4, input_images=[CONTROL, *masked]).outputs[0].sha256
    assert run(1.0) == default
    assert len({run(0.0), default, run(2.5)}) == 3


def test_list_models_says_a_controlnet_model_takes_control_images_and_their_scale(client):
    info = {m.name: m for m in client.list_models().models}
    for name in ("flux-controlnet", "qwen-controlnet", *BUILT_CASES):
        assert info[name].parameters == ("controlnet_conditioning_scale",)
        assert info[name].input_roles == info[name].required_roles == ("control",)
        assert info[name].control_images == 1 and info[name].default_strength is None
    for inpaint in (info["qwen-controlnet-inpaint"], info["sd3-controlnet-inpaint"]):
        assert inpaint.parameters == ("controlnet_conditioning_scale",) and inpaint.control_images == 1
        assert inpaint.input_roles == inpaint.required_roles == ("control", "mask")
        assert inpaint.default_strength is None


@pytest.mark.parametrize("model", MASKED)
def test_a_mask_of_another_size_than_the_control_image_it_masks_is_refused(client, model):
    wide = input_image("mask", (64, 32))
    with pytest.raises(InvalidArgumentError) as raised:
        client.generate("a red circle", model=model, input_images=[CONTROL, wide])
    (violation,) = raised.value.field_violations
    assert violation.field == "input_images[1].data"
    assert "the mask is 64x32 but the control image is 32x32" in violation.description
    assert client.generate("a red circle", model=model, input_images=[CONTROL, MASK])


def test_a_multi_controlnet_for_qwen_image_controlnet_inpainting_fails_to_load_naming_it():
    pipeline = build_tiny_qwen_image_controlnet_inpaint()
    pipeline.controlnet = QwenImageMultiControlNetModel([pipeline.controlnet, pipeline.controlnet])
    with pytest.raises(ModelLoadError, match="takes one ControlNet; .* multi-ControlNet of 2"):
        model_from_pipeline("m", pipeline, torch.device("cpu"), {})


@pytest.mark.parametrize(
    ("images", "field"),
    [
        ([], "input_images"),
        ([CONTROL, CONTROL], "input_images"),  # one ControlNet: one control image
        ([InputImage(CONTROL.data, "control", 11.0)], "input_images[0].controlnet_conditioning_scale"),
        ([InputImage(CONTROL.data, "control", float("nan"))], "input_images[0].controlnet_conditioning_scale"),
        ([CONTROL, InputImage(IMAGE.data, "image", 0.5)], "input_images[1].controlnet_conditioning_scale"),
    ],
)
def test_bad_control_images_are_refused_naming_the_field(client, images, field):
    with pytest.raises(InvalidArgumentError) as raised:
        client.generate("a red circle", model="flux-controlnet", input_images=images)
    assert field in {v.field for v in raised.value.field_violations}
    assert client.generate("a red circle", model="flux-controlnet", input_images=[CONTROL], num_inference_steps=1)


def test_a_controlnet_attached_at_start_up_steers_the_base_model_as_the_saved_pipeline_does(client):
    request = {"seed": 4, "input_images": [CONTROL]}
    whole = client.generate("a red circle", model="flux-controlnet", **request)
    attached = client.generate("a red circle", model="flux-attached", **request)
    assert attached.outputs[0].sha256 == whole.outputs[0].sha256
    for name in BUILT_CASES:
        built = client.generate("a red circle", model=name, **request)
        attached = client.generate("a red circle", model=f"{name}-attached", **request)
        assert attached.outputs[0].sha256 == built.outputs[0].sha256, name
    info = {m.name: m for m in client.list_models().models}
    assert info["flux-attached"].input_roles == ("control",) and info["flux-attached"].control_images == 1
    assert info["flux-two-nets"].control_images == 2


def test_the_models_command_says_how_many_control_images_a_model_takes(served, capsys):
    assert cli.main(["models", "--target", served[0]]) == 0
    rows = {line[2:].split()[0]: line for line in capsys.readouterr().out.splitlines() if line.startswith(("* ", "  "))}
    assert " control x2 " in rows["flux-two-nets"] and " control " in rows["flux-attached"]
    assert all("controlnet_conditioning_scale" in rows[name] for name in ("flux-two-nets", "qwen-controlnet"))


def test_generate_sends_a_conditioning_scale_per_control_image(served, tmp_path, capsys):
    address, client = served
    control = tmp_path / "control.png"
    control.write_bytes(CONTROL.data)
    quiet = InputImage(CONTROL.data, "control", 0.0)
    sdk = client.generate("a red circle", model="flux-two-nets", seed=4, input_images=[CONTROL, quiet])
    command = ["generate", "a red circle", "--target", address, "--model", "flux-two-nets", "--seed", "4"]
    command += ["--input-image", f"control={control}"] * 2 + ["--out", str(tmp_path), "--name", "cli"]
    assert cli.main([*command, "--controlnet-scale", "1", "--controlnet-scale", "0"]) == 0
    assert hashlib.sha256((tmp_path / "cli.png").read_bytes()).hexdigest() == sdk.outputs[0].sha256
    capsys.readouterr()
    assert cli.main([*command, "--controlnet-scale", "1"]) == 2  # one scale for two control images
    assert "--controlnet-scale: 1 scale(s) for 2 control image(s)" in capsys.readouterr().err
    assert cli.main([*command, "--controlnet-scale", "1", "--controlnet-scale", "nan"]) == 1
    assert "input_images[1].controlnet_conditioning_scale" in capsys.readouterr().err


def test_two_attached_controlnets_take_one_control_image_each(client):
    with pytest.raises(InvalidArgumentError) as raised:
        client.generate("a red circle", model="flux-two-nets", input_images=[CONTROL])
    assert "input_images" in {v.field for v in raised.value.field_violations}
    quiet = InputImage(CONTROL.data, "control", 0.0)
    one = client.generate("a red circle", model="flux-two-nets", seed=4, input_images=[CONTROL, quiet])
    both = client.generate("a red circle", model="flux-two-nets", seed=4, input_images=[CONTROL, CONTROL])
    single = client.generate("a red circle", model="flux-attached", seed=4, input_images=[CONTROL])
    assert psnr(_pixels(one), _pixels(single)) > psnr(_pixels(both), _pixels(single))


def test_an_sd3_controlnet_of_the_other_kind_fails_to_load_naming_it(tmp_path):
    """An inpainting ControlNet reads a mask channel beside the control image's latents, a plain one
    does not: each pipeline refuses the other kind at load time rather than failing every request."""
    plain, inpaint = build_tiny_sd3_controlnet(), build_tiny_sd3_controlnet_inpaint()
    swapped = [
        (type(plain)(**{**plain.components, "controlnet": inpaint.controlnet}), "a ControlNet without a mask input", 1),
        (type(inpaint)(**{**inpaint.components, "controlnet": plain.controlnet}), "an inpainting ControlNet", 0),
    ]
    for pipeline, words, extra in swapped:
        with pytest.raises(ModelLoadError, match=f"'m': {type(pipeline).__name__} takes {words}") as raised:
            model_from_pipeline("m", pipeline, torch.device("cpu"), {})
        assert f"SD3ControlNetModel has extra_conditioning_channels={extra}" in str(raised.value)
    # As ``serve --controlnet`` attaches one to an SD3 model.
    StableDiffusion3Pipeline.from_pipe(plain).save_pretrained(tmp_path / "base")
    inpaint.controlnet.save_pretrained(tmp_path / "net")
    net = str(tmp_path / "net")
    with pytest.raises(ModelLoadError, match="takes a ControlNet without a mask input"):
        load_local_model("m", tmp_path / "base", torch.device("cpu"), torch.float32, controlnets=[net])


def test_controlnet_argument_names_a_served_model_and_its_paths():
    base = ModelSource("flux", "/models/flux")
    source = parse_controlnet_arg("canny=/nets/a,/nets/b:flux", [base])
    assert (source.name, source.path, source.controlnets) == ("canny", "/models/flux", ("/nets/a", "/nets/b"))
    for bad, words in [
        ("canny=/nets/a", "NAME=PATH:MODEL"),
        ("=/nets/a:flux", "NAME=PATH:MODEL"),
        ("canny=,:flux", "NAME=PATH:MODEL"),  # no ControlNet at all: it would serve flux unsteered
        ("canny=/nets/a,:flux", "NAME=PATH:MODEL"),
        ("canny=/nets/a,,/nets/b:flux", "NAME=PATH:MODEL"),
        ("canny=/nets/a:schnell", "'schnell' is not a --model"),
    ]:
        with pytest.raises(ValueError, match=words):
            parse_controlnet_arg(bad, [base])


def _mismatched_controlnet(directory: pathlib.Path) -> str:
    controlnet = build_tiny_flux_controlnet().controlnet
    config = {**controlnet.config, "joint_attention_dim": 48}
    type(controlnet).from_config(config).save_pretrained(directory)
    return str(directory)


def _controlnet_of_another_model(directory: pathlib.Path) -> str:
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps({"_class_name": "SD3ControlNetModel"}))
    return str(directory)


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda d: str(d / "missing"), ["does not exist"]),
        (_controlnet_of_another_model, ["SD3ControlNetModel", "takes FluxControlNetModel"]),
        (_mismatched_controlnet, ["does not fit", "joint_attention_dim", "48"]),
    ],
    ids=["missing", "another model's", "other dimensions"],
)
def test_a_controlnet_that_cannot_steer_the_model_fails_to_load_naming_it(directories, tmp_path, make, words):
    path = make(tmp_path / "net")
    with pytest.raises(ModelLoadError) as raised:
        load_local_model("m", directories["base"], torch.device("cpu"), torch.float32, controlnets=[path])
    assert path in str(raised.value) and all(word in str(raised.value) for word in words), raised.value


def test_a_directory_whose_controlnet_component_does_not_fit_fails_to_load_naming_it(directories, tmp_path):
    # As ``serve --model NAME=PATH`` loads it: the saved pipeline with another ControlNet in ``controlnet/``.
    whole = tmp_path / "whole"
    shutil.copytree(directories["whole"], whole)
    shutil.rmtree(whole / "controlnet")
    _mismatched_controlnet(whole / "controlnet")
    with pytest.raises(ModelLoadError) as raised:
        load_local_model("m", whole, torch.device("cpu"), torch.float32)
    words = [str(whole / "controlnet"), "does not fit", "joint_attention_dim", "48"]
    assert all(word in str(raised.value) for word in words), raised.value


def test_a_qwen_image_model_takes_one_controlnet(tmp_path):
    # diffusers 0.42.1's QwenImageMultiControlNetModel runs one ControlNet: two would fail every request.
    pipeline = build_tiny_qwen_image_controlnet()
    QwenImagePipeline.from_pipe(pipeline).save_pretrained(tmp_path / "base")
    pipeline.controlnet.save_pretrained(tmp_path / "net")
    nets = [str(tmp_path / "net")] * 2
    with pytest.raises(ModelLoadError, match="QwenImageControlNetPipeline runs at most 1 ControlNet") as raised:
        load_local_model("m", tmp_path / "base", torch.device("cpu"), torch.float32, controlnets=nets)
    assert nets[0] in str(raised.value)


def test_a_model_that_takes_no_controlnet_says_which_do(directories):
    net = str(directories["controlnet"])
    with pytest.raises(ModelLoadError, match="flux-controlnet model takes no ControlNet .*flux, "):
        load_local_model("m", directories["whole"], torch.device("cpu"), torch.float32, controlnets=[net])


def test_every_family_controlnet_pipeline_is_a_served_controlnet_family():
    from engine_service.models.families import FAMILIES
    from engine_service.models.registry import family_for_pipeline

    named = [family.controlnet_pipeline for family in FAMILIES if family.controlnet_pipeline is not None]
    assert {"FluxControlNetPipeline", "QwenImageControlNetPipeline"} <= set(named)
    for pipeline_class in named:
        target = family_for_pipeline(pipeline_class)
        assert target.unsupported_reason is None and target.control_count is not None, pipeline_class
