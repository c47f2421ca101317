"""Human-readable rendering of results, engine info and stream progress, for terminals.

Plain-text tables (no colour, no terminal width detection) and a tqdm progress
bar driven by stream events.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, TextIO

from tqdm import tqdm

from client_sdk.types import (
    CacheStats,
    Completed,
    Event,
    ModelInfo,
    ModelList,
    Queued,
    ServerInfo,
    Started,
    Stats,
    Step,
    StepStat,
    Timings,
)

__all__ = ["step_table", "timings_line", "stats_table", "models_table", "server_line", "ProgressBar"]

_MIB = 1 << 20


def _yes_no(flag: bool | None) -> str:
    return "-" if flag is None else ("yes" if flag else "no")


def _number(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1) -> str:
    """Aligns `rows` under `headers`; the first `left` columns are left-aligned, the rest right."""
    widths = [max([len(h)] + [len(row[i]) for row in rows]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        parts = [c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(row) for row in rows)])


def step_table(cache_stats: CacheStats, steps: list[Step] | None = None) -> str:
    """One row per denoising step: what the cache did, and when given Step events, their timing.

    Ends with a footer "computed N / cached M of T steps, policy P".
    """
    events = {event.step: event for event in steps or ()}
    stats: Sequence[StepStat] = cache_stats.steps or [
        StepStat(e.step, e.cached, e.residual_diff, e.cfg_cached, e.cfg_residual_diff) for e in events.values()
    ]
    with_cfg = any(s.cfg_cached is not None for s in stats)
    headers = ["step", "timestep", "cached", "residual diff"]
    if with_cfg:
        headers += ["cfg cached", "cfg diff"]
    if steps is not None:
        headers.append("step ms")
    rows = []
    for stat in stats:
        event = events.get(stat.step)
        row = [
            str(stat.step),
            _number(event.timestep if event else None, 2),
            _yes_no(stat.cached),
            _number(stat.residual_diff, 4),
        ]
        if with_cfg:
            row += [_yes_no(stat.cfg_cached), _number(stat.cfg_residual_diff, 4)]
        if steps is not None:
            row.append(_number(event.step_ms if event else None, 1))
        rows.append(row)
    total = len(stats) or cache_stats.computed_steps + cache_stats.cached_steps
    footer = (
        f"computed {cache_stats.computed_steps} / cached {cache_stats.cached_steps} of {total} steps, "
        f"policy {cache_stats.policy or 'none'}"
    )
    return f"{_table(headers, rows, left=0)}\n{footer}"


def timings_line(t: Timings) -> str:
    """The phases of one request on one line, in milliseconds."""
    phases = [
        ("queue", t.queue_ms),
        ("prepare", t.prepare_ms),
        ("denoise", t.denoise_ms),
        ("decode", t.decode_ms),
        ("encode", t.encode_ms),
        ("total", t.total_ms),
    ]
    return " | ".join(f"{name} {ms:.1f} ms" for name, ms in phases)


def stats_table(stats: Stats) -> str:
    """Engine-wide state on one line, then one row of counters per model (means in ms)."""
    header = (
        f"device {stats.device or '-'}, up {stats.uptime_s:.0f} s, {stats.queue_depth} queued, {stats.running} running"
    )
    headers = ["model", "ok", "failed", "cancelled", "rejected", "mean ms"]
    headers += ["queue ms", "denoise ms", "outputs", "steps", "cached"]
    rows = []
    for m in stats.models:
        cached_share = f"{100 * m.cached_steps / m.steps:.0f}%" if m.steps else "-"
        counts = [m.success.count, m.failure.count, m.cancelled.count, m.rejected]
        means = [m.success.mean_ms, m.queue.mean_ms, m.denoise.mean_ms]
        rows.append(
            [m.model, *map(str, counts), *(f"{ms:.1f}" for ms in means), str(m.outputs), str(m.steps), cached_share]
        )
    return f"{header}\n{_table(headers, rows)}"


def server_line(info: ServerInfo) -> str:
    """The engine's name, version and build on one line, e.g. "ditserve 0.1.0 (ditserve.v1; torch 2.13.0, ...)"."""
    if not info.name:
        return "server: did not say its version"
    build = ", ".join(f"{name} {version}" for name, version in sorted(info.build.items()))
    return f"server: {info.name} {info.version} ({info.api}; {build})"


def _frames(model: ModelInfo) -> str:
    """The default frame count; ``video + 97`` for a model that continues its input video."""
    if model.continues_video:
        return f"{model.continues_video} + {model.default_frames}"
    return str(model.default_frames)


def _inputs(model: ModelInfo) -> str:
    """The input roles a model takes: ``image, mask`` (required), ``image (optional)``, ``control x2``
    (a multi-ControlNet model: one control image per ControlNet), ``image...`` (several, in order), then
    its input videos: ``video``, ``control video``, ``reference video``, then ``camera trajectory`` for a
    world model and ``no prompt`` for one that refuses a prompt (a video upscaler)."""
    roles = []
    for role in model.input_roles:
        text = f"{role} x{model.control_images}" if role == "control" and model.control_images > 1 else role
        if role in model.repeated_roles:
            text += "..."
        roles.append(text if role in model.required_roles else f"{text} (optional)")
    for role in model.video_roles:  # "video", or "control video", "reference video"
        text = "video" if role == "video" else f"{role} video"
        roles.append(text if role in model.required_video_roles else f"{text} (optional)")
    if model.requires_camera:
        roles.append("camera trajectory")
    if model.refuses_prompt:
        roles.append("no prompt")
    return ", ".join(roles) or "-"


def _parameters(model: ModelInfo) -> str:
    """The request parameters a model takes beyond the common ones, with their defaults."""
    shown = []
    for name in model.parameters:
        if name == "strength" and model.default_strength is not None:
            name = f"strength (default {model.default_strength:.3g})"
        elif name == "layers" and model.default_layers:
            name = f"layers (default {model.default_layers}, 1-{model.max_layers})"
        shown.append(name)
    return ", ".join(shown) or "-"


def models_table(models: ModelList) -> str:
    """One row per served model (the default marked "*"; its size "of input" where it follows the input
    image, its kind "video (HDR)" for a high-dynamic-range video model, its guidance "-" where it refuses a
    guidance scale, its frames "of video" where they follow an
    input video; its input roles, extra request parameters, and LoRA adapters last), then the engine's
    limits."""
    headers = ["model", "family", "pipeline", "kind", "size", "steps", "guidance", "frames", "blocks", "inputs"]
    headers += ["parameters", "loras"]
    rows = [
        [
            ("* " if m.is_default else "  ") + m.name,
            m.family,
            m.pipeline_class,
            f"{m.output_kind} (HDR)" if m.outputs_hdr else m.output_kind,
            f"{m.default_width}x{m.default_height}" if m.default_width else "of input",
            str(m.default_steps),
            "-" if m.refuses_guidance_scale else f"{m.default_guidance_scale:g}",
            "of video" if m.frames_from_video else _frames(m),
            str(m.num_transformer_blocks),
            _inputs(m),
            _parameters(m),
            ",".join(f"{a.name} (rank {a.rank})" for a in m.loras) or "-",
        ]
        for m in models.models
    ]
    lim = models.limits
    limits = (
        f"limits: up to {lim.max_width}x{lim.max_height} ({lim.max_pixels} px), {lim.max_steps} steps, "
        f"{lim.max_outputs} outputs, {lim.max_frames} frames, {lim.max_prompt_chars} prompt chars, "
        f"{lim.max_input_images} input images of {lim.max_input_image_bytes / _MIB:.1f} MiB, "
        f"input videos of {lim.max_input_video_bytes / _MIB:.1f} MiB, {lim.max_input_video_frames} frames and "
        f"{lim.max_input_video_pixels} px a frame, requests of {lim.max_request_bytes / _MIB:.1f} MiB, "
        f"queue {lim.max_queue}"
    )
    return f"{_table(headers, rows, left=4)}\n{limits}\n{server_line(models.server)}"


class ProgressBar:
    """A tqdm bar on stderr that follows a stream's events.

    Always drawn, also when stderr is not a terminal::

        with ProgressBar() as bar:
            for event in client.stream(prompt):
                bar.update(event)
    """

    def __init__(self, total_steps: int | None = None, *, file: TextIO | None = None) -> None:
        """`total_steps` is the bar's length if known; a Started event sets it otherwise."""
        self._bar = tqdm(
            total=total_steps,
            desc="waiting",
            unit="step",
            file=file if file is not None else sys.stderr,
            disable=False,
            dynamic_ncols=True,
        )
        self._handlers: dict[type, Callable[[Any], None]] = {
            Queued: self._queued,
            Started: self._started,
            Step: self._step,
            Completed: self._completed,
        }

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None and not self._bar.n:
            # Failed before its first step: clear the line, so the caller's error line stands alone.
            self._bar.leave = False
        self.close()

    def close(self) -> None:
        """Finishes the bar's line (kept on the screen)."""
        self._bar.close()

    def update(self, event: Event) -> None:
        """Moves the bar for one event; events without progress (previews) are ignored."""
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(event)

    def _queued(self, event: Queued) -> None:
        self._bar.set_description_str(f"queued #{event.position}")

    def _started(self, event: Started) -> None:
        self._bar.reset(total=event.total_steps)
        self._bar.set_description_str("denoising")

    def _step(self, event: Step) -> None:
        if event.total_steps and self._bar.total != event.total_steps:
            self._bar.total = event.total_steps
        self._bar.set_postfix(cached=_yes_no(event.cached), refresh=False)
        self._bar.update(event.step + 1 - self._bar.n)

    def _completed(self, event: Completed) -> None:
        total = self._bar.total or len(event.result.cache_stats.steps)
        self._bar.set_description_str("done")
        self._bar.update(total - self._bar.n)
