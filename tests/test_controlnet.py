"""FLUX.1 and Qwen-Image ControlNet through the engine: control images, their scales, and the cache.

The FLUX ControlNet pipeline is saved to a directory (the base pipeline plus its
``controlnet/`` component) and loaded as ``--model NAME=PATH`` loads it; the Qwen-Image
one is served as built. Their ControlNets add residuals after the transformer's blocks:
with DBCache at threshold 0 the image is bit-identical to no cache, and at threshold 1
(every step after the first cached) it stays within 30 dB of full compute.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_families import input_image
from tiny_families.flux import build_tiny_flux_controlnet
from tiny_families.qwen_image import build_tiny_qwen_image_controlnet

from client_sdk import CachePolicy, Client, InputImage
from client_sdk.errors import InvalidArgumentError
from engine_service.config import Limits
from engine_service.metrics import psnr
from engine_service.models import model_from_pipeline
from engine_service.models.registry import load_local_model
from engine_service.runtime.engine import AsyncEngine
from engine_service.server.background import BackgroundServer

STEPS = 8
TEXT = {"max_sequence_length": 16}
CONTROL = input_image("control", (32, 32))
IMAGE = input_image("image", (32, 32))
NEVER = CachePolicy(preset="dbcache", residual_diff_threshold=0.0)
ALWAYS = CachePolicy(
    preset="dbcache", residual_diff_threshold=1.0, max_warmup_steps=1, warmup_interval=1, max_continuous_cached_steps=-1
)


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    directory = tmp_path_factory.mktemp("flux-controlnet")
    build_tiny_flux_controlnet().save_pretrained(directory)
    assert (directory / "controlnet" / "config.json").is_file()
    cpu = torch.device("cpu")
    flux = load_local_model("flux-controlnet", directory, cpu, torch.float32)
    flux.default_width = flux.default_height = 32
    flux.default_steps = STEPS
    flux.call_defaults = {**flux.call_defaults, **TEXT}
    qwen = model_from_pipeline(
        "qwen-controlnet",
        build_tiny_qwen_image_controlnet(),
        cpu,
        {"width": 32, "height": 32, "steps": STEPS, "guidance_scale": 1.0, "call_defaults": TEXT},
    )
    engine = AsyncEngine({"flux-controlnet": flux, "qwen-controlnet": qwen}, "flux-controlnet", Limits(), "cpu")
    with BackgroundServer(engine) as server, Client(server.address, timeout=300) as client:
        yield client


def _pixels(result) -> np.ndarray:
    return np.asarray(result.outputs[0].image.convert("RGB"))


@pytest.mark.parametrize("model", ["flux-controlnet", "qwen-controlnet"])
def test_cache_places_the_controlnet_residuals_exactly_once(client, model):
    request = {"model": model, "seed": 4, "input_images": [CONTROL]}
    full = client.generate("a red circle", **request)
    never = client.generate("a red circle", cache=NEVER, **request)
    always = client.generate("a red circle", cache=ALWAYS, **request)
    assert never.outputs[0].sha256 == full.outputs[0].sha256 and never.cache_stats.cached_steps == 0
    assert always.cache_stats.cached_steps == STEPS - 1
    assert always.outputs[0].sha256 != full.outputs[0].sha256
    assert psnr(_pixels(always), _pixels(full)) >= 30.0


@pytest.mark.parametrize("model", ["flux-controlnet", "qwen-controlnet"])
def test_the_conditioning_scale_steers_the_image(client, model):
    def run(scale):
        control = InputImage(CONTROL.data, "control", scale)
        return client.generate("a red circle", model=model, seed=4, input_images=[control]).outputs[0].sha256

    default = client.generate("a red circle", model=model, seed=4, input_images=[CONTROL]).outputs[0].sha256
    assert run(1.0) == default
    assert len({run(0.0), default, run(2.5)}) == 3


def test_list_models_says_a_controlnet_model_takes_control_images_and_their_scale(client):
    info = {m.name: m for m in client.list_models().models}
    for name in ("flux-controlnet", "qwen-controlnet"):
        assert info[name].parameters == ("controlnet_conditioning_scale",)
        assert info[name].input_roles == info[name].required_roles == ("control",)
        assert info[name].control_images == 1 and info[name].default_strength is None


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
