"""The shipped default model: loads offline as a plain FluxPipeline and draws the colours it is asked for."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine_service import cache
from engine_service.metrics import psnr
from engine_service.models import shapes
from engine_service.models.builtin import BUILTIN_CALL_DEFAULTS, BUILTIN_DEFAULTS, BUILTIN_DIR

#: (shape colour, background colour): every colour appears once as each.
PAIRS = (
    ("red", "blue"),
    ("green", "white"),
    ("blue", "yellow"),
    ("yellow", "black"),
    ("white", "red"),
    ("black", "green"),
)
CASES = [(colour, shape, background) for colour, background in PAIRS for shape in shapes.SHAPES]


@pytest.fixture(scope="module")
def pipe():
    from diffusers import FluxPipeline

    pipe = FluxPipeline.from_pretrained(BUILTIN_DIR, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_the_shipped_weights_fit_the_size_budget():
    files = [path for path in BUILTIN_DIR.rglob("*") if path.is_file()]
    assert {path.name for path in files} >= {"model_index.json", "diffusion_pytorch_model.safetensors"}
    assert sum(path.stat().st_size for path in files) <= 25 * 1024 * 1024


@pytest.mark.parametrize("shape", shapes.SHAPES)
def test_drawn_images_put_the_shape_at_the_centre_and_background_in_the_corners(shape):
    """What the colour check below relies on, for every size and offset the training data uses."""
    rng = np.random.default_rng(0)
    for _ in range(200):
        colour, background = rng.choice(list(shapes.COLOURS), size=2, replace=False)
        centre, corners = shapes.centre_and_corner_colours(shapes.draw(colour, shape, background, rng))
        assert (centre, corners) == (colour, [background] * 4)


def test_the_default_model_draws_the_asked_colours_at_20_steps(pipe):
    prompts = [shapes.prompt(colour, shape, background) for colour, shape, background in CASES]
    with torch.inference_mode():
        images = pipe(
            prompts,
            width=BUILTIN_DEFAULTS["width"],
            height=BUILTIN_DEFAULTS["height"],
            num_inference_steps=20,
            generator=torch.Generator().manual_seed(0),
            output_type="np",
            **BUILTIN_CALL_DEFAULTS,
        ).images
    assert images.shape == (18, 64, 64, 3)
    wrong = []
    for (colour, shape, background), image in zip(CASES, images, strict=True):
        centre, corners = shapes.centre_and_corner_colours(np.round(image * 255).astype(np.uint8))
        if centre != colour or corners != [background] * 4:
            wrong.append(f"{shapes.prompt(colour, shape, background)}: centre {centre}, corners {corners}")
    assert len(wrong) <= len(CASES) * 0.1, wrong  # at least 90 % right


def test_the_prompt_decides_the_image(pipe):
    """The same seed with two prompts gives two images, each in its own colours."""
    with torch.inference_mode():
        images = pipe(
            [shapes.prompt("red", "circle", "blue"), shapes.prompt("blue", "circle", "red")],
            width=64,
            height=64,
            num_inference_steps=20,
            generator=[torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)],
            output_type="np",
            **BUILTIN_CALL_DEFAULTS,
        ).images
    first, second = (shapes.centre_and_corner_colours(np.round(i * 255).astype(np.uint8)) for i in images)
    assert first == ("red", ["blue"] * 4) and second == ("blue", ["red"] * 4)


def test_every_step_mask_preset_stays_within_25_db_of_full_compute(pipe):
    """Cached vs full compute at 28 steps (scripts/bench_fidelity.py has the full table)."""
    prompts = shapes.prompt_set(4)

    def run() -> np.ndarray:
        with torch.inference_mode():
            images = pipe(
                prompts,
                width=64,
                height=64,
                num_inference_steps=28,
                generator=[torch.Generator().manual_seed(seed) for seed in range(len(prompts))],
                output_type="np",
                **BUILTIN_CALL_DEFAULTS,
            ).images
        return np.round(images * 255).astype(np.uint8)

    reference = run()
    for policy in cache.MASK_POLICIES:
        mask = list(cache.steps_mask(total_steps=28, mask_policy=policy))
        config = cache.DBCacheConfig(
            Fn_compute_blocks=1, Bn_compute_blocks=0, steps_computation_mask=mask, steps_computation_policy="static"
        )
        cache.enable_cache(pipe, config)
        try:
            images = run()
            assert len(cache.summary(pipe, logging=False)[0].cached_steps) == 28 - sum(mask)
        finally:
            cache.disable_cache(pipe)
        mean = np.mean([psnr(image, full) for image, full in zip(images, reference, strict=True)])
        assert mean >= 25.0, f"{policy}: {mean:.1f} dB"
