"""The cache on transformers whose loop adds hints between blocks (ControlNet residuals, VACE hints).

A toy stack adds a known hint after every block, as FLUX's and Qwen-Image's loops add
ControlNet residuals and Wan VACE's adds its control hints. At threshold 0 every block runs
as without a cache; on a cached step the stored middle residual already holds the hints of
the middle blocks, so each hint is counted exactly once: with the same inputs and hints, a
cached step gives the computed output (to float rounding). A runner that lets the loop add
the hints again on a cached step is off by the sum of the middle hints.
"""

from __future__ import annotations

import pytest
import torch

from engine_service import cache
from engine_service.cache import BlockAdapter, DBCacheConfig

BLOCKS = 6


class _Block(torch.nn.Module):
    def __init__(self, index: int):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(4, 4) * 0.3)

    def forward(self, hidden_states, t):
        return hidden_states + torch.tanh(hidden_states @ self.weight) * (1.0 + 0.1 * t)


class _HintStack(torch.nn.Module):
    """Adds ``hints[i // interval]`` after block i, as diffusers' ControlNet loops do."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.blocks = torch.nn.ModuleList(_Block(i) for i in range(BLOCKS))

    def forward(self, hidden_states, t, hints=None):
        for index, block in enumerate(self.blocks):
            hidden_states = block(hidden_states, t)
            if hints is not None:
                hidden_states = hidden_states + hints[index // (BLOCKS // len(hints))]
        return hidden_states


HIDDEN = torch.linspace(-1, 1, 24).reshape(1, 6, 4)
HINTS = [torch.full((1, 6, 4), 0.5 * (i + 1)) for i in range(3)]


def _run(adapter: BlockAdapter, config: DBCacheConfig, steps: int) -> tuple[list[torch.Tensor], list[int]]:
    stack = adapter.transformer
    cache.enable_cache(adapter, config)
    try:
        outputs = [stack(HIDDEN, 0.0, HINTS) for _ in range(steps)]
        return outputs, list(cache.summary(stack, logging=False)[0].cached_steps)
    finally:
        cache.disable_cache(stack)


@pytest.mark.parametrize(("fn", "bn"), [(1, 0), (2, 1), (1, 2)])
def test_hints_are_placed_exactly_once_on_computed_and_cached_steps(fn, bn):
    stack = _HintStack()
    reference = stack(HIDDEN, 0.0, HINTS)
    exact = DBCacheConfig(Fn_compute_blocks=fn, Bn_compute_blocks=bn, residual_diff_threshold=0.0)
    outputs, cached = _run(BlockAdapter(transformer=stack, hints=True), exact, 3)
    assert cached == [] and all(torch.equal(out, reference) for out in outputs)

    always = DBCacheConfig(Fn_compute_blocks=fn, Bn_compute_blocks=bn, residual_diff_threshold=1.0, max_warmup_steps=1)
    outputs, cached = _run(BlockAdapter(transformer=stack, hints=True), always, 3)
    assert cached == [1, 2]
    # Same inputs and hints every step: a cached step must give the computed output.
    for out in outputs:
        torch.testing.assert_close(out, reference, atol=1e-5, rtol=0)

    # Without hint placement, the loop adds the middle blocks' hints a second time.
    outputs, cached = _run(BlockAdapter(transformer=stack, per_block=True, hints=False), always, 3)
    assert cached == [1, 2]
    assert (outputs[1] - reference).abs().max() > 0.4


def test_a_pipeline_with_a_controlnet_caches_per_block_with_hints():
    class _Pipe:
        def __init__(self):
            self.transformer = _HintStack()
            self.controlnet = torch.nn.Linear(1, 1)

    pipe = _Pipe()
    (group,) = BlockAdapter(pipe=pipe).groups()
    assert group.hints and group.per_block
    pipe.controlnet = None
    (group,) = BlockAdapter(pipe=pipe).groups()
    assert not group.hints and not group.per_block
