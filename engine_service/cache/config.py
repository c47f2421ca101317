"""Cache and calibrator configurations.

Field names and defaults follow cache-dit 1.5 exactly, so a configuration written
for cache-dit reads the same here; migrating is an import change. ``reset`` /
``empty`` clear every field to ``None`` and ``update`` ignores ``None`` values:
that pair is how a ``ParamsModifier`` overrides only some fields of a shared
configuration.
"""

from __future__ import annotations

import copy
import dataclasses
import enum
from typing import Any, TypeVar

_C = TypeVar("_C", bound="_Overridable")


class CacheType(str, enum.Enum):
    """Which algorithm a configuration selects."""

    NONE = "NONE"
    DBCache = "DBCache"
    DBPrune = "DBPrune"
    TeaCache = "TeaCache"
    MagCache = "MagCache"

    def __str__(self) -> str:
        return self.value


class _Overridable:
    """``update`` / ``empty`` / ``reset`` shared by every configuration dataclass."""

    def update(self: _C, **kwargs: Any) -> _C:
        """Set the given fields in place, ignoring ``None`` values; unknown names raise."""
        names = {f.name for f in dataclasses.fields(self)}  # type: ignore[arg-type]
        for key, value in kwargs.items():
            if key not in names:
                raise TypeError(f"{type(self).__name__} has no field {key!r}")
            if value is not None:
                setattr(self, key, value)
        return self

    def empty(self: _C, **kwargs: Any) -> _C:
        """Set every field to ``None``, then apply ``kwargs``."""
        for field in dataclasses.fields(self):  # type: ignore[arg-type]
            setattr(self, field.name, None)
        return self.update(**kwargs)

    def reset(self: _C, **kwargs: Any) -> _C:
        """Alias of :meth:`empty`."""
        return self.empty(**kwargs)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    def copy(self: _C) -> _C:
        return copy.deepcopy(self)

    def overridden_by(self: _C, other: _Overridable | None) -> _C:
        """A copy of this configuration with ``other``'s non-``None`` fields applied."""
        merged = self.copy()
        if other is not None:
            merged.update(**{f.name: getattr(other, f.name) for f in dataclasses.fields(other)})  # type: ignore[arg-type]
        return merged


@dataclasses.dataclass
class BasicCacheConfig(_Overridable):
    """Dual Block Cache settings: which blocks always run and when a step may reuse the cache."""

    cache_type: CacheType = CacheType.DBCache
    Fn_compute_blocks: int = 8
    """Leading blocks that always run; their residual is the change signal. At least 1."""
    Bn_compute_blocks: int = 0
    """Trailing blocks that always run, refining the approximated hidden states."""
    residual_diff_threshold: float = 0.08
    """A step reuses the cache when the relative L1 change of the Fn residual is below this.
    <= 0 never caches; >= 1 always caches after warmup."""
    max_accumulated_residual_diff_threshold: float | None = None
    """Stop caching for the rest of the run once the diffs seen sum to this."""
    max_warmup_steps: int = 8
    """Steps ``range(0, max_warmup_steps, warmup_interval)`` always compute."""
    warmup_interval: int = 1
    """Spacing of the always-computed warmup steps."""
    max_cached_steps: int = -1
    """Most cached steps per run (per CFG branch); -1 = no cap."""
    max_continuous_cached_steps: int = -1
    """Most consecutive cached steps; -1 = no cap."""
    enable_separate_cfg: bool | None = None
    """Separate cache state for each transformer call of a step (CFG). ``None`` = detect."""
    cfg_compute_first: bool = False
    """Without a pipeline to watch: the CFG call comes first in each step's pair."""
    cfg_diff_compute_separate: bool = True
    """False: the CFG branch reuses the conditional branch's diff of the same step."""
    num_inference_steps: int | None = None
    """Steps per run when caching a bare transformer (no pipeline tells it)."""
    steps_computation_mask: list[int] | None = None
    """One 0/1 entry per step; 1 = always compute. See :func:`steps_mask`."""
    steps_computation_policy: str = "dynamic"
    """``"static"``: every 0 reuses the cache; ``"dynamic"``: 0 = may cache if the diff test passes."""
    force_refresh_step_hint: int | None = None
    """Bare transformers: start a new run (fresh state) after this many transformer calls."""
    force_refresh_step_policy: str = "once"
    """``"once"`` or ``"repeat"`` (refresh every ``force_refresh_step_hint`` calls)."""

    def strify(self) -> str:
        """A compact tag such as ``DBCache_F1B0_W8I1M0MC3_R0.12``."""
        tag = (
            f"{self.cache_type}_F{self.Fn_compute_blocks}B{self.Bn_compute_blocks}_"
            f"W{self.max_warmup_steps}I{self.warmup_interval}"
            f"M{max(0, self.max_cached_steps)}MC{max(0, self.max_continuous_cached_steps)}_"
            f"R{self.residual_diff_threshold}"
        )
        if self.steps_computation_mask is not None:
            tag += f"_SCM{''.join(map(str, self.steps_computation_mask))}_{self.steps_computation_policy}"
        if self.num_inference_steps is not None:
            tag += f"_N{self.num_inference_steps}"
        if self.force_refresh_step_hint is not None:
            tag += f"_FR{self.force_refresh_step_hint}_{self.force_refresh_step_policy}"
        if self.enable_separate_cfg is not None:
            tag += f"_CFG{int(self.enable_separate_cfg)}"
        return tag

    def validate(self, num_blocks: int | None = None) -> None:
        """Raise ``ValueError`` naming the first field out of range."""
        if self.Fn_compute_blocks is None or self.Fn_compute_blocks < 1:
            raise ValueError(f"Fn_compute_blocks must be >= 1, got {self.Fn_compute_blocks}")
        if self.Bn_compute_blocks is None or self.Bn_compute_blocks < 0:
            raise ValueError(f"Bn_compute_blocks must be >= 0, got {self.Bn_compute_blocks}")
        if num_blocks is not None and self.Fn_compute_blocks + self.Bn_compute_blocks > num_blocks:
            raise ValueError(
                f"Fn_compute_blocks + Bn_compute_blocks = {self.Fn_compute_blocks + self.Bn_compute_blocks} "
                f"exceeds the {num_blocks} blocks"
            )
        if self.max_warmup_steps < 0:
            raise ValueError(f"max_warmup_steps must be >= 0, got {self.max_warmup_steps}")
        if self.warmup_interval < 1:
            raise ValueError(f"warmup_interval must be >= 1, got {self.warmup_interval}")
        if self.max_cached_steps < -1:
            raise ValueError(f"max_cached_steps must be >= -1, got {self.max_cached_steps}")
        if self.max_continuous_cached_steps < -1:
            raise ValueError(f"max_continuous_cached_steps must be >= -1, got {self.max_continuous_cached_steps}")
        if self.steps_computation_policy not in ("dynamic", "static"):
            raise ValueError(
                f'steps_computation_policy must be "dynamic" or "static", got {self.steps_computation_policy!r}'
            )
        if self.steps_computation_mask is not None and any(m not in (0, 1) for m in self.steps_computation_mask):
            raise ValueError("steps_computation_mask may only hold 0 and 1")
        if self.force_refresh_step_policy not in ("once", "repeat"):
            raise ValueError(
                f'force_refresh_step_policy must be "once" or "repeat", got {self.force_refresh_step_policy!r}'
            )


@dataclasses.dataclass
class DBCacheConfig(BasicCacheConfig):
    """Dual Block Cache: one decision per step for the whole middle range of blocks."""


@dataclasses.dataclass
class DBPruneConfig(BasicCacheConfig):
    """Dynamic Block Prune: a decision per middle block from the change of that block's input."""

    cache_type: CacheType = CacheType.DBPrune
    enable_dynamic_prune_threshold: bool = False
    """Relax the threshold per step to ``relax_ratio`` x the mean of its first diffs."""
    max_dynamic_prune_threshold: float | None = None
    """Upper bound of the relaxed threshold; ``None`` = twice ``residual_diff_threshold``."""
    dynamic_prune_threshold_relax_ratio: float = 1.25
    """Factor applied to the mean diff when relaxing."""
    non_prune_block_ids: list[int] = dataclasses.field(default_factory=list)
    """Block indices that always run, besides the Fn and Bn blocks."""
    force_reduce_calibrator_vram: bool = False
    """Accepted for compatibility; has no effect here."""


@dataclasses.dataclass
class TeaCacheConfig(BasicCacheConfig):
    """TeaCache: decide from how much the first block's timestep-modulated input changed.

    The signal is the output of the first block's ``norm1`` (the adaptive norm that applies
    the timestep modulation: FLUX, SD3, PixArt, HunyuanVideo...; its normalised input where
    ``norm1`` does not modulate, e.g. Wan; the block's input where it has none). At every step
    its relative L1 change ``x`` against the previous step is rescaled by the polynomial
    ``teacache_coefficients`` (highest power first, fitted per model by
    ``ditserve calibrate-cache``) and accumulated; the step reuses the middle blocks' residual
    while the sum stays below ``residual_diff_threshold``, and a computed step resets it. The
    first step after the warmup and the last step always compute. Warmup, step masks, caps and
    calibrators apply as for DBCache. Source: Liu et al., "Timestep Embedding Tells: It's Time
    to Cache for Video Diffusion Model" (TeaCache, CVPR 2025).
    """

    cache_type: CacheType = CacheType.TeaCache
    Fn_compute_blocks: int = 1
    residual_diff_threshold: float = 0.4
    max_warmup_steps: int = 1
    teacache_coefficients: list[float] | None = None
    """Rescaling polynomial, highest power first (``numpy.polyval`` order); ``None`` = no rescaling."""

    def strify(self) -> str:
        return super().strify() + ("_C" if self.teacache_coefficients else "")

    def validate(self, num_blocks: int | None = None) -> None:
        super().validate(num_blocks)
        if self.teacache_coefficients is not None and not self.teacache_coefficients:
            raise ValueError("teacache_coefficients must hold at least one coefficient")


@dataclasses.dataclass
class MagCacheConfig(BasicCacheConfig):
    """MagCache: decide from a calibrated curve of residual magnitude ratios.

    ``magcache_ratios[t]`` is ``mean|R(t)| / mean|R(t-1)|`` of the middle blocks' residual ``R``
    in one full-compute run of ``len(magcache_ratios)`` steps (``ditserve calibrate-cache``);
    runs of another length read it linearly interpolated. After a computed step the ratios of
    the following steps multiply up to ``g`` and ``|1 - g|`` accumulates into an error; a step
    reuses the residual while that error stays below ``residual_diff_threshold`` and at most
    ``max_continuous_cached_steps`` steps in a row (MagCache's K). The first
    ``magcache_retention_ratio`` of the steps and the last step always compute. Source: Ma et
    al., "MagCache: Fast Video Generation with Magnitude-Aware Cache" (2025).
    """

    cache_type: CacheType = CacheType.MagCache
    Fn_compute_blocks: int = 1
    residual_diff_threshold: float = 0.12
    max_warmup_steps: int = 0
    max_continuous_cached_steps: int = 4
    magcache_ratios: list[float] | None = None
    """The calibrated magnitude-ratio curve, one entry per step of the calibration run."""
    magcache_retention_ratio: float = 0.2
    """Leading fraction of the steps that always compute."""

    def validate(self, num_blocks: int | None = None) -> None:
        super().validate(num_blocks)
        if not self.magcache_ratios:
            raise ValueError("magcache_ratios is required: calibrate it from a full run (ditserve calibrate-cache)")
        if any(not r > 0 for r in self.magcache_ratios):
            raise ValueError("magcache_ratios must all be positive")
        if not 0.0 <= self.magcache_retention_ratio <= 1.0:
            raise ValueError(f"magcache_retention_ratio must be between 0 and 1, got {self.magcache_retention_ratio}")


@dataclasses.dataclass
class CalibratorConfig(_Overridable):
    """Whether and how a cached step's reused residual is replaced by a forecast."""

    enable_calibrator: bool = False
    enable_encoder_calibrator: bool = False
    calibrator_type: str = "taylorseer"
    calibrator_cache_type: str = "residual"
    calibrator_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)

    def strify(self, active: bool = True) -> str:
        return "T0O0"

    def enabled(self) -> bool:
        return bool(self.enable_calibrator or self.enable_encoder_calibrator)


@dataclasses.dataclass
class TaylorSeerCalibratorConfig(CalibratorConfig):
    """Forecast by a polynomial through the last ``taylorseer_order + 1`` computed steps."""

    enable_calibrator: bool = True
    enable_encoder_calibrator: bool = True
    calibrator_type: str = "taylorseer"
    taylorseer_order: int = 1
    taylorseer_forecast: str = "taylor"
    """``"taylor"``: Taylor series at the last computed step, each higher term carried no farther
    than the span of computed steps it was measured over (order 1 is cache-dit's); ``"newton"``:
    the polynomial through the last ``order + 1`` computed steps, exact for polynomial residuals
    but overshooting over long gaps."""

    def strify(self, active: bool = True) -> str:
        """``T1O2`` (``T0O2`` when the calibrator never forecast in a run), ``N`` added for newton."""
        tag = f"T{int(bool(self.enable_calibrator) and active)}O{self.taylorseer_order}"
        return tag + ("N" if self.taylorseer_forecast == "newton" else "")


@dataclasses.dataclass
class FoCaCalibratorConfig(CalibratorConfig):
    """Forecast-then-calibrate: a Heun-style step from the last computed residual."""

    enable_calibrator: bool = True
    enable_encoder_calibrator: bool = True
    calibrator_type: str = "foca"

    def strify(self, active: bool = True) -> str:
        """``FoCa`` (``FoCa0`` when it never forecast in a run)."""
        return "FoCa" if active else "FoCa0"


@dataclasses.dataclass
class ParamsModifier:
    """Per-block-list overrides: only the fields set (not ``None``) replace the shared configuration.

    Build the overrides with ``DBCacheConfig().reset(...)`` so every other field stays ``None``.
    """

    cache_config: BasicCacheConfig | None = None
    calibrator_config: CalibratorConfig | None = None


__all__ = [
    "BasicCacheConfig",
    "CacheType",
    "CalibratorConfig",
    "DBCacheConfig",
    "DBPruneConfig",
    "FoCaCalibratorConfig",
    "MagCacheConfig",
    "ParamsModifier",
    "TaylorSeerCalibratorConfig",
    "TeaCacheConfig",
]
