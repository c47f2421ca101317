"""Migration parity with cache-dit 1.5: the same configuration caches the same steps.

Each case runs one tiny pipeline twice, through ``engine_service.cache`` and through
cache-dit, with the same DBCache configuration, and compares the cached steps, the
residual diffs and the output. TaylorSeer of order 1 is compared forecast by forecast
on the calibrator itself (bit for bit); higher orders damp differently by design.
"""

from __future__ import annotations

import os

import pytest
import torch
from tiny_pipelines import build_tiny_flux, build_tiny_wan, run_flux, run_wan

from engine_service import cache

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
