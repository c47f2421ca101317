"""Turning the cache on and off: ``enable_cache``, ``disable_cache``, ``refresh_context``, ``summary``.

Enabling touches nothing permanently. Each cached transformer gets a ``forward``
that, for the duration of one call, swaps its block lists for the runners of
:mod:`engine_service.cache.blocks`; the pipeline's scheduler gets ``set_timesteps``
and ``step`` wrappers that start a fresh run (with the run's step count) and
count steps, so the transformer calls of one step can be told apart (CFG). Every
change is an instance attribute, recorded and removed by :func:`disable_cache`,
which leaves the modules exactly as they were.

The scheduler wrappers are methods bound to the scheduler they were installed on.
A pipeline that deep-copies its scheduler gets copies whose ``set_timesteps`` is the
scheduler class's own: a copy never starts a run. A copy's ``step`` advances the
run only where the pipeline's own scheduler did not step since the last transformer
call: LTX-2 steps its video on the pipeline's scheduler and its audio track on a copy
(one step), SkyReels-V2's diffusion forcing steps one copy per latent frame and never
its own (one step too, however many frames).
"""

from __future__ import annotations

import functools
import logging
import types
from collections.abc import Sequence
from typing import Any

import torch

from engine_service.cache.adapter import BlockAdapter, GroupSpec, groups_for, pipeline_transformers, runs_cfg_branch
from engine_service.cache.blocks import (
    CachedBlocks,
    PerBlockCachedBlocks,
    PerBlockHintedCachedBlocks,
    PerBlockPrunedBlocks,
    PrunedBlocks,
)
from engine_service.cache.config import (
    BasicCacheConfig,
    CacheType,
    CalibratorConfig,
    DBCacheConfig,
    DBPruneConfig,
    ParamsModifier,
)
from engine_service.cache.context import CacheContext, RunLedger, StepOutcome
from engine_service.cache.patterns import PatternError, detect_forward_pattern, hidden_param_name
from engine_service.cache.stats import CacheStats, stats_of

logger = logging.getLogger(__name__)

_STATE = "_dit_cache_state"


class _Clock:
    """Tells each transformer call its branch (0 = conditional, 1 = CFG) and the pipeline step."""

    def __init__(self, watches_scheduler: bool, cfg_compute_first: bool):
        self.watches_scheduler = watches_scheduler
        self.cfg_compute_first = cfg_compute_first
        self.reset()

    def reset(self) -> None:
        self.scheduler_steps = 0
        self.calls_since_step: dict[int, int] = {}
        self.calls = 0
        # Since the last transformer call: whether a scheduler (the pipeline's or a copy) stepped,
        # and whether a copy's step counted as the step.
        self.stepped = False
        self.copy_counted = False

    def on_scheduler_step(self, copy: bool = False) -> None:
        """A step of the pipeline's scheduler, or of a deep copy of it (``copy``): at most one per
        step counts, a copy only where nothing stepped since the last transformer call."""
        if self.copy_counted or (copy and self.stepped):
            return
        self.stepped = True
        self.copy_counted = copy
        self.scheduler_steps += 1
        self.calls_since_step.clear()

    def next_call(self, transformer: torch.nn.Module) -> tuple[int, int | None]:
        self.stepped = self.copy_counted = False
        if self.watches_scheduler:
            index = self.calls_since_step.get(id(transformer), 0)
            self.calls_since_step[id(transformer)] = index + 1
            return self._order(index), self.scheduler_steps
        index = self.calls
        self.calls += 1
        return self._order(index % 2), None

    def _order(self, index: int) -> int:
        if self.cfg_compute_first and index < 2:
            return 1 - index
        return index


class _TransformerState:
    """What enabling changed on one transformer, and its block groups."""

    def __init__(self, transformer: torch.nn.Module, clock: _Clock, cfg_branch: bool = False):
        self.transformer = transformer
        self.clock = clock
        # A transformer of the CFG branch alone: each of its calls is that branch of the step.
        self.cfg_branch = cfg_branch
        self.groups: list[tuple[GroupSpec, CacheContext, torch.nn.Module]] = []
        self.own_forward = transformer.__dict__.get("forward")
        self.inner_forward = transformer.forward

    def install(self) -> None:
        transformer = self.transformer
        swaps = []
        for spec, _, runner in self.groups:
            if spec.per_block:  # the transformer's loop runs; each block is a slot of the runner
                slots, start = runner.slots(), 0
                for name in spec.names:
                    count = len(getattr(transformer, name))
                    swaps.append((name, torch.nn.ModuleList(slots[start : start + count])))
                    start += count
                continue
            swaps.append((spec.names[0], torch.nn.ModuleList([runner])))
            swaps.extend((name, torch.nn.ModuleList()) for name in spec.names[1:])
        inner = self.inner_forward
        contexts = [context for _, context, _ in self.groups]

        @functools.wraps(inner)
        def forward(*args, **kwargs):
            branch, step = self.clock.next_call(transformer)
            if self.cfg_branch:
                branch = 1
            for context in contexts:
                context.begin_call(branch, step)
            modules = transformer._modules
            saved = [(name, modules[name]) for name, _ in swaps]
            try:
                for name, replacement in swaps:
                    modules[name] = replacement
                return inner(*args, **kwargs)
            finally:
                for name, original in saved:
                    modules[name] = original

        transformer.forward = forward
        setattr(transformer, _STATE, self)

    def uninstall(self) -> None:
        transformer = self.transformer
        if self.own_forward is None:
            transformer.__dict__.pop("forward", None)
        else:
            transformer.forward = self.own_forward
        transformer.__dict__.pop(_STATE, None)


class _PipelineState:
    """Scheduler wrappers that start runs and count steps for the pipeline's transformers."""

    def __init__(self, pipe: Any, clock: _Clock, transformers: list[_TransformerState]):
        self.pipe = pipe
        self.clock = clock
        self.transformers = transformers
        self.scheduler = pipe.scheduler
        #: Steps of each run the scheduler starts, in order, where the pipeline says (``set_run_steps``).
        self.run_steps: tuple[int, ...] = ()
        self.runs = 0
        #: Whether a deep copy's ``set_timesteps`` after a step starts a run (``start_runs_on_copies``).
        self.copies_start_runs = False
        self.own = {
            name: self.scheduler.__dict__.get(name)
            for name in ("set_timesteps", "set_begin_index", "step")
            if hasattr(self.scheduler, name)
        }

    def contexts(self) -> list[CacheContext]:
        return [context for t in self.transformers for _, context, _ in t.groups]

    def install(self) -> None:
        scheduler = self.scheduler
        set_timesteps, step = scheduler.set_timesteps, scheduler.step

        def start_run(timesteps) -> None:
            total = len(timesteps) if timesteps is not None else None
            if self.runs < len(self.run_steps):  # a loop that runs other steps than the timesteps it sets
                total = self.run_steps[self.runs]
            self.runs += 1
            self.clock.reset()
            for context in self.contexts():
                context.reset(total)

        @functools.wraps(set_timesteps)
        def set_timesteps_and_reset(owner, *args, **kwargs):
            if owner is not scheduler:  # a deep copy of the scheduler: not the pipeline's clock
                result = type(owner).set_timesteps(owner, *args, **kwargs)
                # A loop over fresh copies (start_runs_on_copies): the first copy set after a step starts it.
                if self.copies_start_runs and self.clock.scheduler_steps:
                    start_run(getattr(owner, "timesteps", None))
                return result
            result = set_timesteps(*args, **kwargs)
            start_run(getattr(scheduler, "timesteps", None))
            return result

        set_begin_index = getattr(scheduler, "set_begin_index", None)

        def set_begin_index_and_resize(owner, begin_index: int = 0, *args, **kwargs):
            # Image-to-image and inpainting pipelines set all their timesteps, then start the loop at
            # ``begin_index`` (diffusers' ``get_timesteps``: ``int(steps - strength x steps)``): the run
            # has the steps from there on, and the step mask, warm-up and last step count those.
            if owner is not scheduler:
                return type(owner).set_begin_index(owner, begin_index, *args, **kwargs)
            result = set_begin_index(begin_index, *args, **kwargs)
            timesteps = getattr(scheduler, "timesteps", None)
            if timesteps is not None and 0 < begin_index < len(timesteps):
                self.clock.reset()
                for context in self.contexts():
                    context.reset(len(timesteps) - begin_index)
            return result

        @functools.wraps(step)
        def counted_step(owner, *args, **kwargs):
            if owner is not scheduler:  # a deep copy (per latent frame, or an audio track's)
                self.clock.on_scheduler_step(copy=True)
                return type(owner).step(owner, *args, **kwargs)
            self.clock.on_scheduler_step()
            return step(*args, **kwargs)

        # Bound methods: ``copy.deepcopy`` binds them to the copy, which the owner check then passes by.
        scheduler.set_timesteps = types.MethodType(set_timesteps_and_reset, scheduler)
        if set_begin_index is not None:
            scheduler.set_begin_index = types.MethodType(set_begin_index_and_resize, scheduler)
        scheduler.step = types.MethodType(counted_step, scheduler)
        self.pipe.__dict__[_STATE] = self

    def uninstall(self) -> None:
        for name, own in self.own.items():
            if own is None:
                self.scheduler.__dict__.pop(name, None)
            else:
                setattr(self.scheduler, name, own)
        self.pipe.__dict__.pop(_STATE, None)


def _group_config(
    base: BasicCacheConfig, calibrator: CalibratorConfig | None, modifier: ParamsModifier | None
) -> tuple[BasicCacheConfig, CalibratorConfig | None]:
    if modifier is None:
        return base.copy(), None if calibrator is None else calibrator.copy()
    config = base.overridden_by(modifier.cache_config)
    if modifier.calibrator_config is None:
        group_calibrator = None if calibrator is None else calibrator.copy()
    elif calibrator is None or type(calibrator) is not type(modifier.calibrator_config):
        group_calibrator = modifier.calibrator_config.copy()
    else:
        group_calibrator = calibrator.overridden_by(modifier.calibrator_config)
    return config, group_calibrator


def _pattern_of(spec: GroupSpec) -> tuple[Any, str]:
    first_blocks = [getattr(spec.transformer, name)[0] for name in spec.names if len(getattr(spec.transformer, name))]
    if not first_blocks:
        raise ValueError(f"block group {spec.name} of {type(spec.transformer).__name__} is empty")
    hidden_name = spec.hidden_name or hidden_param_name(first_blocks[0])
    if spec.pattern is not None:
        return spec.pattern, hidden_name
    patterns = {detect_forward_pattern(block) for block in first_blocks}
    if len(patterns) != 1:
        raise PatternError(
            f"the lists of block group {spec.name} have different forward patterns "
            f"({', '.join(sorted(p.name for p in patterns))}); they cannot cache as one group"
        )
    return patterns.pop(), hidden_name


def enable_cache(
    pipe_or_adapter: Any,
    cache_config: BasicCacheConfig | None = None,
    calibrator_config: CalibratorConfig | None = None,
    params_modifiers: Sequence[ParamsModifier] | None = None,
) -> Any:
    """Cache a pipeline, a bare transformer, or what a :class:`BlockAdapter` describes.

    ``cache_config`` defaults to ``DBCacheConfig()``; ``DBPruneConfig`` selects block pruning.
    ``params_modifiers`` holds one entry per block group (``None`` = no override). A pipeline
    starts a fresh run at every call; a bare transformer needs ``num_inference_steps`` in the
    configuration (or :func:`refresh_context`) to know where a run ends. Enabling an already
    cached target replaces its cache. Returns ``pipe_or_adapter``.
    """
    adapter = pipe_or_adapter if isinstance(pipe_or_adapter, BlockAdapter) else None
    pipe = adapter.pipe if adapter is not None else None
    if adapter is None and not isinstance(pipe_or_adapter, torch.nn.Module):
        pipe = pipe_or_adapter
    target = pipe if pipe is not None else (adapter.transformers()[0] if adapter else pipe_or_adapter)
    disable_cache(target)
    if cache_config is None:
        cache_config = DBCacheConfig()
    if cache_config.cache_type == CacheType.NONE:
        return pipe_or_adapter
    specs = groups_for(pipe_or_adapter if adapter is None else target, adapter)
    modifiers = list(params_modifiers or (adapter.params_modifiers if adapter else None) or [])
    if modifiers and len(modifiers) != len(specs):
        raise ValueError(f"give one ParamsModifier per block group ({len(specs)}: {[s.name for s in specs]})")
    watches_scheduler = pipe is not None and hasattr(pipe, "scheduler")
    separate_default = adapter.has_separate_cfg if adapter is not None else None
    clock = _Clock(watches_scheduler, bool(cache_config.cfg_compute_first))

    states: dict[int, _TransformerState] = {}
    # The contexts of the n-th block group of each of a pipeline's transformers (experts) count the
    # request's steps together.
    ledgers: dict[int, RunLedger] = {}
    for index, spec in enumerate(specs):
        config, calibrator = _group_config(cache_config, calibrator_config, modifiers[index] if modifiers else None)
        separate = config.enable_separate_cfg
        if separate is None:
            separate = separate_default if separate_default is not None else watches_scheduler
        pattern, hidden_name = _pattern_of(spec)
        blocks = spec.blocks()
        cfg_branch = runs_cfg_branch(pipe, spec.transformer)
        prefix = f"transformer_{spec.transformer_index + 1}." if spec.transformer_index else ""
        if cfg_branch:
            prefix = "cfg_transformer."
        context = CacheContext(
            name=prefix + spec.name,
            num_blocks=len(blocks),
            cache_config=config,
            calibrator_config=calibrator,
            separate_cfg=bool(separate),
            persistent=not watches_scheduler,
        )
        if isinstance(config, DBPruneConfig) or config.cache_type == CacheType.DBPrune:
            ids = getattr(config, "non_prune_block_ids", None) or ()
            pruned = PerBlockPrunedBlocks if spec.per_block else PrunedBlocks
            runner: torch.nn.Module = pruned(context, blocks, pattern, hidden_name, ids, spec.encoder_name)
        else:
            cached = PerBlockCachedBlocks if spec.per_block else CachedBlocks
            if spec.hints:
                cached = PerBlockHintedCachedBlocks
            runner = cached(context, blocks, pattern, hidden_name, spec.encoder_name)
        state = states.setdefault(id(spec.transformer), _TransformerState(spec.transformer, clock, cfg_branch))
        if watches_scheduler:
            context.share_ledger(ledgers.setdefault(len(state.groups), RunLedger()))
        state.groups.append((spec, context, runner))
    for state in states.values():
        state.install()
    if watches_scheduler:
        _PipelineState(pipe, clock, list(states.values())).install()
    logger.debug("cache enabled on %d block group(s): %s", len(specs), ", ".join(s.name for s in specs))
    return pipe_or_adapter


def _transformer_states(target: Any) -> list[_TransformerState]:
    if isinstance(target, BlockAdapter):
        target = target.pipe if target.pipe is not None else target.transformers()[0]
    pipeline_state = getattr(target, "__dict__", {}).get(_STATE) if not isinstance(target, torch.nn.Module) else None
    if isinstance(pipeline_state, _PipelineState):
        return pipeline_state.transformers
    if isinstance(target, torch.nn.Module):
        state = target.__dict__.get(_STATE)
        return [state] if isinstance(state, _TransformerState) else []
    try:
        transformers = pipeline_transformers(target)
    except ValueError:
        return []
    return [t.__dict__[_STATE] for t in transformers if isinstance(t.__dict__.get(_STATE), _TransformerState)]


def is_cached(target: Any) -> bool:
    """Whether ``target`` (a pipeline or transformer) currently has a cache enabled."""
    return bool(_transformer_states(target))


def disable_cache(target: Any) -> Any:
    """Remove the cache from a pipeline or transformer, restoring every module exactly."""
    if isinstance(target, BlockAdapter):
        target = target.pipe if target.pipe is not None else target.transformers()[0]
    if not isinstance(target, torch.nn.Module):
        pipeline_state = getattr(target, "__dict__", {}).get(_STATE)
        if isinstance(pipeline_state, _PipelineState):
            pipeline_state.uninstall()
    for state in _transformer_states(target):
        state.uninstall()
    return target


def _contexts(target: Any) -> list[CacheContext]:
    return [context for state in _transformer_states(target) for _, context, _ in state.groups]


def refresh_context(
    target: Any,
    num_inference_steps: int | None = None,
    cache_config: BasicCacheConfig | None = None,
    calibrator_config: CalibratorConfig | None = None,
    verbose: bool = False,
) -> None:
    """Start a fresh run now; optionally with a new step count or new settings.

    ``cache_config`` and ``calibrator_config`` override only their non-``None`` fields.
    """
    contexts = _contexts(target)
    if not contexts:
        raise ValueError(f"{type(target).__name__} has no cache enabled")
    for context in contexts:
        if cache_config is not None:
            merged = context.cache_config.overridden_by(cache_config)
            merged.validate(context.num_blocks)
            context.cache_config = merged
            context._refresh_hint = merged.force_refresh_step_hint
        if calibrator_config is not None:
            context.calibrator_config = calibrator_config.copy()
        if num_inference_steps is not None:
            context.cache_config.num_inference_steps = num_inference_steps
        context.reset(num_inference_steps or context.cache_config.num_inference_steps)
        if verbose:
            logger.info("cache %s refreshed: %s", context.name, context.cache_config.strify())
    for state in _transformer_states(target):
        state.clock.reset()


def summary(target: Any, details: bool = False, logging: bool = True, sample_group: int = 0) -> list[CacheStats]:
    """Statistics of the last run, one entry per block group (of ``sample_group``, when the batch
    is split into sample groups)."""
    stats = [stats_of(context, sample_group) for context in _contexts(target)]
    if logging:
        for entry in stats:
            logger.info("%s", entry.table(details=details))
    return stats


def step_outcomes(target: Any, step: int, sample_group: int = 0) -> tuple[StepOutcome | None, StepOutcome | None]:
    """What the cache did at pipeline step ``step``: (conditional branch, CFG branch).

    Over several block groups, a step counts as cached only when every group that ran
    it was cached; the diff is the first group's, pruned blocks are summed.
    """
    contexts = _contexts(target)
    return tuple(  # type: ignore[return-value]
        _merge([c.outcomes.get((step, branch, sample_group)) for c in contexts]) for branch in (0, 1)
    )


def set_sample_groups(target: Any, sizes: Sequence[int] | None) -> None:
    """Let consecutive groups of samples in every batch decide on their own (one per request).

    ``sizes`` are the samples of each group, in batch order; ``None`` makes the whole batch one
    group again. Each group keeps its own state, so it caches the same steps as it would alone.
    DBPrune decides per block for the whole batch and takes no sample groups.
    """
    for context in _contexts(target):
        if context.is_prune and sizes is not None and len(sizes) > 1:
            raise ValueError("DBPrune decides per block for the whole batch; it takes no sample groups")
        context.set_sample_groups(None if sizes is None else tuple(sizes))


def set_run_steps(pipe: Any, steps: Sequence[int] | None) -> None:
    """Tell a cached pipeline how many steps each run it starts really has, in order.

    A run starts at every ``scheduler.set_timesteps`` call and, without this, has as many steps as
    the timesteps set. A pipeline whose loop leaves some out (``LTXI2VLongMultiPromptPipeline``
    steps ``timesteps[:-1]`` in each window) gives the real counts here, so the step mask, the warm-up
    and the last step (TeaCache, MagCache) follow the steps that run. ``steps[i]`` is the count of
    the i-th run started after this call; later runs, and every run after ``None``, count their
    timesteps. Raises ValueError for a pipeline without cache or a count below 1.
    """
    state = getattr(pipe, "__dict__", {}).get(_STATE)
    if not isinstance(state, _PipelineState):
        raise ValueError("set_run_steps takes a pipeline whose cache is enabled")
    counts = tuple(steps or ())
    if any(count < 1 for count in counts):
        raise ValueError(f"every run has at least one step, got {counts}")
    state.run_steps, state.runs = counts, 0


def start_runs_on_copies(pipe: Any) -> None:
    """Let a cached pipeline's loops over fresh deep copies of its scheduler each start a run.

    ``SkyReelsV2DiffusionForcingVideoToVideoPipeline`` sets its own scheduler's timesteps once, then
    samples its video window by window: each window is a whole denoising loop over new copies of the
    scheduler (one per latent frame) whose timesteps it sets, and its own scheduler never again. After
    this call, the first copy whose ``set_timesteps`` runs after a step of the current run starts the
    next run (with the next of ``set_run_steps``' counts, else the copy's timesteps), as the pipeline's
    own ``set_timesteps`` does; copies set before any step (those of the first loop, LTX-2's audio
    scheduler) start none. Raises ValueError for a pipeline without cache.
    """
    state = getattr(pipe, "__dict__", {}).get(_STATE)
    if not isinstance(state, _PipelineState):
        raise ValueError("start_runs_on_copies takes a pipeline whose cache is enabled")
    state.copies_start_runs = True


def _merge(outcomes: list[StepOutcome | None]) -> StepOutcome | None:
    present = [o for o in outcomes if o is not None]
    if not present:
        return None
    diffs = [o.residual_diff for o in present if o.residual_diff is not None]
    pruned = [o.pruned_blocks for o in present if o.pruned_blocks is not None]
    calibrated = [o.calibrated for o in present if o.calibrated is not None]
    return StepOutcome(
        cached=all(o.cached for o in present),
        residual_diff=diffs[0] if diffs else None,
        pruned_blocks=sum(pruned) if pruned else None,
        calibrated=any(calibrated) if calibrated else None,
    )


def strify(target: Any, sample_group: int | None = None) -> str:
    """A tag for the cache settings of ``target`` (a pipeline, transformer or configuration).

    For a pipeline or transformer, the calibrator's part tells whether it forecast at all in
    the last run (``T0O1`` / ``FoCa0`` when no cached step got a forecast, e.g. fewer than two
    computed steps to difference); ``sample_group`` reads one sample group's run.
    """
    if isinstance(target, (BasicCacheConfig, CalibratorConfig)):
        return target.strify()
    contexts = _contexts(target)
    if not contexts:
        return "NONE"
    active = any(context.calibrator_active(sample_group) for context in contexts)
    tags = []
    for context in contexts:
        tag = context.cache_config.strify()
        if context.calibrator_config is not None and context.calibrator_config.enabled():
            tag += "_" + context.calibrator_config.strify(active=active)
        if tag not in tags:
            tags.append(tag)
    return "+".join(tags)


__all__ = [
    "disable_cache",
    "enable_cache",
    "is_cached",
    "refresh_context",
    "set_sample_groups",
    "step_outcomes",
    "strify",
    "summary",
]
