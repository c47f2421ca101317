"""Cache fidelity on the trained default model: how far each cache setting moves the image.

For a fixed prompt set, every image is generated once with full compute (the
reference) and again under each cache setting, one request per prompt, as the
engine serves them:

- F1B0 DBCache with residual-difference thresholds 0.08 / 0.12 / 0.20 / 0.30
  (every other field at its DBCacheConfig default: 8 warmup steps, no caps);
- F1B0 with each static step mask (slow / medium / fast / ultra);
- F1B0 TeaCache and MagCache at three thresholds each, with the model's shipped
  calibration (``ditserve calibrate-cache``); cache-dit has neither;

each without a calibrator and with TaylorSeer of order 1 and 2 (our default,
damped forecast). For each setting
it prints the computed steps (mean over prompts), and PSNR (mean and minimum, dB)
and SSIM (mean) of the cached image against the reference, as a markdown table.
When cache-dit is installed the same settings run through it on the same pipeline,
in columns beside ours.

    python scripts/bench_fidelity.py                    # 12 prompts, 28 steps, 64x64, on the CPU
    python scripts/bench_fidelity.py --prompts 4        # a quicker look
    python scripts/bench_fidelity.py --rows threshold   # only the rows whose setting contains a word
    python scripts/bench_fidelity.py --rows mask --rows teacache,magcache   # two parts of the table

Each run computes its own references, so parts can run one after another and
their rows go together into one table. Torch runs on one
thread by default: on this small model more threads mostly wait on each other.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import math
import os
import statistics
import time
from collections.abc import Callable, Iterator

import numpy as np
import torch

from engine_service import cache
from engine_service.cache.calibrators import TAYLORSEER_FORECASTS
from engine_service.metrics import psnr, ssim
from engine_service.models import load_builtin_default, shapes
from engine_service.models.builtin import BUILTIN_CALL_DEFAULTS, BUILTIN_DEFAULTS

THRESHOLDS = (0.08, 0.12, 0.20, 0.30)
TEACACHE_THRESHOLDS = (0.2, 0.4, 0.8)
MAGCACHE_THRESHOLDS = (0.06, 0.12, 0.24)
TAYLORSEER_ORDERS = (0, 1, 2)

#: (label, configuration fields) for every setting the table has, all F1B0.
SETTINGS: list[tuple[str, dict]] = [
    *((f"threshold {t:.2f}", {"residual_diff_threshold": t}) for t in THRESHOLDS),
    *((f"mask {policy}", {"mask_policy": policy}) for policy in cache.MASK_POLICIES),
    *((f"TeaCache {t}", {"cache_type": "teacache", "residual_diff_threshold": t}) for t in TEACACHE_THRESHOLDS),
    *((f"MagCache {t}", {"cache_type": "magcache", "residual_diff_threshold": t}) for t in MAGCACHE_THRESHOLDS),
]
#: The default model's shipped TeaCache coefficients and MagCache curve (read in main).
CALIBRATION: dict = {}
#: ditserve's TaylorSeer forecast (``--forecast``).
FORECAST = ["taylor"]


def config_fields(fields: dict, steps: int) -> dict:
    """DBCacheConfig keyword arguments (shared by both engines) for one setting."""
    fields = dict(fields)
    base = {"Fn_compute_blocks": 1, "Bn_compute_blocks": 0}
    policy = fields.pop("mask_policy", None)
    if policy is not None:
        mask = list(cache.steps_mask(total_steps=steps, mask_policy=policy))
        base.update(steps_computation_mask=mask, steps_computation_policy="static")
    return {**base, **fields}


@contextlib.contextmanager
def ditserve_cache(pipe, fields: dict, order: int) -> Iterator[Callable[[], int]]:
    calibrator = None
    if order:
        calibrator = cache.TaylorSeerCalibratorConfig(taylorseer_order=order, taylorseer_forecast=FORECAST[0])
    fields = dict(fields)
    kind = fields.pop("cache_type", "dbcache")
    if kind == "teacache":
        config = cache.TeaCacheConfig(**fields, teacache_coefficients=CALIBRATION["teacache_coefficients"])
    elif kind == "magcache":
        config = cache.MagCacheConfig(**fields, magcache_ratios=CALIBRATION["magcache_ratios"])
    else:
        config = cache.DBCacheConfig(**fields)
    cache.enable_cache(pipe, config, calibrator_config=calibrator)
    try:
        yield lambda: sum(len(s.cached_steps) for s in cache.summary(pipe, logging=False))
    finally:
        cache.disable_cache(pipe)


@contextlib.contextmanager
def cache_dit_cache(pipe, fields: dict, order: int) -> Iterator[Callable[[], int]]:
    import cache_dit

    calibrator = cache_dit.TaylorSeerCalibratorConfig(taylorseer_order=order) if order else None
    cache_dit.enable_cache(pipe, cache_config=cache_dit.DBCacheConfig(**fields), calibrator_config=calibrator)
    try:
        # cache-dit may add transformer-level entries after the block list's; the first one decides.
        yield lambda: len(cache_dit.summary(pipe, logging=False)[0].cached_steps)
    finally:
        cache_dit.disable_cache(pipe)


def generate(pipe, prompt: str, seed: int, steps: int) -> np.ndarray:
    with torch.inference_mode():
        image = pipe(
            prompt,
            width=BUILTIN_DEFAULTS["width"],
            height=BUILTIN_DEFAULTS["height"],
            num_inference_steps=steps,
            generator=torch.Generator().manual_seed(seed),
            output_type="np",
            **BUILTIN_CALL_DEFAULTS,
        ).images[0]
    return np.round(image * 255).astype(np.uint8)  # what the engine encodes


def measure(pipe, enable, fields: dict, order: int, prompts, references, steps: int) -> dict:
    """Computed steps and PSNR / SSIM against the references, over every prompt."""
    computed, psnrs, ssims = [], [], []
    for seed, (prompt, reference) in enumerate(zip(prompts, references, strict=True)):
        with enable(pipe, fields, order) as cached_steps:
            image = generate(pipe, prompt, seed, steps)
            computed.append(steps - cached_steps())
        psnrs.append(psnr(image, reference))
        ssims.append(ssim(image, reference))
    return {
        "computed": statistics.mean(computed),
        "psnr_mean": _mean_db(psnrs),
        "psnr_min": min(psnrs),
        "ssim": statistics.mean(ssims),
    }


def _mean_db(values: list[float]) -> float:
    """Mean PSNR; an identical image (infinite PSNR) makes the mean infinite, shown as "identical"."""
    return math.inf if any(math.isinf(v) for v in values) else statistics.mean(values)


def _db(value: float) -> str:
    return "identical" if math.isinf(value) else f"{value:.1f}"


def _cells(result: dict | None, steps: int) -> str:
    if result is None:
        return "| | | "
    return (f"| {result['computed']:.1f}/{steps} | {_db(result['psnr_mean'])} / {_db(result['psnr_min'])} "
            f"| {result['ssim']:.4f} ")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=12, help="prompts in the set (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=28, help="denoising steps (default: %(default)s)")
    parser.add_argument(
        "--rows",
        action="append",
        default=[],
        metavar="WORD[,WORD...]",
        help="only the settings whose label contains one of the words, case-insensitive "
        "(threshold, mask, ultra, 0.30, teacache, magcache, ...); default: every setting",
    )
    parser.add_argument(
        "--orders",
        default=",".join(map(str, TAYLORSEER_ORDERS)),
        help="TaylorSeer orders, 0 = no calibrator (default: %(default)s)",
    )
    parser.add_argument(
        "--forecast",
        choices=TAYLORSEER_FORECASTS,
        default="taylor",
        help="ditserve's TaylorSeer forecast, taylorseer_forecast (default: %(default)s)",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: %(default)s)")
    args = parser.parse_args()
    FORECAST[0] = args.forecast
    torch.set_num_threads(args.threads)
    settings = select_settings([word for group in args.rows for word in group.split(",")])
    if not settings:
        parser.error(f"no setting matches --rows; the settings are: {', '.join(label for label, _ in SETTINGS)}")
    orders = tuple(int(order) for order in args.orders.split(","))

    started = time.perf_counter()
    model = load_builtin_default(torch.device("cpu"), torch.float32)
    pipe = model.pipeline
    CALIBRATION.update(model.cache_calibration)
    prompts = shapes.prompt_set(args.prompts)
    references = [generate(pipe, prompt, seed, args.steps) for seed, prompt in enumerate(prompts)]

    engines = {"ditserve": ditserve_cache}
    os.environ.setdefault("CACHE_DIT_LOG_LEVEL", "error")  # read when cache_dit is imported
    try:
        import cache_dit  # noqa: F401

        engines["cache-dit"] = cache_dit_cache
    except ImportError:
        print("(cache-dit is not installed: only ditserve is measured)\n")

    # ditserve first: cache-dit patches the FLUX transformer's forward for good.
    results: dict[tuple[str, str, int], dict] = {}
    for engine, enable in engines.items():
        for (label, setting), order in itertools.product(settings, orders):
            if engine != "ditserve" and "cache_type" in setting:
                continue  # cache-dit has no TeaCache or MagCache
            fields = config_fields(setting, args.steps)
            results[engine, label, order] = measure(pipe, enable, fields, order, prompts, references, args.steps)

    print(f"# default model (64x64), {len(prompts)} prompts, {args.steps} steps, F1B0; cached vs full compute; "
          f"PSNR mean / min in dB, SSIM mean; ditserve's TaylorSeer forecast: {args.forecast}")  # fmt: skip
    header = "| setting | TaylorSeer | " + " | ".join(f"{e} computed | {e} PSNR | {e} SSIM" for e in engines) + " |"
    print(header)
    print("|" + "---|" * (2 + 3 * len(engines)))
    print("| none (the reference) | off " + f"| {args.steps}/{args.steps} | identical | 1.0000 " * len(engines) + "|")
    for (label, _), order in itertools.product(settings, orders):
        cells = "".join(_cells(results.get((engine, label, order)), args.steps) for engine in engines)
        print(f"| {label} | {order or 'off'} {cells}|")
    if any(engine == "cache-dit" for engine, _, _ in results):
        print()
    for order in orders:
        compared = [
            (results["ditserve", label, order]["psnr_mean"], results["cache-dit", label, order]["psnr_mean"])
            for label, _ in settings
            if ("cache-dit", label, order) in results
        ]
        if compared:
            at_least = sum(ours >= theirs for ours, theirs in compared)
            print(f"TaylorSeer {order or 'off'}: ditserve's mean PSNR >= cache-dit's in "
                  f"{at_least} of {len(compared)} rows")  # fmt: skip
    print(f"\n({time.perf_counter() - started:.0f} s)")


def select_settings(words: list[str]) -> list[tuple[str, dict]]:
    """The settings whose label contains one of ``words`` (case-insensitive); all of them for none."""
    if not words:
        return list(SETTINGS)
    return [(label, fields) for label, fields in SETTINGS if any(w.lower() in label.lower() for w in words)]


if __name__ == "__main__":
    main()
