"""Calibrators: forecasts of the middle blocks' residual for cached steps.

A calibrator sees the residual of every computed step (``update``) and is asked
for an estimate at a cached step (``approximate``). It never decides *whether*
a step is cached; it only changes what a cached step adds.

- TaylorSeer of order n keeps the divided differences f[x_k..x_n] of the last
  n + 1 computed residuals (so uneven spacing between computed steps is
  handled). Its default forecast (``"taylor"``) is the Taylor series at the last
  computed step, with the k-th derivative estimated as k! f[x_{n-k}..x_n], and
  each term of order k >= 2 carried no farther than the span s_k = x_n - x_{n-k}
  its difference was measured over: ``sum_k f[x_{n-k}..x_n] min(e, s_k)^k`` for a
  step e after x_n (beyond s_k the forecast goes on along the first-order line).
  Against the interpolating polynomial (``"newton"``:
  ``sum_k f[..] e (e + h_1) ... (e + h_{k-1})``, h_j the distance back to the j-th
  previous computed step) the higher terms are damped, which matters over long
  gaps between computed steps (fast and ultra step masks, high thresholds, the
  first gap after unit-spaced warm-up steps), where the exact polynomial
  overshoots; ``"newton"`` forecasts a polynomial residual of degree <= n
  exactly. cache-dit damps differently: it divides every difference by the last
  gap h_n, ``f[..]`` with ``(k h_n)`` in place of the span. Order 1 is linear
  extrapolation from the last two computed steps in all three, the same
  arithmetic as cache-dit (TaylorSeer, arXiv 2503.06923).
  A computed step 0, 1 or 2 starts the differences afresh: the first steps of a
  denoising run move too fast to extrapolate from, so a cached step before step 3
  reuses the last computed residual as it is, and steps 0 and 1 enter a
  difference only when step 2 was cached (all as cache-dit does on a run).
- FoCa takes a Heun (trapezoid) step from the last computed residual, averaging
  the slope between the last two computed residuals and the slope of its own
  running forecast; beyond 3 steps the forecast is damped toward the anchor.
"""

from __future__ import annotations

from typing import Protocol

import torch

from engine_service.cache.config import CalibratorConfig


class Calibrator(Protocol):
    #: Whether the last ``approximate`` forecast (False: it returned the stored value as it is).
    forecast: bool

    def update(self, step: int, value: torch.Tensor) -> None: ...

    def approximate(self, step: int) -> torch.Tensor: ...

    def reset(self) -> None: ...


#: TaylorSeer forecasts: the Taylor series at the last computed step, or the interpolating polynomial.
TAYLORSEER_FORECASTS = ("taylor", "newton")


class TaylorSeerCalibrator:
    """Extrapolation of order ``order`` over the computed steps from ``FIRST_NODE`` on.

    ``forecast`` is ``"taylor"`` (damped higher terms, each carried at most as far as the
    span of computed steps it was measured over; the default) or ``"newton"`` (exact for
    polynomials of degree <= order); see the module docstring. ``update(step, value)``
    takes the residual of a computed step (any shape); ``approximate(step)`` returns a
    tensor of that shape and raises ``RuntimeError`` before any ``update``.
    """

    #: The first step whose residual may take part in a divided difference.
    FIRST_NODE = 2

    def __init__(self, order: int = 1, forecast: str = "taylor"):
        if not 1 <= order <= 4:
            raise ValueError(f"taylorseer_order must be between 1 and 4, got {order}")
        if forecast not in TAYLORSEER_FORECASTS:
            raise ValueError(f"taylorseer_forecast must be one of {', '.join(TAYLORSEER_FORECASTS)}, got {forecast!r}")
        self.order = order
        self.newton = forecast == "newton"
        self.reset()

    def reset(self) -> None:
        self._nodes: list[int] = []
        # _diffs[i] = f[x_{n-i}, ..., x_n], the divided differences ending at the newest node.
        self._diffs: list[torch.Tensor] = []
        self.forecast = False

    def update(self, step: int, value: torch.Tensor) -> None:
        if self._diffs and not _same_layout(self._diffs[0], value):
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
        factor, elapsed = 1.0, float(step - self._nodes[-1])
        for i in range(1, len(self._diffs)):
            if self.newton:
                factor *= float(step - self._nodes[-i])
            else:
                # A difference over the span s_i says nothing about the curve beyond s_i steps.
                factor = min(elapsed, float(self._nodes[-1] - self._nodes[-1 - i])) ** i if i > 1 else elapsed
            estimate = estimate + self._diffs[i] * factor
        self.forecast = len(self._diffs) > 1
        return estimate


class FoCaCalibrator:
    """Forecast then calibrate: Heun-style extrapolation anchored at the last computed step."""

    HORIZON = 3.0

    def reset(self) -> None:
        self._anchor: tuple[int, torch.Tensor] | None = None
        self._previous_anchor: tuple[int, torch.Tensor] | None = None
        self._running: tuple[int, torch.Tensor] | None = None
        self._previous_running: tuple[int, torch.Tensor] | None = None
        self.forecast = False

    def __init__(self) -> None:
        self.reset()

    def update(self, step: int, value: torch.Tensor) -> None:
        if self._anchor is not None and not _same_layout(self._anchor[1], value):
            self.reset()
        self._previous_anchor = self._anchor
        self._anchor = (step, value)
        self._previous_running = self._running
        self._running = (step, value)

    def approximate(self, step: int) -> torch.Tensor:
        if self._anchor is None:
            raise RuntimeError("FoCa has no computed step to forecast from")
        anchor_step, anchor = self._anchor
        self.forecast = False
        if self._previous_anchor is None or self._previous_running is None or self._running is None:
            return anchor
        self.forecast = True
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


def _same_layout(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and a.device == b.device


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
        forecast = getattr(config, "taylorseer_forecast", None) or config.calibrator_kwargs.get(
            "taylorseer_forecast", "taylor"
        )
        return TaylorSeerCalibrator(order=int(order), forecast=forecast)
    if kind == "foca":
        return FoCaCalibrator()
    raise ValueError(f'calibrator_type must be "taylorseer" or "foca", got {config.calibrator_type!r}')


__all__ = [
    "TAYLORSEER_FORECASTS",
    "Calibrator",
    "FoCaCalibrator",
    "TaylorSeerCalibrator",
    "make_calibrator",
]
