"""Calibrating TeaCache and MagCache for one model from full-compute runs.

Both indicators need per-model data, measured once on runs that compute every step:

- TeaCache's rescaling polynomial maps the relative L1 change of the first block's
  timestep-modulated input between consecutive steps (``x``) to the relative L1 change of
  the middle blocks' residual (``y``), the quantity whose smallness makes reuse safe. It is
  fitted by least squares (``numpy.polyfit``) over every step of every run. TeaCache's
  published fits are of degree 4 over many prompts; the default here is a line, which stays
  monotone outside the narrow range of changes a few calibration runs see (a parabola fitted
  to them turns negative for large changes, i.e. it would call a big change no change).
- MagCache's curve is, per step ``t``, ``mean|R(t)| / mean|R(t-1)|`` of the middle blocks'
  residual ``R``, averaged over the runs (step 0: 1.0).

``ditserve calibrate-cache`` runs this on a model and stores the result in the model
directory's ``ditserve.json`` (key ``cache``), where the engine reads it.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from engine_service.cache.api import _contexts, disable_cache, enable_cache, start_runs_on_copies
from engine_service.cache.config import TeaCacheConfig


@dataclasses.dataclass
class IndicatorCalibration:
    """What TeaCache and MagCache need for one model (JSON-ready through :meth:`as_json`)."""

    steps: int
    """Steps of the calibration runs (the MagCache curve has one entry per step)."""
    Fn_compute_blocks: int
    """The Fn the residuals were measured with: use the same in requests."""
    teacache_coefficients: list[float]
    """Rescaling polynomial, highest power first."""
    magcache_ratios: list[float]
    """Magnitude ratio per step."""
    runs: int

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _loops(recording: list[dict[str, float]]) -> list[list[dict[str, float]]]:
    """One context's entries, in the order recorded, split into denoising loops: a loop starts again where
    the step index goes back (a pipeline of several loops, each counted from step 0)."""
    loops: list[list[dict[str, float]]] = []
    last = None
    for entry in recording:
        if last is None or entry["step"] < last:
            loops.append([])
        loops[-1].append(entry)
        last = entry["step"]
    return loops


def calibrate(
    pipe: Any,
    runs: Iterable[Callable[[], object]],
    Fn_compute_blocks: int = 1,
    degree: int = 1,
    *,
    loops_on_scheduler_copies: bool = False,
) -> IndicatorCalibration:
    """Run each callable of ``runs`` (one full pipeline call each, same step count) and fit both indicators.

    The cache is enabled in a mode that never reuses anything (outputs are those of the plain
    pipeline) and removed afterwards. A call of several denoising loops (tiles, windows, chunks) gives
    one curve sample per loop, each loop's steps counted from 0, as the engine counts them when it serves
    the model; ``loops_on_scheduler_copies``: its loops set fresh copies of the scheduler
    (:func:`~engine_service.cache.start_runs_on_copies`). Raises ``ValueError`` when the runs gave too
    few steps to fit.
    """
    enable_cache(pipe, TeaCacheConfig(Fn_compute_blocks=Fn_compute_blocks, residual_diff_threshold=0.0))
    if loops_on_scheduler_copies:
        start_runs_on_copies(pipe)
    recorded: list[list[dict[str, float]]] = []  # one entry list per denoising loop
    calls = 0
    try:
        for run in runs:
            calls += 1
            contexts = _contexts(pipe)
            for context in contexts:
                context.recording = []
            run()
            per_context = [_loops([e for e in context.recording or [] if e["branch"] == 0]) for context in contexts]
            for loop in range(max((len(loops) for loops in per_context), default=0)):
                entries = [e for loops in per_context if loop < len(loops) for e in loops[loop]]
                recorded.append(sorted(entries, key=lambda e: e["step"]))
    finally:
        disable_cache(pipe)
    if not recorded:
        raise ValueError("calibration needs at least one run")
    steps = 1 + int(max(e["step"] for run in recorded for e in run))
    xs = [e["signal_change"] for run in recorded for e in run if "signal_change" in e and "residual_change" in e]
    ys = [e["residual_change"] for run in recorded for e in run if "signal_change" in e and "residual_change" in e]
    if len(xs) <= degree:
        raise ValueError(f"calibration got {len(xs)} step pairs; a degree-{degree} fit needs more")
    coefficients = [float(c) for c in np.polyfit(np.asarray(xs), np.asarray(ys), degree)]
    ratios = [1.0]
    for step in range(1, steps):
        per_run = []
        for run in recorded:
            by_step = {int(e["step"]): e["residual_magnitude"] for e in run}
            if step in by_step and step - 1 in by_step and by_step[step - 1] > 0:
                per_run.append(by_step[step] / by_step[step - 1])
        ratios.append(statistics.mean(per_run) if per_run else 1.0)
    return IndicatorCalibration(
        steps=steps,
        Fn_compute_blocks=Fn_compute_blocks,
        teacache_coefficients=coefficients,
        magcache_ratios=[float(r) for r in ratios],
        runs=calls,
    )


__all__ = ["IndicatorCalibration", "calibrate"]
