"""Migration parity with cache-dit 1.5: the same configuration caches the same steps.

Each case runs one tiny pipeline twice, through ``engine_service.cache`` and through
cache-dit, with the same DBCache configuration, and compares the cached steps, the
residual diffs and the output. TaylorSeer of order 1 is compared forecast by forecast
on the calibrator itself (bit for bit); higher orders damp differently by design.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from diffusers import FluxPipeline
from tiny_pipelines import build_tiny_flux, build_tiny_wan, run_flux, run_wan

from engine_service import cache
from engine_service.metrics import psnr
from engine_service.models import shapes
from engine_service.models.builtin import BUILTIN_CALL_DEFAULTS, BUILTIN_DIR

os.environ.setdefault("CACHE_DIT_LOG_LEVEL", "error")
cache_dit = pytest.importorskip("cache_dit", reason="cache-dit is not installed (it comes with the test extra)")


@pytest.fixture(scope="module")
def flux():
    return build_tiny_flux()


@pytest.fixture(scope="module")
def wan():
    return build_tiny_wan()


def _both(pipe, run, **fields):
    base = {"Fn_compute_blocks": 1, "Bn_compute_blocks": 0, "max_warmup_steps": 2, **fields}
    cache.enable_cache(pipe, cache.DBCacheConfig(**base))
    try:
        ours = run(pipe), cache.summary(pipe, logging=False)
    finally:
        cache.disable_cache(pipe)
    cache_dit.enable_cache(pipe, cache_config=cache_dit.DBCacheConfig(**base))
    try:
        theirs = run(pipe), cache_dit.summary(pipe, logging=False)
    finally:
        cache_dit.disable_cache(pipe)
    return ours, theirs


def _assert_same(ours, theirs, cfg: bool = False):
    # cache-dit may add transformer-level entries after the one of the block list.
    (ours_out, (ours_stats,)), (their_out, their_entries) = ours, theirs
    their_stats = their_entries[0]
    assert ours_stats.cached_steps == their_stats.cached_steps
    assert ours_stats.residual_diffs.keys() == their_stats.residual_diffs.keys()
    for step, diff in ours_stats.residual_diffs.items():
        assert diff == pytest.approx(their_stats.residual_diffs[step], rel=1e-5)
    if cfg:
        assert ours_stats.cfg_cached_steps == their_stats.cfg_cached_steps
    assert torch.allclose(ours_out, their_out, atol=1e-6)


@pytest.mark.parametrize(
    "fields",
    [
        {"residual_diff_threshold": 0.3},
        {"residual_diff_threshold": 0.35, "max_continuous_cached_steps": 2},
        {"residual_diff_threshold": 0.35, "max_cached_steps": 3, "warmup_interval": 2, "max_warmup_steps": 4},
    ],
    ids=["threshold", "continuous cap", "caps and warmup interval"],
)
def test_flux_caches_the_same_steps_as_cache_dit(flux, fields):
    ours, theirs = _both(flux, lambda p: run_flux(p, steps=12), **fields)
    assert ours[1][0].cached_steps, "the case should cache something"
    _assert_same(ours, theirs)


def test_a_static_mask_caches_the_same_steps_as_cache_dit(flux):
    mask = list(cache.steps_mask(total_steps=12, mask_policy="fast"))
    ours, theirs = _both(
        flux, lambda p: run_flux(p, steps=12), steps_computation_mask=mask, steps_computation_policy="static"
    )
    _assert_same(ours, theirs)


def test_wan_cfg_branches_cache_the_same_steps_as_cache_dit(wan):
    ours, theirs = _both(wan, lambda p: run_wan(p, steps=12), residual_diff_threshold=0.1)
    assert ours[1][0].cfg_cached_steps, "the case should cache CFG calls"
    _assert_same(ours, theirs, cfg=True)


def test_taylorseer_order_1_forecasts_bit_for_bit_as_cache_dit():
    from cache_dit.caching.cache_contexts.calibrators import TaylorSeerCalibrator as TheirTaylorSeer

    ours, theirs = cache.TaylorSeerCalibrator(order=1), TheirTaylorSeer(n_derivatives=1)
    generator = torch.Generator().manual_seed(0)
    # Step 2 cached among the first steps, then gaps of 1 to 5 steps (a long one after unit-spaced steps).
    computed = {0, 1, 3, 4, 5, 10, 11, 13, 17, 22, 23}
    forecasts = 0
    for step in range(24):
        theirs.mark_step_begin()  # cache-dit counts every transformer call of the branch
        if step in computed:
            residual = torch.randn(2, 8, 4, generator=generator) * (1.0 + step)
            ours.update(step, residual)
            theirs.update(residual)
        else:
            assert torch.equal(ours.approximate(step), theirs.approximate()), step
            forecasts += ours.forecast
    assert forecasts == 24 - len(computed) - 1, "every cached step after step 3 should extrapolate"


def test_taylorseer_order_2_stays_closer_to_full_compute_than_cache_dit_after_a_long_gap():
    """The default model at threshold 0.30 computes steps 0-7, then about every 6th: the first
    forecast after the warm-up extrapolates a curvature measured over 2 steps across 6."""
    pipe = FluxPipeline.from_pretrained(BUILTIN_DIR, local_files_only=True)  # cache-dit patches it for good
    pipe.set_progress_bar_config(disable=True)
    prompts = shapes.prompt_set(2)

    def image(prompt: str, seed: int) -> np.ndarray:
        with torch.inference_mode():
            out = pipe(
                prompt, width=64, height=64, num_inference_steps=28, output_type="np",
                generator=torch.Generator().manual_seed(seed), **BUILTIN_CALL_DEFAULTS,
            ).images[0]  # fmt: skip
        return np.round(out * 255).astype(np.uint8)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # this small model runs fastest on one thread
    try:
        references = [image(prompt, seed) for seed, prompt in enumerate(prompts)]
        config = {"Fn_compute_blocks": 1, "Bn_compute_blocks": 0, "residual_diff_threshold": 0.30}
        scores = {}
        for library in (cache, cache_dit):
            library.enable_cache(
                pipe,
                cache_config=library.DBCacheConfig(**config),
                calibrator_config=library.TaylorSeerCalibratorConfig(taylorseer_order=2),
            )
            try:
                images = [image(prompt, seed) for seed, prompt in enumerate(prompts)]
                assert library.summary(pipe, logging=False)[0].cached_steps, "the case should cache"
            finally:
                library.disable_cache(pipe)
            scores[library.__name__] = np.mean([psnr(i, r) for i, r in zip(images, references, strict=True)])
    finally:
        torch.set_num_threads(threads)
    assert scores[cache.__name__] >= scores[cache_dit.__name__], scores
