"""Cache state of one block group for one run, and the per-step decision.

A *block group* is a sequence of blocks that caches as one unit (for FLUX, the
double-stream blocks followed by the single-stream blocks). Each group has one
:class:`CacheContext`; inside it, every transformer call of a step (the
conditional and, for pipelines that run CFG as a second call, the unconditional
branch) has its own :class:`BranchState`: buffers, counters and statistics.

A batch may also be split into *sample groups* (one per request of a batch):
each has its own state per branch and decides on its own, from its own rows of
the batch, so a request caches the same steps alone or in a batch.

Steps are the request's pipeline steps: warmup, step masks, ``max_cached_steps``
and ``max_continuous_cached_steps`` count them. A pipeline with two denoising
transformers (Wan 2.2's high- and low-noise experts) gives each its own
contexts, with their own residuals, but the contexts of the same block group
share one :class:`RunLedger`: the counts of the request. Without a pipeline to
watch (a bare transformer), or with separate CFG turned off, every transformer
call is a step of its own, as cache-dit counts them.
"""

from __future__ import annotations

import dataclasses
import logging
import math

import torch
import torch.distributed as dist

from engine_service.cache.calibrators import Calibrator, make_calibrator
from engine_service.cache.config import (
    BasicCacheConfig,
    CacheType,
    CalibratorConfig,
    DBPruneConfig,
    MagCacheConfig,
)
from engine_service.cache.masks import fit_mask

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class StepOutcome:
    """What one branch of one group did at one step.

    ``calibrated`` is set on cached steps run with a calibrator: True when it forecast the
    reused residual, False when it had too few computed steps and the stored residual was
    reused as it is.
    """

    cached: bool
    residual_diff: float | None = None
    pruned_blocks: int | None = None
    calibrated: bool | None = None


@dataclasses.dataclass
class RunTally:
    """The request's counts for one (branch, sample group), shared by the experts that run it."""

    calls: int = 0
    cached: int = 0
    continuous: int = 0
    accumulated_diff: float = 0.0
    # The last computed middle residuals of any expert: what an expert that has not computed a
    # step yet reuses at a step its static mask says to cache (the hand-over between experts).
    hidden_residual: torch.Tensor | None = None
    encoder_residual: torch.Tensor | None = None


class RunLedger:
    """Per-request counts, shared by the contexts of one block group across a pipeline's experts."""

    def __init__(self) -> None:
        self.tallies: dict[tuple[int, int], RunTally] = {}

    def tally(self, branch: int, group: int) -> RunTally:
        tally = self.tallies.get((branch, group))
        if tally is None:
            tally = self.tallies[(branch, group)] = RunTally()
        return tally

    def clear(self) -> None:
        self.tallies.clear()


def resample_curve(curve: list[float], steps: int) -> list[float]:
    """``curve`` (one value per step of a run) read at ``steps`` evenly spaced points, linearly."""
    if steps == len(curve) or len(curve) == 1:
        return list(curve) if steps == len(curve) else [curve[0]] * steps
    out = []
    for i in range(steps):
        x = i * (len(curve) - 1) / max(1, steps - 1)
        low = min(int(x), len(curve) - 2)
        out.append(curve[low] + (curve[low + 1] - curve[low]) * (x - low))
    return out


def same_layout(stored: torch.Tensor | None, current: torch.Tensor | None, rows: int | None = None) -> bool:
    """Whether ``stored`` can stand in for (or be added to) ``current``: same shape, dtype and device.

    ``rows`` compares against that many rows of ``current`` (one sample group of a batch).
    Two ``None`` match; one ``None`` does not.
    """
    if stored is None or current is None:
        return stored is None and current is None
    shape = current.shape if rows is None else (rows, *current.shape[1:])
    return stored.shape == shape and stored.dtype == current.dtype and stored.device == current.device


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
    # TeaCache: the previous step's signal and the rescaled changes accumulated since the last compute.
    signal: torch.Tensor | None = None
    signal_change: float | None = None
    accumulated_change: float = 0.0
    # MagCache: product of the curve's ratios and accumulated error since the last compute.
    magnitude_gain: float = 1.0
    magnitude_error: float = 0.0


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
        self.indicator = cache_config.cache_type
        #: Per computed step, when set: what ``ditserve calibrate-cache`` fits TeaCache and MagCache to.
        self.recording: list[dict[str, float]] | None = None
        self._signal: torch.Tensor | None = None
        self.total_steps: int | None = cache_config.num_inference_steps
        self._calls_since_refresh = 0
        self._refresh_hint = cache_config.force_refresh_step_hint
        self.outcomes: dict[tuple[int, int, int], StepOutcome] = {}
        self.ledger = RunLedger()
        self.sample_groups: tuple[int, ...] | None = None
        self._rows: dict[tuple[int, str], list[torch.Tensor]] = {}
        self.reset(self.total_steps)
        # Set by begin_call (and select_group) for the call in progress.
        self.branch = 0
        self.group = 0
        self.step = 0
        self.pipeline_step = 0
        self.past_last_step = False
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
        self.magnitude_ratios: list[float] | None = None
        config = self.cache_config
        if isinstance(config, MagCacheConfig) and config.magcache_ratios:
            steps = self.total_steps or len(config.magcache_ratios)
            self.magnitude_ratios = resample_curve(config.magcache_ratios, steps)
            retained = math.ceil(config.magcache_retention_ratio * steps)
            self.warmup_steps = self.warmup_steps | frozenset(range(retained))
        self.branches: dict[tuple[int, int], BranchState] = {}
        self.outcomes.clear()
        self.ledger.clear()
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

    def share_ledger(self, ledger: RunLedger) -> None:
        """Count the request's steps together with the other contexts holding ``ledger``."""
        self.ledger = ledger

    @property
    def tally(self) -> RunTally:
        """The request's counts for the branch and sample group in progress."""
        return self.ledger.tally(self.branch, self.group)

    def calibrator_active(self, sample_group: int | None = None) -> bool:
        """Whether the calibrator forecast at least one cached step of the last run (of ``sample_group``)."""
        return any(
            outcome.calibrated
            for (_, _, group), outcome in self.outcomes.items()
            if sample_group is None or group == sample_group
        )

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
            self.ledger.tally(branch, group).calls += 1
        self.select_group(0)
        if pipeline_step is not None and self.separate_cfg:
            self.step = pipeline_step
        else:  # every call is a step: counted over the request (all experts)
            self.step = self.tally.calls - 1
        self.pipeline_step = self.step if pipeline_step is None else pipeline_step
        # A call after the run's last scheduler step is no denoising step (AnyFlow-FAR fills its
        # attention key-value cache with the finished chunk at timestep 0): it runs every block.
        self.past_last_step = pipeline_step is not None and bool(self.total_steps) and pipeline_step >= self.total_steps

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
        if self.past_last_step or step in self.warmup_steps:
            return False
        if self.indicator in (CacheType.TeaCache, CacheType.MagCache) and self.total_steps == step + 1:
            return False  # TeaCache and MagCache always compute the last step
        mask = self.mask
        if mask is not None and step < len(mask):
            if mask[step] == 1:
                return False
            if config.steps_computation_policy == "static":
                if self.is_prune:
                    return bool(state.block_residuals)
                return state.fn_residual is not None or self.tally.hidden_residual is not None
        tally = self.tally
        if config.max_cached_steps >= 0 and tally.cached >= config.max_cached_steps:
            return False
        if config.max_continuous_cached_steps >= 0 and tally.continuous >= config.max_continuous_cached_steps:
            return False
        limit = config.max_accumulated_residual_diff_threshold
        if limit is not None and limit > 0 and tally.accumulated_diff >= limit:
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
    def decide(
        self, fn_residual: torch.Tensor, hidden: torch.Tensor | None = None, encoder: torch.Tensor | None = None
    ) -> bool:
        """DBCache: may this step reuse the middle blocks' residual? (for the selected sample group)

        ``hidden`` and ``encoder`` are what the middle blocks would get: a stored residual
        that differs from them (or the stored Fn residual from ``fn_residual``) in shape,
        dtype or device cannot be reused, so the step computes and stores again.
        """
        return self._decide([(self.group, fn_residual)], hidden, encoder, None)[0]

    def set_signal(self, signal: torch.Tensor | None) -> None:
        """TeaCache: the first block's modulated input of the call in progress (whole batch)."""
        self._signal = signal

    @torch.compiler.disable
    def decide_groups(
        self,
        fn_residuals: list[torch.Tensor],
        hidden: torch.Tensor | None = None,
        encoder: torch.Tensor | None = None,
    ) -> list[bool]:
        """:meth:`decide` for sample groups 0, 1, ... (one Fn residual each), leaving the last one selected.

        ``hidden`` and ``encoder`` are the whole batch's. The diffs of every group that needs
        one are read from the device together: one host sync per step however many requests
        share the batch.
        """
        return self._decide(list(enumerate(fn_residuals)), hidden, encoder, [r.shape[0] for r in fn_residuals])

    def _reusable(self, fn_residual: torch.Tensor, hidden, encoder, rows: int | None) -> bool:
        """Whether every stored tensor the step would reuse still fits the step's tensors."""
        state, tally = self.state, self.tally
        if state.fn_residual is not None and not same_layout(state.fn_residual, fn_residual):
            return False
        if state.fn_residual is not None:
            stored_hidden, stored_encoder = state.hidden_residual, state.encoder_residual
        else:  # an expert that has not computed yet: the hand-over residuals
            stored_hidden, stored_encoder = tally.hidden_residual, tally.encoder_residual
        if hidden is not None and not same_layout(stored_hidden, hidden, rows):
            return False
        if stored_encoder is not None and not same_layout(stored_encoder, encoder, rows):
            return False
        return True

    def _group_signal(self, group: int, rows: list[int] | None) -> torch.Tensor | None:
        signal = self._signal
        if signal is None or rows is None:
            return signal
        start = sum(rows[:group])
        return signal[start : start + rows[group]] if signal.shape[0] == sum(rows) else signal

    def _decide(self, items: list[tuple[int, torch.Tensor]], hidden, encoder, rows) -> list[bool]:
        threshold = self.cache_config.residual_diff_threshold
        tea = self.indicator == CacheType.TeaCache
        verdicts: list[bool | None] = []
        diffs: list[float | None] = []
        pending: list[tuple[int, torch.Tensor, torch.Tensor]] = []
        signals: list[torch.Tensor | None] = []
        for index, (group, fn_residual) in enumerate(items):
            self.select_group(group)
            state = self.state
            signal = self._group_signal(index, rows) if tea else None
            signals.append(signal)
            verdict, diff = self._gate(), None
            if verdict is not False and not self._reusable(
                fn_residual, hidden, encoder, None if rows is None else rows[index]
            ):
                verdict = False
            if verdict is None:
                if state.fn_residual is None:
                    verdict = False
                elif self.indicator == CacheType.MagCache:
                    verdict, diff = self._magnitude_test()
                elif tea:
                    if signal is None or state.signal is None or not same_layout(state.signal, signal):
                        verdict = False
                    else:
                        pending.append((index, state.signal, signal))
                elif threshold >= 1:
                    verdict = True
                else:
                    diff = self._shared_diff()
                    if diff is None:
                        pending.append((index, state.fn_residual, fn_residual))
            verdicts.append(verdict)
            diffs.append(diff)
        if pending:
            values = relative_l1_many([(previous, current) for _, previous, current in pending])
            for (index, _, _), diff in zip(pending, values, strict=True):
                diffs[index] = diff
        for index, ((group, _), verdict, diff) in enumerate(zip(items, verdicts, diffs, strict=True)):
            self.select_group(group)
            state = self.state
            if verdict is None:
                if tea:
                    diff = state.accumulated_change + self._rescale(diff)
                self._record_diff(diff)
                verdict = diff < threshold
                verdicts[index] = verdict
            if tea:
                current = signals[index]
                if self.recording is not None and state.signal is not None and current is not None:
                    same = same_layout(state.signal, current)
                    state.signal_change = relative_l1(state.signal, current) if same else None
                state.signal = current
                if not verdict:
                    state.accumulated_change = 0.0
                elif diff is not None:
                    state.accumulated_change = diff
            elif self.indicator == CacheType.MagCache and not verdict:
                state.magnitude_gain, state.magnitude_error = 1.0, 0.0
            self._finish_step(verdict, diff)
        return verdicts

    def _rescale(self, change: float) -> float:
        coefficients = getattr(self.cache_config, "teacache_coefficients", None)
        if not coefficients:
            return change
        value = 0.0
        for coefficient in coefficients:  # Horner, highest power first
            value = value * change + coefficient
        return max(0.0, value)  # an estimated change is never negative

    def _magnitude_test(self) -> tuple[bool | None, float | None]:
        """MagCache: multiply in this step's calibrated ratio; cache while the error stays under the threshold."""
        ratios, state = self.magnitude_ratios, self.state
        if ratios is None or self.step >= len(ratios):
            return False, None
        gain = state.magnitude_gain * ratios[self.step]
        error = state.magnitude_error + abs(1.0 - gain)
        self._record_diff(error)
        if error < self.cache_config.residual_diff_threshold:
            state.magnitude_gain, state.magnitude_error = gain, error
            return True, error
        return False, error

    def _record_diff(self, diff: float) -> None:
        self.state.residual_diffs[self.step] = diff
        if diff > 0:
            self.state.accumulated_diff += diff
            self.tally.accumulated_diff += diff

    def _finish_step(self, cached: bool, diff: float | None, pruned: int | None = None) -> None:
        state, tally = self.state, self.tally
        if cached:
            state.cached_steps.append(self.step)
            state.continuous_cached += 1
            tally.cached += 1
            tally.continuous += 1
        else:
            state.computed_steps += 1
            state.continuous_cached = 0
            tally.continuous = 0
        key = (self.pipeline_step, self.branch, self.group)
        earlier = self.outcomes.get(key)
        if earlier is not None:
            # Several calls of one branch in one pipeline step (separate CFG turned off): the
            # step counts as cached only when all of them were.
            self.outcomes[key] = StepOutcome(
                earlier.cached and cached,
                earlier.residual_diff if earlier.residual_diff is not None else diff,
                None if pruned is None else (earlier.pruned_blocks or 0) + pruned,
                earlier.calibrated,
            )
            return
        self.outcomes[key] = StepOutcome(cached, diff, pruned)

    @torch.compiler.disable
    def cached_residuals(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The middle residuals to add at a cached step: stored, or forecast by the calibrators.

        An expert that has not computed a step of this request yet (its static mask said
        cache at its first step) reuses the residuals the previous expert stored last.
        """
        state = self.state
        if state.fn_residual is None:
            return self.tally.hidden_residual, self.tally.encoder_residual
        calibrated = None
        if state.calibrator is not None:
            hidden = state.calibrator.approximate(self.step)
            calibrated = bool(getattr(state.calibrator, "forecast", False))
        else:
            hidden = state.hidden_residual
        if state.encoder_calibrator is not None and state.encoder_residual is not None:
            encoder = state.encoder_calibrator.approximate(self.step)
        else:
            encoder = state.encoder_residual
        if calibrated is not None:
            outcome = self.outcomes.get((self.pipeline_step, self.branch, self.group))
            if outcome is not None:
                outcome.calibrated = calibrated if outcome.calibrated is None else outcome.calibrated or calibrated
        return hidden, encoder

    @torch.compiler.disable
    def store(self, fn_residual: torch.Tensor, hidden: torch.Tensor, encoder: torch.Tensor | None) -> None:
        """Keep a computed step's Fn residual and middle residuals."""
        state, tally = self.state, self.tally
        if self.recording is not None:
            self._record_for_calibration(state, hidden)
        state.fn_residual = fn_residual
        state.hidden_residual = hidden
        if state.calibrator is not None:
            state.calibrator.update(self.step, hidden)
        state.encoder_residual = encoder
        if encoder is not None and state.encoder_calibrator is not None:
            state.encoder_calibrator.update(self.step, encoder)
        tally.hidden_residual, tally.encoder_residual = hidden, encoder

    def _record_for_calibration(self, state: BranchState, hidden: torch.Tensor) -> None:
        entry = {"step": float(self.step), "branch": float(self.branch)}
        entry["residual_magnitude"] = float(hidden.abs().float().mean())
        if state.hidden_residual is not None and same_layout(state.hidden_residual, hidden):
            entry["residual_change"] = relative_l1(state.hidden_residual, hidden)
        if state.signal_change is not None:
            entry["signal_change"] = state.signal_change
        assert self.recording is not None
        self.recording.append(entry)

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
    def may_prune(self, block_id: int, block_input: torch.Tensor, encoder: torch.Tensor | None = None) -> bool:
        """DBPrune: may block ``block_id`` add its stored residual instead of running?

        Never when its stored input or residuals differ from ``block_input`` / ``encoder`` in
        shape, dtype or device: the block then runs and stores again.
        """
        if not self._prune_allowed:
            return False
        state = self.state
        previous = state.block_inputs.get(block_id)
        if previous is None or not same_layout(previous, block_input):
            return False
        stored_encoder = state.block_residuals[block_id][1]
        if stored_encoder is not None and not same_layout(stored_encoder, encoder):
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


__all__ = [
    "BranchState",
    "CacheContext",
    "RunLedger",
    "RunTally",
    "StepOutcome",
    "relative_l1",
    "relative_l1_many",
    "resample_curve",
    "same_layout",
]
