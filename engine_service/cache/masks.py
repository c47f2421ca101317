"""Step computation masks: which denoising steps must run the full transformer.

A mask is a list with one 0/1 entry per step; 1 = compute. Presets are the
compute/cache bins of cache-dit for 28 steps (slow / medium / fast / ultra
compute 18 / 15 / 11 / 8 steps), scaled to other step counts by the same rules,
so the same preset gives the same mask in both libraries. The last step always
computes. Where cache-dit has no preset, ours are: 5 steps ``11101`` and 7 steps
``1111001`` for every policy, and fewer than 4 steps compute every step.

:func:`steps_mask` returns a :class:`StepsMask`, a ``list`` that remembers how it
was made, so a cache configured with a preset can rebuild it when a run uses a
different number of steps (:func:`fit_mask`).
"""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)

MASK_POLICIES = ("slow", "medium", "fast", "ultra")

_PRESETS_28 = {
    "slow": ([8, 3, 3, 2, 1, 1], [1, 2, 2, 2, 3]),
    "medium": ([6, 2, 2, 2, 2, 1], [1, 3, 3, 3, 3]),
    "fast": ([6, 1, 1, 1, 1, 1], [1, 3, 4, 5, 4]),
    "ultra": ([4, 1, 1, 1, 1], [2, 5, 6, 7]),
}
_PRESETS_9_TO_15 = {
    "slow": ([4, 2, 2, 2, 1], [1, 1, 1, 1]),
    "medium": ([4, 2, 1, 1, 1], [1, 1, 2, 2]),
    "fast": ([3, 1, 1, 1, 1], [1, 2, 2, 3]),
    "ultra": ([2, 1, 1, 1, 1], [1, 2, 3, 3]),
}
_PRESETS_9 = {
    "slow": ([5, 2, 1], [1]),
    "medium": ([5, 1, 1], [1, 1]),
    "fast": ([4, 1, 1], [1, 2]),
    "ultra": ([3, 1, 1], [2, 2]),
}
_PRESETS_8 = {
    "slow": ([5, 1, 1], [1]),
    "medium": ([4, 1, 1], [1, 1]),
    "fast": ([3, 1, 1], [1, 2]),
    "ultra": ([2, 1, 1], [2, 2]),
}
_CONSTANT_SHORT = {4: ([2, 1], [1]), 6: ([3, 1], [2])}
# Step counts cache-dit has no preset for; ours, the same for every policy.
_EXTRA_SHORT = {5: ([3, 1], [1]), 7: ([4, 1], [2])}


class StepsMask(list):
    """A step mask (a plain ``list`` of 0/1) that remembers the preset it came from."""

    def __init__(self, values, *, mask_policy: str | None = None, bins: tuple[list[int], list[int]] | None = None):
        super().__init__(values)
        self.mask_policy = mask_policy
        self.bins = bins

    def for_steps(self, total_steps: int) -> list[int]:
        """The same mask recipe for ``total_steps`` steps."""
        if self.mask_policy is not None:
            return steps_mask(total_steps=total_steps, mask_policy=self.mask_policy)
        if self.bins is not None:
            compute, cache = self.bins
            return steps_mask(compute, cache, total_steps=total_steps)
        return resample_mask(list(self), total_steps)


def _from_bins(compute_bins: list[int], cache_bins: list[int], total_steps: int | None) -> list[int]:
    if any(b < 0 for b in [*compute_bins, *cache_bins]):
        raise ValueError("compute_bins and cache_bins must be non-negative")
    available = sum(compute_bins) + sum(cache_bins)
    if total_steps is None:
        total_steps = available
    elif available < total_steps:
        raise ValueError(f"the bins cover {available} steps, fewer than total_steps={total_steps}")
    mask: list[int] = []
    compute, cache = list(compute_bins), list(cache_bins)
    while len(mask) < total_steps and (compute or cache):
        if compute:
            mask.extend([1] * compute.pop(0))
        if cache:
            mask.extend([0] * cache.pop(0))
    return mask[:total_steps]


def _total(bins: tuple[list[int], list[int]]) -> int:
    return sum(bins[0]) + sum(bins[1])


def _truncate(bins: tuple[list[int], list[int]], target: int) -> None:
    """Shorten the last cache bin, then the last compute bin, alternately, until ``target`` steps."""
    compute, cache = bins
    while _total(bins) > target:
        if cache:
            cache[-1] -= 1
            if cache[-1] == 0:
                cache.pop()
        if _total(bins) <= target:
            break
        if compute:
            compute[-1] -= 1
            if compute[-1] == 0:
                compute.pop()


def _expand(bins: tuple[list[int], list[int]], target: int) -> None:
    """Grow the 28-step bins in proportion until they cover ``target`` steps."""
    compute, cache = bins
    base_compute, base_cache = list(compute), list(cache)
    scale = (target / 28) * 0.5
    pairs = min(len(compute), len(cache))
    while _total(bins) < target:
        for i in range(pairs):
            compute[i] += max(int(base_compute[i] * scale), 1)
            if _total(bins) >= target:
                return
            cache[i] += max(int(base_cache[i] * scale), 1)
            if _total(bins) >= target:
                return
        compute[-1] += 1


def _preset_bins(mask_policy: str, total_steps: int) -> tuple[list[int], list[int]]:
    if mask_policy not in MASK_POLICIES:
        raise ValueError(f"mask_policy must be one of {', '.join(MASK_POLICIES)}; got {mask_policy!r}")
    if total_steps < 4:
        return [total_steps], []
    if total_steps < 8:
        compute, cache = {**_CONSTANT_SHORT, **_EXTRA_SHORT}[total_steps]
        return list(compute), list(cache)
    if total_steps == 8:
        table = _PRESETS_8
    elif total_steps == 9:
        table = _PRESETS_9
    elif total_steps < 16:
        table = _PRESETS_9_TO_15
    else:
        table = _PRESETS_28
    compute, cache = table[mask_policy]
    bins = (list(compute), list(cache))
    if total_steps > 28:
        _expand(bins, total_steps)
    _truncate(bins, total_steps)
    return bins


def steps_mask(
    compute_bins: list[int] | None = None,
    cache_bins: list[int] | None = None,
    total_steps: int | None = None,
    mask_policy: str | None = "medium",
) -> StepsMask:
    """A step mask from explicit bins, or from a preset for ``total_steps`` steps.

    With ``compute_bins`` and ``cache_bins``, the mask alternates ``[1] * compute_bins[i]``
    and ``[0] * cache_bins[i]``, truncated to ``total_steps``. Otherwise ``mask_policy``
    (``slow``, ``medium``, ``fast``, ``ultra``) picks a preset and ``total_steps`` is required;
    the preset's last step always computes.
    """
    if compute_bins is not None and cache_bins is not None:
        values = _from_bins(compute_bins, cache_bins, total_steps)
        return StepsMask(values, bins=(list(compute_bins), list(cache_bins)))
    if total_steps is None:
        raise ValueError("total_steps is required when the mask comes from mask_policy")
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    policy = mask_policy or "medium"
    values = _from_bins(*_preset_bins(policy, total_steps), total_steps)
    values[-1] = 1
    return StepsMask(values, mask_policy=policy)


def resample_mask(mask: list[int], total_steps: int) -> list[int]:
    """Stretch or shrink an explicit mask to ``total_steps`` by nearest index; the last step computes."""
    if not mask:
        return [1] * total_steps
    values = [mask[min(len(mask) - 1, (i * len(mask)) // total_steps)] for i in range(total_steps)]
    values[-1] = 1
    return values


def fit_mask(mask: list[int], total_steps: int) -> list[int]:
    """``mask`` for a run of ``total_steps`` steps: unchanged when it fits, rebuilt or resampled otherwise."""
    if len(mask) == total_steps:
        return list(mask)
    if isinstance(mask, StepsMask):
        return mask.for_steps(total_steps)
    logger.warning("a %d-entry step mask is resampled to the run's %d steps", len(mask), total_steps)
    return resample_mask(mask, total_steps)


__all__ = ["MASK_POLICIES", "StepsMask", "fit_mask", "resample_mask", "steps_mask"]
