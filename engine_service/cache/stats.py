"""Per-run cache statistics of one block group, as ``summary`` returns them.

Step keys of ``residual_diffs`` are strings (``"12"``), as in cache-dit, so code
that reads cache-dit's summaries reads these unchanged. DBPrune records a list of
per-block diffs per step.
"""

from __future__ import annotations

import dataclasses
import statistics
from typing import Any

from engine_service.cache.context import BranchState, CacheContext


@dataclasses.dataclass
class CacheStats:
    """What one block group did during the last run."""

    name: str
    cache_options: dict[str, Any]
    cached_steps: list[int]
    residual_diffs: dict[str, Any]
    computed_steps: int
    cfg_cached_steps: list[int]
    cfg_residual_diffs: dict[str, Any]
    cfg_computed_steps: int
    pruned_blocks: list[int] = dataclasses.field(default_factory=list)
    actual_blocks: list[int] = dataclasses.field(default_factory=list)
    cfg_pruned_blocks: list[int] = dataclasses.field(default_factory=list)
    cfg_actual_blocks: list[int] = dataclasses.field(default_factory=list)

    @property
    def pruned_ratio(self) -> float | None:
        """Pruned blocks over prunable blocks across the run (DBPrune only)."""
        actual = sum(self.actual_blocks) + sum(self.cfg_actual_blocks)
        if not actual:
            return None
        return (sum(self.pruned_blocks) + sum(self.cfg_pruned_blocks)) / actual

    def table(self, details: bool = False) -> str:
        """A short markdown report: counts and the spread of the recorded diffs."""
        diffs = [d for v in self.residual_diffs.values() for d in (v if isinstance(v, list) else [v])]
        lines = [
            f"cache {self.name}: {self.cache_options.get('tag', '')}",
            f"computed {self.computed_steps}, cached {len(self.cached_steps)}"
            + (
                f", CFG computed {self.cfg_computed_steps}, cached {len(self.cfg_cached_steps)}"
                if self.cfg_computed_steps
                else ""
            ),
        ]
        if diffs:
            q = statistics.quantiles(diffs, n=20, method="inclusive") if len(diffs) > 1 else [diffs[0]] * 19
            lines.append("| Cached steps | Diffs P00 | P25 | P50 | P75 | P95 | Max |")
            lines.append("|---|---|---|---|---|---|---|")
            lines.append(
                f"| {len(self.cached_steps)} | {min(diffs):.3f} | {q[4]:.3f} | {q[9]:.3f} | {q[14]:.3f} "
                f"| {q[18]:.3f} | {max(diffs):.3f} |"
            )
        if self.pruned_ratio is not None:
            lines.append(f"pruned {self.pruned_ratio:.1%} of prunable blocks")
        if details:
            lines.append(f"cached steps: {self.cached_steps}")
            lines.append(f"residual diffs: {self.residual_diffs}")
        return "\n".join(lines)


def stats_of(context: CacheContext, sample_group: int = 0) -> CacheStats:
    main = context.branch_state(0, sample_group) or BranchState()
    cfg = context.branch_state(1, sample_group) or BranchState()
    options = {"tag": context.cache_config.strify(), "cache_config": context.cache_config.as_dict()}
    if context.calibrator_config is not None:
        options["calibrator_config"] = context.calibrator_config.as_dict()
    return CacheStats(
        name=context.name,
        cache_options=options,
        cached_steps=list(main.cached_steps),
        residual_diffs={str(k): v for k, v in main.residual_diffs.items()},
        computed_steps=main.computed_steps,
        cfg_cached_steps=list(cfg.cached_steps),
        cfg_residual_diffs={str(k): v for k, v in cfg.residual_diffs.items()},
        cfg_computed_steps=cfg.computed_steps,
        pruned_blocks=[main.pruned_blocks[s] for s in sorted(main.pruned_blocks)],
        actual_blocks=[main.actual_blocks[s] for s in sorted(main.actual_blocks)],
        cfg_pruned_blocks=[cfg.pruned_blocks[s] for s in sorted(cfg.pruned_blocks)],
        cfg_actual_blocks=[cfg.actual_blocks[s] for s in sorted(cfg.actual_blocks)],
    )


__all__ = ["CacheStats", "stats_of"]
