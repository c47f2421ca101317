"""Image-to-image and inpainting through the SDK: strength, masks, and what ListModels says.

One engine serves the tiny FLUX image-to-image and Qwen-Image inpainting pipelines
(tests/tiny_families). A request's ``strength`` sets how many of its steps run
(diffusers starts the schedule at ``int(steps - strength x steps)``); a strength out
of (0, 1] or a mask of another size than its image is INVALID_ARGUMENT naming the
field, and the engine keeps serving.
"""

from __future__ import annotations

import pytest
import torch
from tiny_families import input_image
from tiny_families.flux import build_tiny_flux_img2img
from tiny_families.qwen_image import build_tiny_qwen_image_inpaint

from client_sdk import CachePolicy, Client, Completed, Started, Step
from client_sdk.errors import InvalidArgumentError
from engine_service import cli
from engine_service.config import Limits
from engine_service.models import model_from_pipeline
from engine_service.runtime.engine import AsyncEngine
from engine_service.server.background import BackgroundServer

SIZE = {"width": 32, "height": 32, "call_defaults": {"max_sequence_length": 16}}
IMAGE = input_image("image", (32, 32))
MASK = input_image("mask", (32, 32))
FAST = CachePolicy(preset="fast")


@pytest.fixture(scope="module")
def served():
    """The engine's address and an SDK client of it."""
    cpu = torch.device("cpu")
    models = {
        "flux-img2img": model_from_pipeline("flux-img2img", build_tiny_flux_img2img(), cpu, {**SIZE, "steps": 10}),
        "qwen-inpaint": model_from_pipeline(
            "qwen-inpaint", build_tiny_qwen_image_inpaint(), cpu, {**SIZE, "steps": 10, "guidance_scale": 1.0}
        ),
    }
    engine = AsyncEngine(models, "flux-img2img", Limits(), "cpu")
    with BackgroundServer(engine) as server, Client(server.address, timeout=300) as client:
        yield server.address, client


@pytest.fixture(scope="module")
def client(served):
    return served[1]


def _run(client: Client, model: str, images, strength: float | None):
    events = list(client.stream("a red circle", model=model, seed=7, input_images=images, strength=strength))
    started = next(e for e in events if isinstance(e, Started))
    steps = [e for e in events if isinstance(e, Step)]
    result = next(e.result for e in events if isinstance(e, Completed))
    return started.total_steps, len(steps), result.outputs[0]


@pytest.mark.parametrize(("model", "images"), [("flux-img2img", [IMAGE]), ("qwen-inpaint", [IMAGE, MASK])])
def test_strength_sets_the_steps_that_run_and_changes_the_image(client, model, images):
    # 10 steps: strength 0.3 runs the last 3, 0.7 the last 7, the default 0.6 the last 6.
    low = _run(client, model, images, 0.3)
    high = _run(client, model, images, 0.7)
    default = _run(client, model, images, None)
    assert low[:2] == (3, 3) and high[:2] == (7, 7) and default[:2] == (6, 6)
    assert len({low[2].sha256, high[2].sha256, default[2].sha256}) == 3
    assert low[2].image.size == high[2].image.size == (32, 32)


@pytest.mark.parametrize(("model", "images"), [("flux-img2img", [IMAGE]), ("qwen-inpaint", [IMAGE, MASK])])
def test_a_step_mask_counts_the_steps_that_run(client, model, images):
    # 10 steps at strength 0.7 run 7: the fast preset's 7-step mask 1111001 caches the 5th and 6th of them
    # and computes the last, as in a 7-step run (not the first 7 entries of a 10-step mask).
    result = client.generate("a red circle", model=model, seed=7, input_images=images, strength=0.7, cache=FAST)
    assert "SCM1111001" in result.cache_stats.policy
    assert [step.cached for step in result.cache_stats.steps] == [False] * 4 + [True, True, False]


def test_list_models_says_which_roles_and_parameters_each_model_takes(client):
    info = {m.name: m for m in client.list_models().models}
    img2img, inpaint = info["flux-img2img"], info["qwen-inpaint"]
    assert img2img.parameters == ("strength",) and img2img.default_strength == pytest.approx(0.6)
    assert (img2img.input_roles, img2img.required_roles) == (("image",), ("image",))
    assert inpaint.parameters == ("strength",) and inpaint.required_roles == ("image", "mask")
    assert img2img.control_images == inpaint.control_images == 0


def test_the_models_command_says_which_roles_and_parameters_each_model_takes(served, capsys):
    assert cli.main(["models", "--target", served[0]]) == 0
    rows = {line[2:].split()[0]: line for line in capsys.readouterr().out.splitlines() if line.startswith(("* ", "  "))}
    assert "strength (default 0.6)" in rows["flux-img2img"] and "strength (default 0.6)" in rows["qwen-inpaint"]
    assert " image, mask " in rows["qwen-inpaint"]


@pytest.mark.parametrize(
    ("model", "request_fields", "field"),
    [
        ("flux-img2img", {"strength": 1.5}, "strength"),
        ("flux-img2img", {"strength": -0.2}, "strength"),
        ("flux-img2img", {"strength": float("nan")}, "strength"),
        ("flux-img2img", {"strength": 0.0}, "strength"),  # no step left to run
        ("flux-img2img", {"input_images": []}, "input_images"),
        ("qwen-inpaint", {"input_images": [IMAGE, input_image("mask", (64, 32))]}, "input_images[1].data"),
        ("qwen-inpaint", {"input_images": [IMAGE]}, "input_images"),
        # The pipelines take one image and one mask: a second would be silently dropped.
        ("qwen-inpaint", {"input_images": [IMAGE, MASK, MASK]}, "input_images[2].role"),
        ("flux-img2img", {"input_images": [IMAGE, IMAGE]}, "input_images[1].role"),
    ],
)
def test_a_bad_strength_or_mask_is_refused_naming_the_field(client, model, request_fields, field):
    request = {"model": model, "input_images": [IMAGE, MASK] if model == "qwen-inpaint" else [IMAGE]}
    with pytest.raises(InvalidArgumentError) as raised:
        client.generate("a red circle", **{**request, **request_fields})
    assert [v.field for v in raised.value.field_violations] == [field]
    if field.endswith(".data"):
        assert "the mask is 64x32 but the image is 32x32" in raised.value.field_violations[0].description
    if field.endswith(".role"):
        assert "takes one" in raised.value.field_violations[0].description
    assert client.generate("a red circle", model="flux-img2img", input_images=[IMAGE], num_inference_steps=2).outputs
