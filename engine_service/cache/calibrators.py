"""Calibrators: forecasts of the middle blocks' residual for cached steps.

A calibrator sees the residual of every computed step (``update``) and is asked
for an estimate at a cached step (``approximate``). It never decides *whether*
a step is cached; it only changes what a cached step adds.

- TaylorSeer of order n extrapolates the polynomial through the last n + 1
  computed residuals (Newton's divided differences, so uneven spacing between
  computed steps is handled exactly): a residual that is a polynomial of degree
  <= n in the step index is forecast exactly. Order 1 is linear extrapolation
  from the last two computed steps. Steps 0 and 1 never enter a difference:
  the first steps of a denoising run move too fast to extrapolate from, so a
  cached step before step 3 reuses the last computed residual as it is (as
  cache-dit does).
- FoCa takes a Heun (trapezoid) step from the last computed residual, averaging
  the slope between the last two computed residuals and the slope of its own
  running forecast; beyond 3 steps the forecast is damped toward the anchor.
"""

from __future__ import annotations

from typing import Protocol

import torch

from engine_service.cache.config import CalibratorConfig


class Calibrator(Protocol):
    def update(self, step: int, value: torch.Tensor) -> None: ...

    def approximate(self, step: int) -> torch.Tensor: ...

    def reset(self) -> None: ...


class TaylorSeerCalibrator:
    """Polynomial extrapolation of order ``order`` over the computed steps from ``FIRST_NODE`` on."""

    #: The first step whose residual may take part in a divided difference.
    FIRST_NODE = 2

    def __init__(self, order: int = 1):
        if not 1 <= order <= 4:
            raise ValueError(f"taylorseer_order must be between 1 and 4, got {order}")
        self.order = order
        self.reset()

    def reset(self) -> None:
        self._nodes: list[int] = []
        # _diffs[i] = f[x_{n-i}, ..., x_n], the divided differences ending at the newest node.
        self._diffs: list[torch.Tensor] = []

    def update(self, step: int, value: torch.Tensor) -> None:
        if self._diffs and self._diffs[0].shape != value.shape:
            self.reset()
        if (self._nodes and step <= self._nodes[-1]) or step <= self.FIRST_NODE:
            self.reset()  # a new run, or a node that no difference may reach back to
        diffs = [value]
        for i, previous in enumerate(self._diffs[: self.order]):
            diffs.append((diffs[i] - previous) / float(step - self._nodes[-1 - i]))
        self._nodes = ([*self._nodes, step])[-(self.order + 1) :]
        self._diffs = diffs

    def approximate(self, step: int) -> torch.Tensor:
        if not self._diffs:
            raise RuntimeError("TaylorSeer has no computed step to extrapolate from")
        estimate = self._diffs[0]
        factor = 1.0
        for i in range(1, len(self._diffs)):
            factor *= float(step - self._nodes[-i])
            estimate = estimate + self._diffs[i] * factor
        return estimate


class FoCaCalibrator:
    """Forecast then calibrate: Heun-style extrapolation anchored at the last computed step."""

    HORIZON = 3.0

    def reset(self) -> None:
        self._anchor: tuple[int, torch.Tensor] | None = None
        self._previous_anchor: tuple[int, torch.Tensor] | None = None
        self._running: tuple[int, torch.Tensor] | None = None
        self._previous_running: tuple[int, torch.Tensor] | None = None

    def __init__(self) -> None:
        self.reset()

    def update(self, step: int, value: torch.Tensor) -> None:
        if self._anchor is not None and self._anchor[1].shape != value.shape:
            self.reset()
        self._previous_anchor = self._anchor
        self._anchor = (step, value)
        self._previous_running = self._running
        self._running = (step, value)

    def approximate(self, step: int) -> torch.Tensor:
        if self._anchor is None:
            raise RuntimeError("FoCa has no computed step to forecast from")
        anchor_step, anchor = self._anchor
        if self._previous_anchor is None or self._previous_running is None or self._running is None:
            return anchor
        slope_anchor = _slope(self._previous_anchor, self._anchor)
        slope_running = _slope(self._previous_running, self._running)
        elapsed = float(step - anchor_step)
        if elapsed <= self.HORIZON:
            forecast = anchor + (elapsed / 2.0) * (slope_anchor + slope_running)
        else:
            weight = self.HORIZON / elapsed
            far = anchor + (self.HORIZON / 2.0) * (slope_anchor + slope_running)
            forecast = weight * far + (1.0 - weight) * anchor
        self._previous_running = self._running
        self._running = (step, forecast)
        return forecast


def _slope(earlier: tuple[int, torch.Tensor], later: tuple[int, torch.Tensor]) -> torch.Tensor:
    span = max(1, later[0] - earlier[0])
    return (later[1] - earlier[1]) / float(span)


def make_calibrator(config: CalibratorConfig | None) -> Calibrator | None:
    """The calibrator a configuration asks for, or ``None``."""
    if config is None or not config.enabled():
        return None
    if config.calibrator_cache_type != "residual":
        raise ValueError(
            f'calibrator_cache_type must be "residual" (forecasts of the middle residual), '
            f"got {config.calibrator_cache_type!r}"
        )
    kind = (config.calibrator_type or "taylorseer").lower()
    if kind == "taylorseer":
        order = getattr(config, "taylorseer_order", None) or config.calibrator_kwargs.get("taylorseer_order", 1)
        return TaylorSeerCalibrator(order=int(order))
    if kind == "foca":
        return FoCaCalibrator()
    raise ValueError(f'calibrator_type must be "taylorseer" or "foca", got {config.calibrator_type!r}')


__all__ = ["Calibrator", "FoCaCalibrator", "TaylorSeerCalibrator", "make_calibrator"]
