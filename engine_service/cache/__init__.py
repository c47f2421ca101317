"""Cache acceleration for diffusion transformers: DBCache, DBPrune, TeaCache, MagCache, step masks, calibrators.

Usable on its own, without the server::

    from engine_service import cache

    cache.enable_cache(pipe, cache_config=cache.DBCacheConfig(
        Fn_compute_blocks=1, Bn_compute_blocks=0, residual_diff_threshold=0.12,
        steps_computation_mask=cache.steps_mask(mask_policy="fast", total_steps=28),
    ), calibrator_config=cache.TaylorSeerCalibratorConfig(taylorseer_order=1))
    image = pipe(prompt, num_inference_steps=28).images[0]
    stats = cache.summary(pipe)        # per block group: cached_steps, residual_diffs, ...
    cache.disable_cache(pipe)          # the pipeline is exactly as before

Names, fields and defaults follow cache-dit 1.5, so code written for it migrates
by changing the import. See docs/caching.md for the exact semantics.
"""

from engine_service.cache.adapter import (
    BLOCK_LAYOUTS,
    CFG_TRANSFORMERS,
    EXPERT_TRANSFORMERS,
    HINTED_LAYOUTS,
    LAYOUT_HIDDEN,
    LAYOUT_PATTERNS,
    LAYOUT_STREAMS,
    PER_BLOCK_LAYOUTS,
    PER_BLOCK_PIPELINES,
    BlockAdapter,
    denoising_components,
)
from engine_service.cache.api import (
    disable_cache,
    enable_cache,
    is_cached,
    refresh_context,
    set_run_steps,
    set_sample_groups,
    start_runs_on_copies,
    step_outcomes,
    strify,
    summary,
)
from engine_service.cache.calibration import IndicatorCalibration, calibrate
from engine_service.cache.calibrators import FoCaCalibrator, TaylorSeerCalibrator
from engine_service.cache.config import (
    BasicCacheConfig,
    CacheType,
    CalibratorConfig,
    DBCacheConfig,
    DBPruneConfig,
    FoCaCalibratorConfig,
    MagCacheConfig,
    ParamsModifier,
    TaylorSeerCalibratorConfig,
    TeaCacheConfig,
)
from engine_service.cache.context import StepOutcome
from engine_service.cache.masks import MASK_POLICIES, StepsMask, steps_mask
from engine_service.cache.patterns import ForwardPattern, PatternError, detect_forward_pattern
from engine_service.cache.stats import CacheStats

__all__ = [
    "BLOCK_LAYOUTS",
    "CFG_TRANSFORMERS",
    "EXPERT_TRANSFORMERS",
    "denoising_components",
    "LAYOUT_PATTERNS",
    "LAYOUT_HIDDEN",
    "LAYOUT_STREAMS",
    "PER_BLOCK_LAYOUTS",
    "PER_BLOCK_PIPELINES",
    "HINTED_LAYOUTS",
    "MASK_POLICIES",
    "BasicCacheConfig",
    "BlockAdapter",
    "CacheStats",
    "CacheType",
    "CalibratorConfig",
    "DBCacheConfig",
    "DBPruneConfig",
    "FoCaCalibrator",
    "FoCaCalibratorConfig",
    "ForwardPattern",
    "IndicatorCalibration",
    "MagCacheConfig",
    "ParamsModifier",
    "PatternError",
    "StepOutcome",
    "StepsMask",
    "TaylorSeerCalibrator",
    "TaylorSeerCalibratorConfig",
    "TeaCacheConfig",
    "calibrate",
    "detect_forward_pattern",
    "disable_cache",
    "enable_cache",
    "is_cached",
    "refresh_context",
    "set_run_steps",
    "start_runs_on_copies",
    "set_sample_groups",
    "step_outcomes",
    "steps_mask",
    "strify",
    "summary",
]
