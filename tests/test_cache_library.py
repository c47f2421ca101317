"""The cache library on its own, on real tiny diffusers pipelines and synthetic block stacks."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from tiny_families.wan import build_wan22
from tiny_pipelines import build_tiny_flux, build_tiny_wan, run_flux, run_wan

from engine_service import cache
from engine_service.cache import (
    BlockAdapter,
    DBCacheConfig,
    DBPruneConfig,
    ForwardPattern,
    ParamsModifier,
    TaylorSeerCalibratorConfig,
    steps_mask,
)


@pytest.fixture(scope="module")
def flux():
    pipe = build_tiny_flux()
    yield pipe
    cache.disable_cache(pipe)


@pytest.fixture(scope="module")
def flux_reference(flux):
    return run_flux(flux)


@pytest.fixture(scope="module")
def wan():
    pipe = build_tiny_wan()
    yield pipe
    cache.disable_cache(pipe)


@pytest.fixture(autouse=True)
def _clean(flux, wan):
    yield
    cache.disable_cache(flux)
    cache.disable_cache(wan)


def _only(stats: list[cache.CacheStats]) -> cache.CacheStats:
    assert len(stats) == 1, [s.name for s in stats]
    return stats[0]


def _longest_run(steps: list[int]) -> int:
    longest = run = 0
    previous = None
    for step in steps:
        run = run + 1 if previous is not None and step == previous + 1 else 1
        longest = max(longest, run)
        previous = step
    return longest


# -- step masks --------------------------------------------------------------------------------


def test_mask_presets_compute_18_15_11_8_of_28_steps():
    expected = {
        "slow": "1111111101110011100110010001",
        "medium": "1111110110001100011000110001",
        "fast": "1111110100010000100000100001",
        "ultra": "1111001000001000000100000001",
    }
    for policy, counts in zip(expected, (18, 15, 11, 8), strict=True):
        mask = steps_mask(total_steps=28, mask_policy=policy)
        assert "".join(map(str, mask)) == expected[policy]
        assert sum(mask) == counts


def test_masks_scale_to_other_step_counts_and_end_with_a_computed_step():
    assert sum(steps_mask(total_steps=50, mask_policy="fast")) == 20
    assert sum(steps_mask(total_steps=50, mask_policy="ultra")) == 14
    assert steps_mask(total_steps=9, mask_policy="ultra") == [1, 1, 1, 0, 0, 1, 0, 0, 1]
    for total in range(1, 80):
        for policy in cache.MASK_POLICIES:
            mask = steps_mask(total_steps=total, mask_policy=policy)
            assert len(mask) == total and mask[-1] == 1
    assert steps_mask([4, 2], [1, 3], total_steps=9) == [1, 1, 1, 1, 0, 1, 1, 0, 0]
    with pytest.raises(ValueError, match="mask_policy"):
        steps_mask(total_steps=28, mask_policy="warp")
    with pytest.raises(ValueError, match="cover"):
        steps_mask([1], [1], total_steps=5)


# -- DBCache on FLUX (one group: double- then single-stream blocks) ---------------------------


def test_threshold_zero_is_bit_identical_to_no_cache(flux, flux_reference):
    cache.enable_cache(flux, DBCacheConfig(Fn_compute_blocks=1, residual_diff_threshold=0.0, max_warmup_steps=0))
    assert torch.equal(run_flux(flux), flux_reference)
    stats = _only(cache.summary(flux, logging=False))
    assert stats.cached_steps == [] and stats.computed_steps == 8


def test_threshold_one_caches_every_step_after_warmup(flux, flux_reference):
    cache.enable_cache(flux, DBCacheConfig(Fn_compute_blocks=1, residual_diff_threshold=1.0, max_warmup_steps=3))
    output = run_flux(flux)
    stats = _only(cache.summary(flux, logging=False))
    assert stats.name == "transformer_blocks+single_transformer_blocks"
    assert stats.cached_steps == [3, 4, 5, 6, 7] and stats.computed_steps == 3
    assert not torch.equal(output, flux_reference)


def test_flux_blocks_form_one_group_and_fn_counts_from_the_first_double_block(flux, flux_reference):
    # 2 double + 4 single blocks: Fn=3 reaches into the single-stream list; Fn+Bn=6 leaves nothing to cache.
    cache.enable_cache(flux, DBCacheConfig(Fn_compute_blocks=3, Bn_compute_blocks=2, residual_diff_threshold=0.0))
    assert torch.equal(run_flux(flux), flux_reference)
    with pytest.raises(ValueError, match="exceeds the 6 blocks"):
        cache.enable_cache(flux, DBCacheConfig(Fn_compute_blocks=5, Bn_compute_blocks=2))


def test_dynamic_decisions_follow_the_relative_l1_diff(flux):
    cache.enable_cache(flux, DBCacheConfig(Fn_compute_blocks=1, residual_diff_threshold=0.3, max_warmup_steps=2))
    run_flux(flux)
    stats = _only(cache.summary(flux, logging=False))
    diffs = {int(k): v for k, v in stats.residual_diffs.items()}
    assert sorted(diffs) == list(range(2, 8))
    assert stats.cached_steps == [s for s, d in sorted(diffs.items()) if d < 0.3]
    assert all(0 < d < 10 for d in diffs.values())


def test_max_continuous_cached_steps_two_never_caches_three_in_a_row(flux):
    cache.enable_cache(
        flux,
        DBCacheConfig(
            Fn_compute_blocks=1, residual_diff_threshold=1.0, max_warmup_steps=1, max_continuous_cached_steps=2
        ),
    )
    run_flux(flux, steps=12)
    stats = _only(cache.summary(flux, logging=False))
    assert stats.cached_steps == [1, 2, 4, 5, 7, 8, 10, 11]
    assert _longest_run(stats.cached_steps) == 2


def test_caps_warmup_interval_and_accumulated_diff(flux):
    cache.enable_cache(
        flux,
        DBCacheConfig(Fn_compute_blocks=1, residual_diff_threshold=1.0, max_warmup_steps=4, warmup_interval=2),
    )
    run_flux(flux)
    assert _only(cache.summary(flux, logging=False)).cached_steps == [1, 3, 4, 5, 6, 7]
    cache.enable_cache(
        flux, DBCacheConfig(Fn_compute_blocks=1, residual_diff_threshold=1.0, max_warmup_steps=2, max_cached_steps=3)
    )
    run_flux(flux)
    assert _only(cache.summary(flux, logging=False)).cached_steps == [2, 3, 4]
    cache.enable_cache(
        flux,
        DBCacheConfig(
            Fn_compute_blocks=1,
            residual_diff_threshold=0.99,
            max_warmup_steps=2,
            max_accumulated_residual_diff_threshold=0.5,
        ),
    )
    run_flux(flux)
    stats = _only(cache.summary(flux, logging=False))
    diffs = [stats.residual_diffs[str(s)] for s in range(2, 8) if str(s) in stats.residual_diffs]
    seen = 0.0
    for step in range(2, 8):
        if seen >= 0.5:
            assert step not in stats.cached_steps and str(step) not in stats.residual_diffs
        else:
            seen += stats.residual_diffs[str(step)]
    assert diffs and sum(diffs) >= 0.5


def test_static_mask_caches_exactly_the_zero_steps_and_dynamic_still_tests(flux):
    mask = steps_mask(total_steps=8, mask_policy="ultra")
    zeros = [i for i, m in enumerate(mask) if m == 0]
    cache.enable_cache(
        flux,
        DBCacheConfig(Fn_compute_blocks=1, steps_computation_mask=mask, steps_computation_policy="static"),
    )
    run_flux(flux)
    stats = _only(cache.summary(flux, logging=False))
    assert stats.cached_steps == zeros and stats.residual_diffs == {}
    cache.enable_cache(
        flux,
        DBCacheConfig(Fn_compute_blocks=1, residual_diff_threshold=0.0, steps_computation_mask=mask),
    )
    run_flux(flux)
    assert _only(cache.summary(flux, logging=False)).cached_steps == []


def test_a_run_told_its_step_count_fits_the_step_mask_to_the_steps_that_run(flux):
    """set_run_steps: the next run has 4 steps (a loop that leaves out some of its timesteps), so the
    4-entry mask applies as given; the run after it counts its 5 timesteps and resamples the mask."""
    mask = [1, 1, 0, 1]
    cache.enable_cache(
        flux,
        DBCacheConfig(
            Fn_compute_blocks=1,
            residual_diff_threshold=0.0,
            steps_computation_mask=mask,
            steps_computation_policy="static",
        ),
    )
    cache.set_run_steps(flux, [4])
    run_flux(flux, steps=5)
    assert _only(cache.summary(flux, logging=False)).cached_steps == [2]
    run_flux(flux, steps=5)  # resampled to 5 steps: 1 1 1 0 1
    assert _only(cache.summary(flux, logging=False)).cached_steps == [3]
    with pytest.raises(ValueError, match="at least one step"):
        cache.set_run_steps(flux, [4, 0])
    cache.disable_cache(flux)
    with pytest.raises(ValueError, match="cache is enabled"):
        cache.set_run_steps(flux, [4])


def test_a_preset_mask_follows_the_step_count_of_each_call(flux):
    cache.enable_cache(
        flux,
        DBCacheConfig(
            Fn_compute_blocks=1,
            steps_computation_mask=steps_mask(total_steps=28, mask_policy="fast"),
            steps_computation_policy="static",
        ),
    )
    run_flux(flux, steps=12)
    zeros = [i for i, m in enumerate(steps_mask(total_steps=12, mask_policy="fast")) if m == 0]
    assert _only(cache.summary(flux, logging=False)).cached_steps == zeros


def test_calibrators_change_what_is_reused_not_when(flux):
    mask = steps_mask(total_steps=8, mask_policy="fast")
    config = DBCacheConfig(Fn_compute_blocks=1, steps_computation_mask=mask, steps_computation_policy="static")
    cache.enable_cache(flux, config)
    plain = run_flux(flux)
    plain_steps = _only(cache.summary(flux, logging=False)).cached_steps
    outputs = []
    for calibrator in (TaylorSeerCalibratorConfig(taylorseer_order=1), cache.FoCaCalibratorConfig()):
        cache.enable_cache(flux, config, calibrator_config=calibrator)
        outputs.append(run_flux(flux))
        assert _only(cache.summary(flux, logging=False)).cached_steps == plain_steps
    assert not torch.equal(outputs[0], plain) and not torch.equal(outputs[1], plain)


def test_disable_restores_the_modules_exactly_and_enabling_again_works(flux, flux_reference):
    transformer, scheduler = flux.transformer, flux.scheduler
    before = (dict(transformer.__dict__), dict(scheduler.__dict__), list(transformer.named_modules()))
    config = DBCacheConfig(Fn_compute_blocks=1, residual_diff_threshold=0.3, max_warmup_steps=2)
    cache.enable_cache(flux, config)
    first = run_flux(flux)
    first_steps = _only(cache.summary(flux, logging=False)).cached_steps
    assert cache.is_cached(flux) and "forward" in transformer.__dict__
    cache.disable_cache(flux)
    assert not cache.is_cached(flux)
    assert transformer.__dict__.keys() == before[0].keys() and scheduler.__dict__.keys() == before[1].keys()
    assert list(transformer.named_modules()) == before[2]
    assert torch.equal(run_flux(flux), flux_reference)
    cache.enable_cache(flux, config)
    assert torch.equal(run_flux(flux), first)
    assert _only(cache.summary(flux, logging=False)).cached_steps == first_steps


def test_state_resets_at_every_call_even_after_a_failure(flux):
    config = DBCacheConfig(Fn_compute_blocks=1, residual_diff_threshold=0.3, max_warmup_steps=2)
    cache.enable_cache(flux, config)
    first = run_flux(flux)
    first_steps = _only(cache.summary(flux, logging=False)).cached_steps

    calls = {"n": 0}

    def fail_midway(module, args):
        calls["n"] += 1
        if calls["n"] == 5:
            raise RuntimeError("injected failure")

    hook = flux.transformer.single_transformer_blocks[1].register_forward_pre_hook(fail_midway)
    try:
        with pytest.raises(RuntimeError, match="injected"):
            run_flux(flux, seed=9)
    finally:
        hook.remove()
    assert torch.equal(run_flux(flux), first)
    assert _only(cache.summary(flux, logging=False)).cached_steps == first_steps


def test_a_deep_copy_of_the_scheduler_steps_on_its_own_and_leaves_the_run_alone(flux):
    # LTX-2 deep-copies its scheduler and steps the copy for its audio track, beside the original.
    config = DBCacheConfig(Fn_compute_blocks=1, residual_diff_threshold=1.0, max_warmup_steps=2)
    cache.enable_cache(flux, config)
    run_flux(flux)
    expected = _only(cache.summary(flux, logging=False)).cached_steps
    twin = copy.deepcopy(flux.scheduler)
    twin.set_timesteps(3)
    assert len(twin.timesteps) == 3 and len(flux.scheduler.timesteps) == 8
    sample = torch.zeros(1, 4)
    twin.step(torch.ones(1, 4), twin.timesteps[0], sample)
    assert twin.step_index == 1 and flux.scheduler.step_index == 8

    def step_a_copy_too(pipe, index, timestep, callback_kwargs):
        if index == 0:
            pipe._twin = copy.deepcopy(pipe.scheduler)
            pipe._twin.set_timesteps(8)
        pipe._twin.step(torch.zeros(1, 4), pipe._twin.timesteps[index], sample)
        return callback_kwargs

    with torch.inference_mode():
        flux(
            "a red circle",
            width=64,
            height=64,
            num_inference_steps=8,
            guidance_scale=3.5,
            max_sequence_length=64,
            generator=torch.Generator().manual_seed(3),
            callback_on_step_end=step_a_copy_too,
        )
    assert _only(cache.summary(flux, logging=False)).cached_steps == expected
    assert flux._twin.step_index == 8
    del flux._twin


# -- CFG as a second transformer call (Wan) -----------------------------------------------------


def test_wan_keeps_separate_state_per_cfg_branch_detected_from_the_calls(wan):
    reference = run_wan(wan)
    cache.enable_cache(wan, DBCacheConfig(Fn_compute_blocks=1, residual_diff_threshold=0.0))
    assert torch.equal(run_wan(wan), reference)
    cache.enable_cache(wan, DBCacheConfig(Fn_compute_blocks=1, residual_diff_threshold=1.0, max_warmup_steps=3))
    run_wan(wan)
    stats = _only(cache.summary(wan, logging=False))
    assert stats.cached_steps == list(range(3, 10)) and stats.cfg_cached_steps == list(range(3, 10))
    assert stats.computed_steps == 3 and stats.cfg_computed_steps == 3
    cache.enable_cache(wan, DBCacheConfig(Fn_compute_blocks=1, residual_diff_threshold=0.1, max_warmup_steps=2))
    run_wan(wan)
    stats = _only(cache.summary(wan, logging=False))
    assert set(stats.residual_diffs) == set(stats.cfg_residual_diffs) == {str(s) for s in range(2, 10)}
    assert stats.residual_diffs != stats.cfg_residual_diffs
    main, cfg = cache.step_outcomes(wan, 5)
    assert main is not None and cfg is not None


def test_two_experts_are_both_cached_each_in_its_own_context():
    # Wan 2.2: `transformer` runs the 3 high-noise steps, `transformer_2` the 3 others.
    wan22 = build_wan22()
    reference = run_wan(wan22, steps=6)
    cache.enable_cache(wan22, DBCacheConfig(Fn_compute_blocks=1, residual_diff_threshold=0.0))
    assert torch.equal(run_wan(wan22, steps=6), reference)
    cache.enable_cache(wan22, DBCacheConfig(Fn_compute_blocks=1, residual_diff_threshold=1.0, max_warmup_steps=1))
    assert not torch.equal(run_wan(wan22, steps=6), reference)
    high, low = cache.summary(wan22, logging=False)
    assert (high.name, low.name) == ("blocks", "transformer_2.blocks")
    # Steps are the pipeline's; the low-noise expert computes its first step (no Fn residual of
    # its own to compare with), then caches.
    assert high.cached_steps == high.cfg_cached_steps == [1, 2]
    assert low.cached_steps == low.cfg_cached_steps == [4, 5]
    for stats in (high, low):
        assert stats.computed_steps == stats.cfg_computed_steps == 1
    outcomes = [cache.step_outcomes(wan22, step) for step in range(6)]
    assert [(main.cached, cfg.cached) for main, cfg in outcomes] == [(False, False)] + [(True, True)] * 2 + [
        (False, False)
    ] + [(True, True)] * 2
    cache.disable_cache(wan22)
    assert torch.equal(run_wan(wan22, steps=6), reference)


def _cached_pipeline_steps(pipe, steps: int) -> tuple[list[int], list[int]]:
    outcomes = [cache.step_outcomes(pipe, step) for step in range(steps)]
    return [s for s, (main, _) in enumerate(outcomes) if main.cached], [
        s for s, (_, cfg) in enumerate(outcomes) if cfg is not None and cfg.cached
    ]


def test_two_experts_follow_the_mask_and_caps_of_the_request_pipeline_steps():
    wan22 = build_wan22()  # 12 steps: the high-noise expert runs steps 0-5, the low-noise one 6-11
    mask = cache.steps_mask(mask_policy="fast", total_steps=12)
    assert "".join(map(str, mask)) == "111010010011"
    cache.enable_cache(
        wan22, DBCacheConfig(Fn_compute_blocks=1, steps_computation_mask=mask, steps_computation_policy="static")
    )
    run_wan(wan22, steps=12)
    high, low = cache.summary(wan22, logging=False)
    assert high.cached_steps == high.cfg_cached_steps == [3, 5]
    # Step 6 is the low-noise expert's first: it reuses what the high-noise expert stored last.
    assert low.cached_steps == low.cfg_cached_steps == [6, 8, 9]
    assert _cached_pipeline_steps(wan22, 12) == ([3, 5, 6, 8, 9], [3, 5, 6, 8, 9])
    assert cache.step_outcomes(wan22, 11)[0].cached is False
    # Caps count the request: 2 cached steps per CFG branch over both experts, none in a row.
    for caps, expected in (
        ({"max_cached_steps": 2}, [1, 2]),
        ({"max_continuous_cached_steps": 1}, [1, 3, 5, 7, 9, 11]),
    ):
        cache.enable_cache(
            wan22, DBCacheConfig(Fn_compute_blocks=1, residual_diff_threshold=1.0, max_warmup_steps=1, **caps)
        )
        run_wan(wan22, steps=12)
        assert _cached_pipeline_steps(wan22, 12) == (expected, expected), caps
    cache.disable_cache(wan22)


def test_one_shared_state_when_separate_cfg_is_off(wan):
    cache.enable_cache(
        wan,
        DBCacheConfig(Fn_compute_blocks=1, residual_diff_threshold=1.0, max_warmup_steps=2, enable_separate_cfg=False),
    )
    run_wan(wan, steps=5)
    stats = _only(cache.summary(wan, logging=False))
    # Every transformer call is a step of its own: 10 calls, 2 of warmup.
    assert stats.cached_steps == list(range(2, 10)) and stats.cfg_cached_steps == []
    # Pipeline step 0 ran both of its calls (warmup): it is reported computed; step 1 cached both.
    assert [cache.step_outcomes(wan, step)[0].cached for step in range(5)] == [False, True, True, True, True]


# -- block groups, modifiers, pruning ---------------------------------------------------------


def test_params_modifiers_set_each_group_apart(flux):
    adapter = BlockAdapter(pipe=flux, blocks_name=["transformer_blocks", "single_transformer_blocks"])
    cache.enable_cache(
        adapter,
        DBCacheConfig(Fn_compute_blocks=1, residual_diff_threshold=1.0, max_warmup_steps=2),
        params_modifiers=[
            ParamsModifier(cache_config=DBCacheConfig().reset(residual_diff_threshold=0.0)),
            ParamsModifier(cache_config=DBCacheConfig().reset(max_warmup_steps=4)),
        ],
    )
    run_flux(flux)
    double, single = cache.summary(flux, logging=False)
    assert (double.name, single.name) == ("transformer_blocks", "single_transformer_blocks")
    assert double.cached_steps == [] and single.cached_steps == [4, 5, 6, 7]
    with pytest.raises(ValueError, match="one ParamsModifier per block group"):
        cache.enable_cache(adapter, DBCacheConfig(), params_modifiers=[ParamsModifier()])


def test_dbprune_prunes_per_block_outside_fn_bn_and_protected_ids(flux, flux_reference):
    cache.enable_cache(flux, DBPruneConfig(Fn_compute_blocks=1, Bn_compute_blocks=1, residual_diff_threshold=0.0))
    assert torch.equal(run_flux(flux), flux_reference)
    cache.enable_cache(
        flux,
        DBPruneConfig(
            Fn_compute_blocks=1,
            Bn_compute_blocks=1,
            residual_diff_threshold=1.0,
            max_warmup_steps=2,
            non_prune_block_ids=[2],
        ),
    )
    run_flux(flux)
    stats = _only(cache.summary(flux, logging=False))
    # 6 blocks: 0 is Fn, 5 is Bn, 2 is protected: blocks 1, 3, 4 may prune.
    assert stats.actual_blocks == [3] * 8
    assert stats.pruned_blocks == [0, 0, 3, 3, 3, 3, 3, 3]
    assert stats.cached_steps == [2, 3, 4, 5, 6, 7]
    assert stats.pruned_ratio == pytest.approx(18 / 24)
    cache.enable_cache(flux, DBPruneConfig(Fn_compute_blocks=1, residual_diff_threshold=0.4, max_warmup_steps=2))
    run_flux(flux)
    stats = _only(cache.summary(flux, logging=False))
    assert all(isinstance(v, list) for v in stats.residual_diffs.values())


def test_cache_stats_report_a_table(flux):
    cache.enable_cache(flux, DBCacheConfig(Fn_compute_blocks=1, residual_diff_threshold=0.3, max_warmup_steps=2))
    run_flux(flux)
    table = _only(cache.summary(flux, logging=False)).table(details=True)
    assert "DBCache_F1B0_W2I1M0MC0_R0.3" in table and "| Cached steps | Diffs P00" in table


# -- synthetic block stacks: every forward pattern, exact calibrators --------------------------


class _Block(torch.nn.Module):
    """A block whose residual is known: ``scale * polynomial(t)`` on H, and on E where it has one."""

    def __init__(self, pattern: ForwardPattern, coefficients: tuple[float, ...], index: int):
        super().__init__()
        self.pattern = pattern
        self.coefficients = coefficients
        self.index = index

    def residual(self, t: float) -> float:
        return sum(c * t**i for i, c in enumerate(self.coefficients)) * (self.index + 1)


def _make_block_class(pattern: ForwardPattern):
    """A block class with the forward signature and return order of ``pattern``."""
    if pattern.takes_encoder:
        if pattern == ForwardPattern.Pattern_0:

            def forward(self, hidden_states, encoder_hidden_states, t):
                r = self.residual(t)
                hidden_states = hidden_states + r
                encoder_hidden_states = encoder_hidden_states - r
                return hidden_states, encoder_hidden_states

        elif pattern == ForwardPattern.Pattern_1:

            def forward(self, hidden_states, encoder_hidden_states, t):
                r = self.residual(t)
                hidden_states = hidden_states + r
                encoder_hidden_states = encoder_hidden_states - r
                return encoder_hidden_states, hidden_states

        else:

            def forward(self, hidden_states, encoder_hidden_states, t):
                hidden_states = hidden_states + self.residual(t) + 0 * encoder_hidden_states.mean()
                return hidden_states

    elif pattern == ForwardPattern.Pattern_3:

        def forward(self, hidden_states, t):
            hidden_states = hidden_states + self.residual(t)
            return hidden_states

    elif pattern == ForwardPattern.Pattern_4:

        def forward(self, hidden_states, t):
            encoder_hidden_states = hidden_states * 0 - self.residual(t)
            hidden_states = hidden_states + self.residual(t)
            return hidden_states, encoder_hidden_states

    else:

        def forward(self, hidden_states, t):
            encoder_hidden_states = hidden_states * 0 - self.residual(t)
            hidden_states = hidden_states + self.residual(t)
            return encoder_hidden_states, hidden_states

    return type(f"Block{pattern.name}", (_Block,), {"forward": forward})


class _Stack(torch.nn.Module):
    """A transformer-shaped module: a loop over ``blocks`` called like diffusers calls them."""

    def __init__(self, pattern: ForwardPattern, coefficients=(1.0,), num_blocks: int = 4):
        super().__init__()
        block_class = _make_block_class(pattern)
        self.pattern = pattern
        self.blocks = torch.nn.ModuleList(block_class(pattern, coefficients, i) for i in range(num_blocks))

    def forward(self, hidden_states, encoder_hidden_states, t):
        for block in self.blocks:
            if self.pattern.takes_encoder:
                out = block(hidden_states=hidden_states, encoder_hidden_states=encoder_hidden_states, t=t)
            else:
                out = block(hidden_states, t=t)
            if isinstance(out, torch.Tensor):
                hidden_states = out
            elif self.pattern.Return_H_First:
                hidden_states, encoder_hidden_states = out
            else:
                encoder_hidden_states, hidden_states = out
        return hidden_states, encoder_hidden_states


@pytest.mark.parametrize("pattern", list(ForwardPattern), ids=lambda p: p.name)
def test_every_forward_pattern_is_detected_and_cached(pattern):
    stack = _Stack(pattern, coefficients=(1.0, 0.5))
    assert cache.detect_forward_pattern(stack.blocks[0]) is pattern
    h, e = torch.zeros(1, 3, 2), torch.zeros(1, 3, 2)
    reference = [stack(h, e, t) for t in range(6)]
    cache.enable_cache(stack, DBCacheConfig(Fn_compute_blocks=1, residual_diff_threshold=0.0, num_inference_steps=6))
    try:
        for t in range(6):
            got = stack(h, e, t)
            assert torch.equal(got[0], reference[t][0]) and torch.equal(got[1], reference[t][1])
        cache.refresh_context(
            stack, cache_config=DBCacheConfig().reset(residual_diff_threshold=1.0, max_warmup_steps=2)
        )
        outputs = [stack(h, e, t) for t in range(6)]
        assert _only(cache.summary(stack, logging=False)).cached_steps == [2, 3, 4, 5]
        # A cached step adds the last computed middle residual (step 1's) to this step's Fn output.
        middle = sum(b.residual(1) for b in stack.blocks[1:])
        assert torch.allclose(outputs[4][0], torch.full_like(h, stack.blocks[0].residual(4) + middle))
    finally:
        cache.disable_cache(stack)
    assert "forward" not in stack.__dict__


class _AudioVideoBlock(torch.nn.Module):
    """Like LTX-2's blocks: takes and returns the video and the audio hidden states, each updated
    from the other (cross-attention between the tracks), with the text a fixed argument."""

    def __init__(self, index: int):
        super().__init__()
        self.index = index

    def forward(self, hidden_states, audio_hidden_states, encoder_hidden_states, t):
        video = hidden_states + (self.index + 1) * t + 0.5 * audio_hidden_states.mean() + encoder_hidden_states
        audio_hidden_states = audio_hidden_states - (self.index + 1) * t + 0.25 * hidden_states.mean()
        return video, audio_hidden_states


class _AudioVideoStack(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.transformer_blocks = torch.nn.ModuleList(_AudioVideoBlock(i) for i in range(4))

    def forward(self, hidden_states, audio_hidden_states, t):
        text = torch.zeros_like(hidden_states)
        for block in self.transformer_blocks:
            hidden_states, audio_hidden_states = block(
                hidden_states=hidden_states, audio_hidden_states=audio_hidden_states, encoder_hidden_states=text, t=t
            )
        return hidden_states, audio_hidden_states


def test_a_second_stream_named_by_the_layout_is_carried_through_the_blocks_and_cached():
    stack = _AudioVideoStack()
    h, a = torch.zeros(1, 3, 2), torch.ones(1, 5, 2)
    reference = [stack(h, a, t) for t in range(6)]
    adapter = BlockAdapter(
        transformer=stack, forward_pattern=ForwardPattern.Pattern_0, encoder_name="audio_hidden_states"
    )
    config = DBCacheConfig(Fn_compute_blocks=1, residual_diff_threshold=0.0, num_inference_steps=6)
    cache.enable_cache(adapter, config)
    try:
        for t in range(6):
            got = stack(h, a, t)
            assert torch.equal(got[0], reference[t][0]) and torch.equal(got[1], reference[t][1])
        cache.refresh_context(
            stack, cache_config=DBCacheConfig().reset(residual_diff_threshold=1.0, max_warmup_steps=2)
        )
        outputs = [stack(h, a, t) for t in range(6)]
        assert _only(cache.summary(stack, logging=False)).cached_steps == [2, 3, 4, 5]
        # A cached step adds step 1's middle residual to both tracks of this step's Fn output.
        video_fn, audio_fn = stack.transformer_blocks[0](h, a, torch.zeros_like(h), 4)
        after_fn, after_fn_audio = stack.transformer_blocks[0](h, a, torch.zeros_like(h), 1)
        middle_video, middle_audio = reference[1][0] - after_fn, reference[1][1] - after_fn_audio
        assert torch.allclose(outputs[4][0], video_fn + middle_video)
        assert torch.allclose(outputs[4][1], audio_fn + middle_audio)
    finally:
        cache.disable_cache(stack)


def test_ltx2_carries_its_audio_as_the_second_stream_by_layout_data():
    assert cache.LAYOUT_STREAMS["LTX2VideoTransformer3DModel"] == "audio_hidden_states"
    assert cache.LAYOUT_PATTERNS["LTX2VideoTransformer3DModel"] == (ForwardPattern.Pattern_0,)


def test_kandinsky_caches_its_visual_blocks_only_and_kandinsky6_carries_its_audio_as_the_second_stream():
    from diffusers import Kandinsky5T2VPipeline
    from tiny_families.kandinsky5 import build_kandinsky5
    from tiny_families.kandinsky6 import build_kandinsky6

    from engine_service.cache.adapter import groups_for

    (k5,) = groups_for(build_kandinsky5(Kandinsky5T2VPipeline), None)
    (k6,) = groups_for(build_kandinsky6(), None)
    # Without the layout entries, each text-block list would be a group of its own, before the visual one.
    assert k5.names == k6.names == ("visual_transformer_blocks",)
    assert k6.pattern == ForwardPattern.Pattern_0 and k6.encoder_name == "aud"


class _TextFirstBlock(torch.nn.Module):
    """Like Cosmos 3's blocks: take the text tokens first and the generated tokens second, both
    batch-less ``[tokens, C]``, by position; the text attends only to itself (the same every step),
    the generated tokens read the text."""

    def __init__(self, index: int):
        super().__init__()
        self.index = index

    def forward(self, und_seq, gen_seq, rotary_emb):
        text = und_seq * 0.5 + rotary_emb
        generated = gen_seq * (1.1 + 0.1 * self.index) + text.mean() + rotary_emb
        return text, generated


class _TextFirstStack(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = torch.nn.ModuleList(_TextFirstBlock(i) for i in range(4))

    def forward(self, text, generated):
        for block in self.layers:
            text, generated = block(text, generated, 1.0)
        return text, generated


def test_a_layout_may_name_the_second_positional_stream_as_the_one_the_cache_decides_on():
    stack = _TextFirstStack()
    text = torch.ones(3, 2)
    # The generated tokens change a lot from step to step; the text never does.
    generated = [torch.full((5, 2), 10.0 * t**2) for t in range(5)]
    reference = [stack(text, g) for g in generated]
    adapter = BlockAdapter(
        transformer=stack, forward_pattern=ForwardPattern.Pattern_1, encoder_name="und_seq", hidden_name="gen_seq"
    )
    config = DBCacheConfig(Fn_compute_blocks=1, residual_diff_threshold=0.2, max_warmup_steps=1, num_inference_steps=5)
    cache.enable_cache(adapter, config)
    try:
        outputs = [stack(text, g) for g in generated]
        stats = _only(cache.summary(stack, logging=False))
        # Decided on the generated tokens: they moved, so nothing is cached (on the text, whose
        # residual never changes, every step after the warm-up would have been).
        assert stats.cached_steps == [] and all(diff > 0.2 for diff in stats.residual_diffs.values())
        for got, expected in zip(outputs, reference, strict=True):
            assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])
        cache.refresh_context(
            stack, cache_config=DBCacheConfig().reset(residual_diff_threshold=1.0, max_warmup_steps=2)
        )
        outputs = [stack(text, g) for g in generated]
        assert _only(cache.summary(stack, logging=False)).cached_steps == [2, 3, 4]
        # A cached step adds step 1's middle residuals to this step's Fn output, each to its own stream.
        text_fn, generated_fn = stack.layers[0](text, generated[4], 1.0)
        text_fn1, generated_fn1 = stack.layers[0](text, generated[1], 1.0)
        assert torch.allclose(outputs[4][0], text_fn + (reference[1][0] - text_fn1))
        assert torch.allclose(outputs[4][1], generated_fn + (reference[1][1] - generated_fn1))
    finally:
        cache.disable_cache(stack)


def test_a_transformer_of_the_cfg_branch_caches_as_that_branch_of_each_step():
    """Ideogram 4 runs its unconditional branch through a second, separately trained transformer
    every step: both are cached, the second as the step's CFG branch, in contexts of its own."""
    from tiny_families.ideogram4 import build_tiny_ideogram4

    pipe = build_tiny_ideogram4()

    def run():
        generator = torch.Generator().manual_seed(3)
        return pipe(
            prompt=["a red circle"],
            width=32,
            height=32,
            num_inference_steps=4,
            guidance_scale=7.0,
            guidance_schedule=None,
            max_sequence_length=64,
            generator=generator,
            output_type="pt",
        ).images

    reference = run()

    def config(threshold: float) -> DBCacheConfig:
        return DBCacheConfig(
            Fn_compute_blocks=1, Bn_compute_blocks=0, max_warmup_steps=1, residual_diff_threshold=threshold
        )

    try:
        cache.enable_cache(pipe, config(0.0))
        assert torch.equal(run(), reference)
        cache.enable_cache(pipe, config(1.0))
        cached = run()
        main, cfg = cache.summary(pipe, logging=False)
        assert (main.name, main.cached_steps, main.cfg_computed_steps) == ("layers", [1, 2, 3], 0)
        assert (cfg.name, cfg.cfg_cached_steps, cfg.computed_steps) == ("cfg_transformer.layers", [1, 2, 3], 0)
        assert all(cache.step_outcomes(pipe, step)[1].cached for step in (1, 2, 3))
        assert not torch.equal(cached, reference)
    finally:
        cache.disable_cache(pipe)


def test_cosmos3_decides_on_its_generated_tokens_by_layout_data():
    assert cache.LAYOUT_HIDDEN["Cosmos3OmniTransformer"] == "gen_seq"
    assert cache.LAYOUT_STREAMS["Cosmos3OmniTransformer"] == "und_seq"
    assert cache.LAYOUT_PATTERNS["Cosmos3OmniTransformer"] == (ForwardPattern.Pattern_1,)


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_taylorseer_is_exact_for_polynomial_residuals_of_its_order(order):
    coefficients = tuple(0.3 * (k + 1) * (-1) ** k for k in range(order + 1))
    stack = _Stack(ForwardPattern.Pattern_0, coefficients=coefficients, num_blocks=3)
    h, e = torch.zeros(1, 2, 2, dtype=torch.float64), torch.zeros(1, 2, 2, dtype=torch.float64)
    steps = 14
    reference = [stack(h, e, float(t)) for t in range(steps)]
    # Computed steps unevenly spaced (0..order + 2, then 9 and 12; differences start at step 2);
    # every other step is extrapolated.
    mask = [1 if t <= order + 2 or t in (9, 12) else 0 for t in range(steps)]
    cache.enable_cache(
        stack,
        DBCacheConfig(
            Fn_compute_blocks=1,
            steps_computation_mask=mask,
            steps_computation_policy="static",
            num_inference_steps=steps,
        ),
        calibrator_config=TaylorSeerCalibratorConfig(taylorseer_order=order, taylorseer_forecast="newton"),
    )
    try:
        outputs = [stack(h, e, float(t)) for t in range(steps)]
        assert _only(cache.summary(stack, logging=False)).cached_steps == [t for t in range(steps) if not mask[t]]
    finally:
        cache.disable_cache(stack)
    for t in range(steps):
        assert torch.allclose(outputs[t][0], reference[t][0], rtol=1e-9, atol=1e-7), t
        assert torch.allclose(outputs[t][1], reference[t][1], rtol=1e-9, atol=1e-7), t


def test_foca_is_exact_for_linear_residuals_within_its_horizon():
    stack = _Stack(ForwardPattern.Pattern_3, coefficients=(0.5, -0.25), num_blocks=3)
    h = torch.zeros(1, 2, 2, dtype=torch.float64)
    mask = [1, 1, 0, 0, 1, 0, 0, 1]
    reference = [stack(h, None, float(t)) for t in range(8)]
    cache.enable_cache(
        stack,
        DBCacheConfig(
            Fn_compute_blocks=1, steps_computation_mask=mask, steps_computation_policy="static", num_inference_steps=8
        ),
        calibrator_config=cache.FoCaCalibratorConfig(),
    )
    try:
        outputs = [stack(h, None, float(t)) for t in range(8)]
    finally:
        cache.disable_cache(stack)
    for t in range(8):
        assert torch.allclose(outputs[t][0], reference[t][0]), t


def test_taylorseer_calibrator_extrapolates_newton_polynomials_or_damps_the_higher_terms():
    calibrator = cache.TaylorSeerCalibrator(order=2, forecast="newton")
    for step in (2, 3, 5):
        calibrator.update(step, torch.tensor([float(step**2)]))
    assert calibrator.approximate(7).item() == pytest.approx(49.0)
    # The default forecast is the Taylor series at step 5: 25 + f[3,5] 2 + f[2,3,5] 2^2 = 25 + 16 + 4.
    damped = cache.TaylorSeerCalibrator(order=2)
    for step in (2, 3, 5):
        damped.update(step, torch.tensor([float(step**2)]))
    assert damped.approximate(7).item() == pytest.approx(45.0) and damped.forecast
    # Beyond the span its difference covers (5 - 2 = 3 steps) the quadratic term stops growing:
    # 25 + 8 * 5 + 1 * 3^2 at step 10 (undamped 25 + 40 + 25; the polynomial through the steps, 100).
    assert damped.approximate(10).item() == pytest.approx(74.0)
    assert calibrator.approximate(10).item() == pytest.approx(100.0)
    # Order 1 is the same line either way.
    for forecast in ("taylor", "newton"):
        line = cache.TaylorSeerCalibrator(order=1, forecast=forecast)
        for step in (3, 5):
            line.update(step, torch.tensor([float(step**2)]))
        assert line.approximate(8).item() == pytest.approx(25.0 + 8.0 * 3)
    # Steps 0 and 1 move too fast to extrapolate from: until step 2 is computed, a forecast is a reuse.
    calibrator.reset()
    for step in (0, 1):
        calibrator.update(step, torch.tensor([float(step)]))
    assert calibrator.approximate(2).item() == 1.0 and not calibrator.forecast
    calibrator.update(2, torch.tensor([2.0]))
    assert calibrator.approximate(3).item() == 2.0
    calibrator.update(3, torch.tensor([3.0]))
    assert calibrator.approximate(5).item() == pytest.approx(5.0)
    with pytest.raises(ValueError, match="between 1 and 4"):
        cache.TaylorSeerCalibrator(order=5)
    from engine_service.cache.calibrators import make_calibrator

    with pytest.raises(ValueError, match="calibrator_cache_type"):
        make_calibrator(TaylorSeerCalibratorConfig(calibrator_cache_type="hidden_states"))


class _TextDroppingBlock(torch.nn.Module):
    def __init__(self, seed: int):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(4, 4, generator=torch.Generator().manual_seed(seed)) * 0.3)

    def forward(self, hidden_states, encoder_hidden_states):
        context = encoder_hidden_states.mean(dim=1, keepdim=True)
        hidden_states = hidden_states + torch.tanh((hidden_states + context) @ self.weight)
        encoder_hidden_states = encoder_hidden_states + torch.tanh(encoder_hidden_states @ self.weight.T)
        return hidden_states, encoder_hidden_states


class _TextDroppingTransformer(torch.nn.Module):
    """Drops text tokens inside a run, as Qwen-Image 2 style text KV dropping does."""

    def __init__(self):
        super().__init__()
        self.transformer_blocks = torch.nn.ModuleList(_TextDroppingBlock(i) for i in range(4))

    def forward(self, hidden_states, encoder_hidden_states):
        for block in self.transformer_blocks:
            hidden_states, encoder_hidden_states = block(hidden_states, encoder_hidden_states)
        return hidden_states, encoder_hidden_states


@pytest.mark.parametrize(
    "calibrator",
    [None, TaylorSeerCalibratorConfig(taylorseer_order=1), TaylorSeerCalibratorConfig(taylorseer_order=2),
     cache.FoCaCalibratorConfig(), "dbprune"],
    ids=["none", "taylorseer1", "taylorseer2", "foca", "dbprune"],
)  # fmt: skip
def test_a_stored_residual_that_no_longer_fits_forces_a_compute(calibrator):
    transformer = _TextDroppingTransformer().eval()
    hidden, text = torch.randn(1, 5, 4), torch.randn(1, 6, 4)
    fields = {"Fn_compute_blocks": 1, "residual_diff_threshold": 1.0, "max_warmup_steps": 2, "num_inference_steps": 9}
    if calibrator == "dbprune":
        cache.enable_cache(transformer, DBPruneConfig(**fields))
    else:
        cache.enable_cache(transformer, DBCacheConfig(**fields), calibrator_config=calibrator)
    # Text tokens: 6 until step 3, then 4; from step 6 on a batch of two samples.
    inputs = [(hidden * (1 + 0.1 * t), text[:, : 6 if t < 4 else 4]) for t in range(6)]
    inputs += [
        (torch.cat([h, h]), torch.cat([e, e])) for h, e in [(hidden * (1 + 0.1 * t), text[:, :4]) for t in (6, 7, 8)]
    ]
    try:
        with torch.no_grad():
            outputs = [transformer(h, e) for h, e in inputs]
        cached = [cache.step_outcomes(transformer, t)[0].cached for t in range(9)]
    finally:
        cache.disable_cache(transformer)
    assert cached == [False, False, True, True, False, True, False, True, True]
    assert [tuple(o[1].shape) for o in outputs] == [(1, 6, 4)] * 4 + [(1, 4, 4)] * 2 + [(2, 4, 4)] * 3
    with torch.no_grad():  # the step where the text shrank is computed: the output is exact
        assert torch.allclose(outputs[4][0], transformer(*inputs[4])[0])


def test_a_calibrator_that_never_forecast_is_reported_inactive():
    stack = _Stack(ForwardPattern.Pattern_3, coefficients=(1.0, 0.5), num_blocks=3)
    h = torch.zeros(1, 2, 2)

    def run(max_cached_steps: int, max_continuous_cached_steps: int = -1) -> tuple[str, list]:
        cache.enable_cache(
            stack,
            DBCacheConfig(
                Fn_compute_blocks=1,
                residual_diff_threshold=1.0,
                max_warmup_steps=1,
                max_cached_steps=max_cached_steps,
                max_continuous_cached_steps=max_continuous_cached_steps,
                num_inference_steps=8,
            ),
            calibrator_config=TaylorSeerCalibratorConfig(taylorseer_order=1),
        )
        try:
            for t in range(8):
                stack(h, None, t)
            return cache.strify(stack), [cache.step_outcomes(stack, t)[0].calibrated for t in range(8)]
        finally:
            cache.disable_cache(stack)

    # Step 1 is the only cached step: one computed step to extrapolate from, the residual is reused.
    tag, calibrated = run(max_cached_steps=1)
    assert tag.endswith("_T0O1") and calibrated == [None, False] + [None] * 6
    tag, calibrated = run(max_cached_steps=-1, max_continuous_cached_steps=2)
    assert tag.endswith("_T1O1") and calibrated == [None, False, False, None, True, True, None, True]


def _run_stack(stack, config, steps: int, growth: float = 0.01) -> tuple[list[int], dict[str, float]]:
    """Run a bare stack on inputs that grow by ``growth`` per step; its cached steps and diffs."""
    h = torch.ones(1, 2, 2, dtype=torch.float64)
    cache.enable_cache(stack, config)
    try:
        outputs = [stack(h * (1 + growth * t), None, float(t)) for t in range(steps)]
        stats = _only(cache.summary(stack, logging=False))
    finally:
        cache.disable_cache(stack)
    assert all(torch.isfinite(o[0]).all() for o in outputs)
    return stats.cached_steps, stats.residual_diffs


def test_teacache_accumulates_the_rescaled_change_of_the_first_blocks_input():
    stack = _Stack(ForwardPattern.Pattern_3, coefficients=(1.0, 0.5), num_blocks=3)
    # No norm1 in these blocks: the signal is the first block's input, changing by ~1% a step.
    config = cache.TeaCacheConfig(residual_diff_threshold=0.025, num_inference_steps=8)
    cached, diffs = _run_stack(stack, config, 8)
    # 0 warms up; two steps of ~0.01 stay under 0.025, the third computes; the last step computes.
    assert cached == [1, 2, 4, 5]
    assert diffs["2"] == pytest.approx(diffs["1"] + 0.01 / 1.01, rel=1e-6) and diffs["3"] > 0.025
    # The polynomial rescales each change (here y = 2x): one step fits under the threshold.
    config = cache.TeaCacheConfig(residual_diff_threshold=0.025, num_inference_steps=8, teacache_coefficients=[2, 0])
    assert _run_stack(stack, config, 8)[0] == [1, 3, 5]
    config = cache.TeaCacheConfig(residual_diff_threshold=0.0, num_inference_steps=8)
    assert _run_stack(stack, config, 8)[0] == []


def test_magcache_follows_its_calibrated_curve_and_resamples_it():
    stack = _Stack(ForwardPattern.Pattern_3, coefficients=(1.0, 0.5), num_blocks=3)
    fields = {"residual_diff_threshold": 0.25, "num_inference_steps": 8, "magcache_retention_ratio": 0.0}
    # Ratio 0.9 per step: one step accumulates |1 - 0.9| = 0.1, two 0.1 + 0.19 = 0.29 > 0.25.
    cached, diffs = _run_stack(stack, cache.MagCacheConfig(magcache_ratios=[1.0] + [0.9] * 7, **fields), 8)
    assert cached == [1, 3, 5] and diffs["1"] == pytest.approx(0.1) and diffs["2"] == pytest.approx(0.29)
    # A curve of 4 steps is read at 8 points (step 2: 0.914); the first quarter of the steps computes.
    config = cache.MagCacheConfig(magcache_ratios=[1.0, 0.9, 0.9, 0.9], **{**fields, "magcache_retention_ratio": 0.25})
    cached, diffs = _run_stack(stack, config, 8)
    assert cached == [2, 4, 6] and diffs["2"] == pytest.approx(1 - (1 - 0.1 * 6 / 7))
    with pytest.raises(ValueError, match="magcache_ratios"):
        cache.enable_cache(stack, cache.MagCacheConfig(num_inference_steps=8))
    cache.disable_cache(stack)


def test_a_bare_transformer_starts_a_new_run_after_num_inference_steps():
    stack = _Stack(ForwardPattern.Pattern_3, num_blocks=3)
    h = torch.zeros(1, 2, 2)
    cache.enable_cache(
        stack,
        DBCacheConfig(Fn_compute_blocks=1, residual_diff_threshold=1.0, max_warmup_steps=2, num_inference_steps=4),
    )
    try:
        for _ in range(2):
            for t in range(4):
                stack(h, None, t)
            assert _only(cache.summary(stack, logging=False)).cached_steps == [2, 3]
        cache.refresh_context(stack, num_inference_steps=6)
        for t in range(6):
            stack(h, None, t)
        assert _only(cache.summary(stack, logging=False)).cached_steps == [2, 3, 4, 5]
    finally:
        cache.disable_cache(stack)


def test_relative_l1_is_zero_for_equal_tensors_and_scale_free():
    from engine_service.cache.context import relative_l1

    a = torch.randn(4, 8)
    assert relative_l1(a, a) == 0.0
    assert math.isclose(relative_l1(a, 2 * a), relative_l1(3 * a, 6 * a), rel_tol=1e-6)


def test_regional_compile_does_not_recompile_after_the_first_cached_request(flux):
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    for name in ("transformer_blocks", "single_transformer_blocks"):
        for block in getattr(flux.transformer, name):
            block.compile(backend="eager", dynamic=False)
    try:
        config = DBCacheConfig(Fn_compute_blocks=1, residual_diff_threshold=0.3, max_warmup_steps=2)
        cache.enable_cache(flux, config)
        run_flux(flux)
        graphs = counters["stats"]["unique_graphs"]
        assert graphs > 0
        run_flux(flux, seed=11)
        cache.disable_cache(flux)
        run_flux(flux)
        cache.enable_cache(flux, DBCacheConfig(Fn_compute_blocks=2, residual_diff_threshold=1.0, max_warmup_steps=1))
        run_flux(flux)
        assert counters["stats"]["unique_graphs"] == graphs
    finally:
        cache.disable_cache(flux)
        for name in ("transformer_blocks", "single_transformer_blocks"):
            for block in getattr(flux.transformer, name):
                block._compiled_call_impl = None
        torch._dynamo.reset()


def test_sample_groups_decide_on_their_own_as_they_would_alone(flux):
    config = DBCacheConfig(Fn_compute_blocks=1, residual_diff_threshold=0.3, max_warmup_steps=2)
    requests = [("a red circle", 1, 1), ("a blue square", 2, 2), ("green", 3, 1)]

    def run(batch):
        prompts = [prompt for prompt, _, outputs in batch for _ in range(outputs)]
        generators = []
        for _, seed, outputs in batch:
            generator = torch.Generator().manual_seed(seed)
            generators += [generator] * outputs
        with torch.inference_mode():
            return flux(
                prompts,
                width=64,
                height=64,
                num_inference_steps=12,
                guidance_scale=3.5,
                max_sequence_length=64,
                generator=generators,
                output_type="pt",
            ).images

    alone = []
    for request in requests:
        cache.enable_cache(flux, config)
        alone.append((run([request]), _only(cache.summary(flux, logging=False)).cached_steps))
    assert len({tuple(steps) for _, steps in alone}) == 3, "the requests should cache different steps"

    cache.enable_cache(flux, config)
    cache.set_sample_groups(flux, [outputs for _, _, outputs in requests])
    batched = run(requests)
    first = 0
    for group, (images, steps) in enumerate(alone):
        assert _only(cache.summary(flux, logging=False, sample_group=group)).cached_steps == steps
        assert torch.allclose(batched[first : first + len(images)], images, atol=1e-4)
        first += len(images)
    with pytest.raises(ValueError, match="does not split"):
        run(requests[:2])
    cache.enable_cache(flux, DBPruneConfig(Fn_compute_blocks=1))
    with pytest.raises(ValueError, match="DBPrune"):
        cache.set_sample_groups(flux, [1, 1])


class _SkipBlock(torch.nn.Module):
    """A block with a known residual that also takes a long skip from an earlier block."""

    def __init__(self, index: int):
        super().__init__()
        self.index = index
        self.tag = f"block {index}"

    def forward(self, hidden_states, t, skip=None):
        hidden_states = hidden_states + (self.index + 1) * (1.0 + 0.5 * t)
        if skip is not None:
            hidden_states = hidden_states + 0.25 * skip.mean(dim=(1, 2), keepdim=True)
        return hidden_states


class _SkipStack(torch.nn.Module):
    """A loop that works between blocks, like HunyuanDiT and HiDream: long skips from the first
    half into the second, and a per-block token concatenated before each block and cut after."""

    def __init__(self, num_blocks: int = 6):
        super().__init__()
        self.blocks = torch.nn.ModuleList(_SkipBlock(i) for i in range(num_blocks))

    def forward(self, hidden_states, t):
        self.seen = [type(block).__name__ for block in self.blocks]
        self.tags = (self.blocks[0].tag, self.blocks[-1].tag)  # as DiT reads blocks[0].norm1
        tokens, half, skips = hidden_states.shape[1], len(self.blocks) // 2, []
        for index, block in enumerate(self.blocks):
            extra = torch.full_like(hidden_states[:, :1], float(index))
            joined = torch.cat([hidden_states, extra], dim=1)
            skip = skips.pop() if index >= half and skips else None
            hidden_states = block(joined, t=t, skip=skip)[:, :tokens]
            if index < half:
                skips.append(hidden_states)
        return hidden_states


@pytest.mark.parametrize("config", [DBCacheConfig, DBPruneConfig], ids=["dbcache", "dbprune"])
def test_per_block_caching_keeps_the_loop_and_threshold_zero_is_exact(config):
    stack, h = _SkipStack(), torch.linspace(0, 1, 6).reshape(1, 3, 2)
    reference = [stack(h, t) for t in range(6)]
    adapter = BlockAdapter(transformer=stack, per_block=True)
    cache.enable_cache(adapter, config(Fn_compute_blocks=1, residual_diff_threshold=0.0, num_inference_steps=6))
    try:
        for t in range(6):
            assert torch.equal(stack(h, t), reference[t])
            assert stack.seen == ["BlockSlot"] * len(stack.blocks)
        assert _only(cache.summary(stack, logging=False)).cached_steps == []
    finally:
        cache.disable_cache(stack)
    assert "forward" not in stack.__dict__ and all(isinstance(b, _SkipBlock) for b in stack.blocks)


def test_per_block_caching_adds_the_middle_residual_at_the_first_middle_block():
    stack, h = _SkipStack(), torch.linspace(0, 1, 6).reshape(1, 3, 2)
    after_first: dict[int, torch.Tensor] = {}
    hook = stack.blocks[0].register_forward_hook(lambda m, args, out: after_first.__setitem__(len(after_first), out))
    reference = [stack(h, t) for t in range(6)]
    hook.remove()
    config = DBCacheConfig(Fn_compute_blocks=1, residual_diff_threshold=1.0, max_warmup_steps=2, num_inference_steps=6)
    cache.enable_cache(BlockAdapter(transformer=stack, per_block=True), config)
    try:
        outputs = [stack(h, t) for t in range(6)]
        assert _only(cache.summary(stack, logging=False)).cached_steps == [2, 3, 4, 5]
    finally:
        cache.disable_cache(stack)
    for t in (0, 1):
        assert torch.equal(outputs[t], reference[t])
    # Step 4 = block 0's output (the loop's cut applied) + the middle residual of step 1,
    # the last computed step: the final output minus block 0's output, both over the kept tokens.
    tokens = h.shape[1]
    middle = reference[1] - after_first[1][:, :tokens]
    assert torch.allclose(outputs[4], after_first[4][:, :tokens] + middle)
    assert not torch.allclose(outputs[4], reference[4])


def test_per_block_sample_groups_cache_as_each_sample_would_alone():
    stack = _SkipStack()
    samples = [torch.linspace(0, 1, 6).reshape(1, 3, 2), torch.linspace(-2, 4, 6).reshape(1, 3, 2)]
    config = DBCacheConfig(Fn_compute_blocks=1, residual_diff_threshold=1.0, max_warmup_steps=2, num_inference_steps=6)
    adapter = BlockAdapter(transformer=stack, per_block=True)
    alone = []
    for sample in samples:
        cache.enable_cache(adapter, config.copy())
        try:
            alone.append([stack(sample, t) for t in range(6)])
        finally:
            cache.disable_cache(stack)
    cache.enable_cache(adapter, config.copy())
    try:
        cache.set_sample_groups(stack, [1, 1])
        batched = [stack(torch.cat(samples), t) for t in range(6)]
        assert cache.summary(stack, logging=False, sample_group=1)[0].cached_steps == [2, 3, 4, 5]
    finally:
        cache.disable_cache(stack)
    for t in range(6):
        for row in (0, 1):
            assert torch.allclose(batched[t][row : row + 1], alone[row][t])


@pytest.mark.parametrize("per_block", [False, True])
def test_the_blocks_attributes_stay_readable_during_a_cached_call(per_block):
    stack = _SkipStack()
    config = DBCacheConfig(Fn_compute_blocks=1, num_inference_steps=2)
    cache.enable_cache(BlockAdapter(transformer=stack, per_block=per_block), config)
    try:
        stack(torch.zeros(1, 3, 2), 0)
    finally:
        cache.disable_cache(stack)
    # The whole-list runner stands at position 0 for the first block; each slot for its own block.
    assert stack.tags == ("block 0", "block 5" if per_block else "block 0")


def test_known_per_block_layouts_are_data():
    assert {"HunyuanDiT2DModel", "HiDreamImageTransformer2DModel"} <= cache.PER_BLOCK_LAYOUTS
    assert cache.LAYOUT_PATTERNS["HiDreamImageTransformer2DModel"] == (
        ForwardPattern.Pattern_0,
        ForwardPattern.Pattern_3,
    )
