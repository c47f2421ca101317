"""Named cache policies and the plan a request runs with.

A *plan* is a complete cache configuration for one run: a ``DBCacheConfig`` or
``DBPruneConfig`` plus an optional calibrator. Plans come from a named preset and
field overrides:

- ``dbcache``: DBCache F1B0, threshold 0.12, 8 warmup steps, at most 3 cached
  steps in a row (cache-dit's command-line defaults).
- ``slow`` / ``medium`` / ``fast`` / ``ultra``: F1B0 with the static step mask of
  that name for the run's step count (18 / 15 / 11 / 8 computed of 28).

With ``cache_type`` ``teacache`` or ``magcache`` a preset gives F1B0 (and its step
mask) and the rest comes from ``TeaCacheConfig`` / ``MagCacheConfig``'s defaults,
with the model's calibration (``ditserve calibrate-cache``) filling in the
coefficients or the curve the request does not give.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from engine_service.cache.config import (
    BasicCacheConfig,
    CalibratorConfig,
    DBCacheConfig,
    DBPruneConfig,
    FoCaCalibratorConfig,
    MagCacheConfig,
    TaylorSeerCalibratorConfig,
    TeaCacheConfig,
)
from engine_service.cache.masks import MASK_POLICIES, steps_mask

NO_CACHE = "none"
NAMED_PRESETS = ("dbcache", *MASK_POLICIES)
CALIBRATORS = ("none", "taylorseer", "foca")
CACHE_TYPES = ("dbcache", "dbprune", "teacache", "magcache")
_CONFIG_CLASSES = {
    "dbcache": DBCacheConfig,
    "dbprune": DBPruneConfig,
    "teacache": TeaCacheConfig,
    "magcache": MagCacheConfig,
}

_DBCACHE_BASE: dict[str, Any] = {
    "Fn_compute_blocks": 1,
    "Bn_compute_blocks": 0,
    "residual_diff_threshold": 0.12,
    "max_warmup_steps": 8,
    "warmup_interval": 1,
    "max_cached_steps": -1,
    "max_continuous_cached_steps": 3,
}


@dataclasses.dataclass(frozen=True)
class CachePlan:
    """The cache configuration of one run. ``tag`` identifies it (equal tags, equal behaviour)."""

    cache_config: BasicCacheConfig
    calibrator_config: CalibratorConfig | None = None

    @property
    def tag(self) -> str:
        tag = self.cache_config.strify()
        if self.calibrator_config is not None and self.calibrator_config.enabled():
            tag += "_" + self.calibrator_config.strify()
        return tag


def preset_fields(preset: str, total_steps: int, cache_type: str = "dbcache") -> dict[str, Any]:
    """The configuration fields of a named preset for a run of ``total_steps`` steps.

    Raises ``ValueError`` for an unknown name or a step count the mask presets do not cover.
    """
    indicator = cache_type in ("teacache", "magcache")
    base = {"Fn_compute_blocks": 1, "Bn_compute_blocks": 0} if indicator else dict(_DBCACHE_BASE)
    if preset == "dbcache":
        return base
    if preset in MASK_POLICIES:
        mask = steps_mask(total_steps=total_steps, mask_policy=preset)
        return {
            **base,
            "max_continuous_cached_steps": -1,
            "steps_computation_mask": list(mask),
            "steps_computation_policy": "static",
        }
    raise ValueError(f"unknown cache preset {preset!r}; use one of {', '.join((NO_CACHE, *NAMED_PRESETS))}")


def make_plan(
    preset: str,
    total_steps: int,
    overrides: dict[str, Any] | None = None,
    cache_type: str = "dbcache",
    calibrator: str = "none",
    taylorseer_order: int = 1,
    calibration: dict[str, Any] | None = None,
) -> CachePlan:
    """A plan from a named preset, with ``overrides`` (configuration field names) applied on top.

    ``calibration`` is the model's ``ditserve calibrate-cache`` result: it gives TeaCache's
    ``teacache_coefficients`` and MagCache's ``magcache_ratios`` unless ``overrides`` do.
    Raises ``ValueError`` for a bad name or value (MagCache without a curve included).
    """
    if cache_type not in CACHE_TYPES:
        raise ValueError(f"cache_type must be one of {', '.join(CACHE_TYPES)}, got {cache_type!r}")
    fields = preset_fields(preset, total_steps, cache_type)
    fields.update({k: v for k, v in (overrides or {}).items() if v is not None})
    fields["num_inference_steps"] = total_steps
    calibrated = calibration or {}
    if cache_type == "teacache" and not fields.get("teacache_coefficients"):
        fields["teacache_coefficients"] = calibrated.get("teacache_coefficients")
    if cache_type == "magcache" and not fields.get("magcache_ratios"):
        fields["magcache_ratios"] = calibrated.get("magcache_ratios")
        if not fields["magcache_ratios"]:
            raise ValueError("the model has no MagCache curve: calibrate it (ditserve calibrate-cache) or give one")
    config = _CONFIG_CLASSES[cache_type](**fields)
    config.validate()
    if calibrator == "taylorseer":
        calibrator_config: CalibratorConfig | None = TaylorSeerCalibratorConfig(taylorseer_order=taylorseer_order)
    elif calibrator == "foca":
        calibrator_config = FoCaCalibratorConfig()
    elif calibrator == "none":
        calibrator_config = None
    else:
        raise ValueError(f"calibrator must be one of {', '.join(CALIBRATORS)}, got {calibrator!r}")
    return CachePlan(config, calibrator_config)


__all__ = ["CALIBRATORS", "CACHE_TYPES", "NAMED_PRESETS", "NO_CACHE", "CachePlan", "make_plan", "preset_fields"]
