"""Cache state of one block group for one run, and the per-step decision.

A *block group* is a sequence of blocks that caches as one unit (for FLUX, the
double-stream blocks followed by the single-stream blocks). Each group has one
:class:`CacheContext`; inside it, every transformer call of a step (the
conditional and, for pipelines that run CFG as a second call, the unconditional
branch) has its own :class:`BranchState`: buffers, counters and statistics.

A batch may also be split into *sample groups* (one per request of a batch):
each has its own state per branch and decides on its own, from its own rows of
the batch, so a request caches the same steps alone or in a batch.

Steps are counted per branch (the first step a group runs in a run is step 0),
as cache-dit counts them, so warmup and step masks apply to the steps a group
actually runs. Each decision is also recorded under the pipeline's step index,
which is what the engine reports per step.
"""

from __future__ import annotations

import dataclasses
import logging

import torch
import torch.distributed as dist

from engine_service.cache.calibrators import Calibrator, make_calibrator
from engine_service.cache.config import BasicCacheConfig, CacheType, CalibratorConfig, DBPruneConfig
from engine_service.cache.masks import fit_mask

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class StepOutcome:
    """What one branch of one group did at one step."""

    cached: bool
    residual_diff: float | None = None
    pruned_blocks: int | None = None


@dataclasses.dataclass
class BranchState:
    """Buffers and statistics of one branch (conditional = 0, CFG = 1, ...)."""

    calibrator: Calibrator | None = None
    encoder_calibrator: Calibrator | None = None
    steps_run: int = 0
    fn_residual: torch.Tensor | None = None
    hidden_residual: torch.Tensor | None = None
    encoder_residual: torch.Tensor | None = None
    cached_steps: list[int] = dataclasses.field(default_factory=list)
    residual_diffs: dict[int, float | list[float]] = dataclasses.field(default_factory=dict)
    computed_steps: int = 0
    continuous_cached: int = 0
    accumulated_diff: float = 0.0
    # DBPrune: per block id, its input at its last run and the residuals it added.
    block_inputs: dict[int, torch.Tensor] = dataclasses.field(default_factory=dict)
    block_residuals: dict[int, tuple[torch.Tensor, torch.Tensor | None]] = dataclasses.field(default_factory=dict)
    pruned_blocks: dict[int, int] = dataclasses.field(default_factory=dict)
    actual_blocks: dict[int, int] = dataclasses.field(default_factory=dict)


def relative_l1(previous: torch.Tensor, current: torch.Tensor) -> float:
    """mean|previous - current| / mean|previous|; over all ranks' elements when running distributed."""
    return relative_l1_many([(previous, current)])[0]


def relative_l1_many(pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> list[float]:
    """:func:`relative_l1` of each (previous, current) pair with one device-to-host copy for all of them.

    Under context parallel each rank holds a slice of the sequence (slices may differ in
    length): the sums are added across ranks, so every rank gets the whole tensor's value
    and makes the same decision. Ranks holding the same tensor (tensor parallel) scale
    both sums alike, which leaves the ratio unchanged.
    """
    terms = torch.stack(
        [
            torch.stack(
                [
                    torch.sum((previous - current).abs(), dtype=torch.float32),
                    torch.sum(previous.abs(), dtype=torch.float32),
                ]
            )
            for previous, current in pairs
        ]
    )
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(terms, op=dist.ReduceOp.SUM)
    diffs = []
    for numerator, denominator in terms.tolist():  # the one host sync of a dynamic decision
        if denominator == 0.0:
            diffs.append(0.0 if numerator == 0.0 else float("inf"))
        else:
            diffs.append(numerator / denominator)
    return diffs


class CacheContext:
    """The cache of one block group: configuration, per-branch state, decisions."""

    def __init__(
        self,
        name: str,
        num_blocks: int,
        cache_config: BasicCacheConfig,
        calibrator_config: CalibratorConfig | None,
        separate_cfg: bool,
        persistent: bool,
    ):
        cache_config.validate(num_blocks)
        self.name = name
        self.num_blocks = num_blocks
        self.cache_config = cache_config
        self.calibrator_config = calibrator_config
        self.separate_cfg = separate_cfg
        self.persistent = persistent
        self.is_prune = cache_config.cache_type == CacheType.DBPrune
        self.total_steps: int | None = cache_config.num_inference_steps
        self._calls_since_refresh = 0
        self._refresh_hint = cache_config.force_refresh_step_hint
        self.outcomes: dict[tuple[int, int, int], StepOutcome] = {}
        self.sample_groups: tuple[int, ...] | None = None
        self._rows: dict[tuple[int, str], list[torch.Tensor]] = {}
        self.reset(self.total_steps)
        # Set by begin_call (and select_group) for the call in progress.
        self.branch = 0
        self.group = 0
        self.step = 0
        self.pipeline_step = 0
        self.state = self._state(0, 0)

    # -- run lifecycle ---------------------------------------------------------------------------

    def reset(self, total_steps: int | None = None) -> None:
        """Forget everything about the previous run; ``total_steps`` resizes the step mask."""
        if total_steps is not None:
            self.total_steps = total_steps
        mask = self.cache_config.steps_computation_mask
        self.mask: list[int] | None = None
        if mask is not None:
            self.mask = fit_mask(mask, self.total_steps) if self.total_steps else list(mask)
        warmup_limit = self.cache_config.max_warmup_steps
        if self.mask is not None:
            leading = next((i for i, m in enumerate(self.mask) if m != 1), len(self.mask))
            warmup_limit = min(warmup_limit, leading)
        if self.total_steps:
            warmup_limit = min(warmup_limit, self.total_steps)  # a step count, never a size to allocate
        self.warmup_steps = frozenset(range(0, warmup_limit, self.cache_config.warmup_interval))
        self.branches: dict[tuple[int, int], BranchState] = {}
        self.outcomes.clear()
        self._calls_since_refresh = 0

    def set_sample_groups(self, sizes: tuple[int, ...] | None) -> None:
        """Split every batch into consecutive groups of ``sizes`` samples that decide on their own.

        A batch of ``k * sum(sizes)`` samples repeats the layout ``k`` times (pipelines that
        stack the CFG branches in one batch). ``None`` or one group: the whole batch decides.
        """
        if sizes is not None and (not sizes or any(n < 1 for n in sizes)):
            raise ValueError(f"sample group sizes must be positive, got {sizes}")
        self.sample_groups = tuple(sizes) if sizes is not None and len(sizes) > 1 else None
        self._rows.clear()
        self.reset()

    def group_rows(self, batch: torch.Tensor) -> list[torch.Tensor] | None:
        """Row indices of each sample group in ``batch`` (dim 0), or ``None`` for one group."""
        sizes = self.sample_groups
        if sizes is None:
            return None
        key = (batch.shape[0], str(batch.device))
        rows = self._rows.get(key)
        if rows is None:
            total = sum(sizes)
            if batch.shape[0] % total:
                raise ValueError(f"a batch of {batch.shape[0]} samples does not split into sample groups {sizes}")
            starts = [sum(sizes[:i]) for i in range(len(sizes))]
            repeats = range(0, batch.shape[0], total)
            rows = [
                torch.tensor([r + s + j for r in repeats for j in range(n)], device=batch.device)
                for s, n in zip(starts, sizes, strict=True)
            ]
            self._rows[key] = rows
        return rows

    def _state(self, branch: int, group: int) -> BranchState:
        state = self.branches.get((branch, group))
        if state is None:
            state = BranchState(
                calibrator=make_calibrator(self._calibrator_for("enable_calibrator")),
                encoder_calibrator=make_calibrator(self._calibrator_for("enable_encoder_calibrator")),
            )
            self.branches[(branch, group)] = state
        return state

    def branch_state(self, branch: int, group: int = 0) -> BranchState | None:
        return self.branches.get((branch, group))

    def _calibrator_for(self, flag: str) -> CalibratorConfig | None:
        config = self.calibrator_config
        return config if config is not None and getattr(config, flag) else None

    @torch.compiler.disable
    def begin_call(self, branch: int, pipeline_step: int | None) -> None:
        """Enter one transformer call: pick the branch's state and its step index."""
        if not self.separate_cfg:
            branch = 0
        if self.persistent:
            self._maybe_refresh(branch)
        self.branch = branch
        for group in range(len(self.sample_groups or (1,))):
            self._state(branch, group).steps_run += 1
        self.select_group(0)
        self.step = self.state.steps_run - 1
        self.pipeline_step = self.step if pipeline_step is None else pipeline_step

    def select_group(self, group: int) -> None:
        """Make sample group ``group`` (of the current branch) the one decisions apply to."""
        self.group = group
        self.state = self._state(self.branch, group)

    def _maybe_refresh(self, branch: int) -> None:
        """Bare transformers have no pipeline to mark a new run: count steps instead."""
        hint = self._refresh_hint
        if hint is not None and hint > 0 and self._calls_since_refresh >= hint:
            logger.debug("cache %s: refreshed after %d transformer calls", self.name, hint)
            self.reset()
            if self.cache_config.force_refresh_step_policy == "once":
                self._refresh_hint = None
        self._calls_since_refresh += 1
        limit = self.total_steps
        state = self.branches.get((branch, 0))
        if limit and state is not None and state.steps_run >= limit:
            self.reset()
            self._calls_since_refresh = 1

    # -- DBCache ----------------------------------------------------------------------------------

    def _gate(self) -> bool | None:
        """The checks before the diff test: True = cache, False = compute, None = test the diff."""
        config, state, step = self.cache_config, self.state, self.step
        if step in self.warmup_steps:
            return False
        mask = self.mask
        if mask is not None and step < len(mask):
            if mask[step] == 1:
                return False
            if config.steps_computation_policy == "static":
                return state.fn_residual is not None or bool(state.block_residuals)
        if config.max_cached_steps >= 0 and len(state.cached_steps) >= config.max_cached_steps:
            return False
        if config.max_continuous_cached_steps >= 0 and state.continuous_cached >= config.max_continuous_cached_steps:
            return False
        limit = config.max_accumulated_residual_diff_threshold
        if limit is not None and limit > 0 and state.accumulated_diff >= limit:
            return False
        if config.residual_diff_threshold <= 0:
            return False
        return None

    def _shared_diff(self) -> float | None:
        """The conditional branch's diff of this step, when the CFG branch is told to reuse it."""
        if self.branch == 0 or self.cache_config.cfg_diff_compute_separate:
            return None
        first = self.outcomes.get((self.pipeline_step, 0, self.group))
        return None if first is None else first.residual_diff

    @torch.compiler.disable
    def decide(self, fn_residual: torch.Tensor) -> bool:
        """DBCache: may this step reuse the middle blocks' residual? (for the selected sample group)"""
        return self._decide([(self.group, fn_residual)])[0]

    @torch.compiler.disable
    def decide_groups(self, fn_residuals: list[torch.Tensor]) -> list[bool]:
        """:meth:`decide` for sample groups 0, 1, ... (one Fn residual each), leaving the last one selected.

        The diffs of every group that needs one are read from the device together: one host
        sync per step however many requests share the batch.
        """
        return self._decide(list(enumerate(fn_residuals)))

    def _decide(self, items: list[tuple[int, torch.Tensor]]) -> list[bool]:
        threshold = self.cache_config.residual_diff_threshold
        verdicts: list[bool | None] = []
        diffs: list[float | None] = []
        pending: list[int] = []
        for index, (group, fn_residual) in enumerate(items):
            self.select_group(group)
            verdict, diff = self._gate(), None
            if verdict is None:
                previous = self.state.fn_residual
                if previous is None or previous.shape != fn_residual.shape:
                    verdict = False
                elif threshold >= 1:
                    verdict = True
                else:
                    diff = self._shared_diff()
                    if diff is None:
                        pending.append(index)
            verdicts.append(verdict)
            diffs.append(diff)
        if pending:
            pairs = [(self._state(self.branch, items[i][0]).fn_residual, items[i][1]) for i in pending]
            for index, diff in zip(pending, relative_l1_many(pairs), strict=True):
                diffs[index] = diff
        for index, ((group, _), verdict, diff) in enumerate(zip(items, verdicts, diffs, strict=True)):
            self.select_group(group)
            if verdict is None:
                self._record_diff(diff)
                verdict = diff < threshold
                verdicts[index] = verdict
            self._finish_step(verdict, diff)
        return verdicts

    def _record_diff(self, diff: float) -> None:
        self.state.residual_diffs[self.step] = diff
        if diff > 0:
            self.state.accumulated_diff += diff

    def _finish_step(self, cached: bool, diff: float | None, pruned: int | None = None) -> None:
        state = self.state
        if cached:
            state.cached_steps.append(self.step)
            state.continuous_cached += 1
        else:
            state.computed_steps += 1
            state.continuous_cached = 0
        self.outcomes[(self.pipeline_step, self.branch, self.group)] = StepOutcome(cached, diff, pruned)

    @torch.compiler.disable
    def cached_residuals(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The middle residuals to add at a cached step: stored, or forecast by the calibrators."""
        state = self.state
        hidden = state.calibrator.approximate(self.step) if state.calibrator else state.hidden_residual
        if state.encoder_calibrator is not None and state.encoder_residual is not None:
            encoder = state.encoder_calibrator.approximate(self.step)
        else:
            encoder = state.encoder_residual
        return hidden, encoder

    @torch.compiler.disable
    def store(self, fn_residual: torch.Tensor, hidden: torch.Tensor, encoder: torch.Tensor | None) -> None:
        """Keep a computed step's Fn residual and middle residuals."""
        state = self.state
        state.fn_residual = fn_residual
        if state.calibrator is not None:
            state.calibrator.update(self.step, hidden)
        else:
            state.hidden_residual = hidden
        state.encoder_residual = encoder
        if encoder is not None and state.encoder_calibrator is not None:
            state.encoder_calibrator.update(self.step, encoder)

    # -- DBPrune ----------------------------------------------------------------------------------

    @torch.compiler.disable
    def begin_prune_step(self) -> bool:
        """Whether this step may prune at all (warmup, caps, mask)."""
        verdict = self._gate()
        self._prune_allowed = verdict is not False
        self._step_diffs: list[float] = []
        self._pruned_now = 0
        return self._prune_allowed

    def _prune_threshold(self) -> float:
        config = self.cache_config
        threshold = config.residual_diff_threshold
        if isinstance(config, DBPruneConfig) and config.enable_dynamic_prune_threshold:
            positive = [d for d in self._step_diffs[:5] if d > 0]
            if positive:
                relaxed = config.dynamic_prune_threshold_relax_ratio * sum(positive) / len(positive)
                ceiling = config.max_dynamic_prune_threshold
                if ceiling is None:
                    ceiling = 2 * threshold
                if relaxed < ceiling:
                    threshold = max(threshold, relaxed)
        return threshold

    @torch.compiler.disable
    def may_prune(self, block_id: int, block_input: torch.Tensor) -> bool:
        """DBPrune: may block ``block_id`` add its stored residual instead of running?"""
        if not self._prune_allowed:
            return False
        state = self.state
        previous = state.block_inputs.get(block_id)
        if previous is None or previous.shape != block_input.shape:
            return False
        threshold = self.cache_config.residual_diff_threshold
        if threshold >= 1:
            prune = True
        else:
            diff = relative_l1(previous, block_input)
            self._step_diffs.append(diff)
            prune = diff < self._prune_threshold()
        self._pruned_now += int(prune)
        return prune

    @torch.compiler.disable
    def store_block(
        self, block_id: int, block_input: torch.Tensor, hidden: torch.Tensor, encoder: torch.Tensor | None
    ) -> None:
        self.state.block_inputs[block_id] = block_input
        self.state.block_residuals[block_id] = (hidden, encoder)

    @torch.compiler.disable
    def end_prune_step(self, prunable_blocks: int) -> None:
        state = self.state
        if self._step_diffs:
            state.residual_diffs[self.step] = list(self._step_diffs)
            state.accumulated_diff += sum(d for d in self._step_diffs if d > 0)
        state.pruned_blocks[self.step] = self._pruned_now
        state.actual_blocks[self.step] = prunable_blocks
        mean = sum(self._step_diffs) / len(self._step_diffs) if self._step_diffs else None
        self._finish_step(self._pruned_now > 0, mean, self._pruned_now)


__all__ = ["BranchState", "CacheContext", "StepOutcome", "relative_l1", "relative_l1_many"]
