"""The speed stack on one GPU: eager, regional compile and compile + FP8, each without cache and with
the four static cache masks, against the targets in docs/performance.md.

A FLUX.1-dev-size transformer (19 double-stream + 38 single-stream blocks, random
bf16 weights built in code, no download) runs the 28-step denoising loop at
1024x1024 (4096 image + 512 text tokens), with the engine's own quantization
(``engine_service.quant``) and regional compile on the repeated blocks. Per row:
the time of the 28-step loop, the warm-up (first call, with compile), the speedup,
the share of the ideal cache speedup, the cost of a cached step, and the model
FLOPs utilization. The FLOPs of one step are counted by torch's FlopCounterMode.
cache-dit's masks run beside ours (eager) when cache-dit is installed. Last, the
same transformer serves through the gRPC server (tiny text encoders and VAE sized
to feed it) against a direct pipeline call: the service overhead at 1024x1024.

    python scripts/bench_gpu.py                  # one GPU (an H100 for the targets), about 15-20 min
    python scripts/bench_gpu.py --tiny           # a small model on any device, to check the script
"""

from __future__ import annotations

import argparse
import gc
import os
import pathlib
import sys
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "tests"))  # tiny_pipelines (end to end)

from bench_cache import FLUX_DEV, TINY, Loop, build, inputs, sync, timed, with_cache_dit, with_ditserve  # noqa: E402
from bench_service_overhead import TABLE_HEADER, overhead_rows  # noqa: E402

from engine_service import cache  # noqa: E402
from engine_service.models import family_for_pipeline  # noqa: E402
from engine_service.quant.compile import compile_blocks  # noqa: E402
from engine_service.quant.quantize import check_scheme, quantize_blocks  # noqa: E402

#: The targets of docs/performance.md (one H100, 1024x1024, 28 steps).
TARGETS = (
    "targets (H100, 1024², 28 steps): compile + FP8 ≤ 2.6 s; compile + FP8 + ultra mask ≤ 0.9 s; every mask ≥ 0.98 "
    "of ideal with a cached step ≤ the Fn blocks + 0.5 ms; service overhead ≤ 2 %"
)


def step_flops(transformer, batch: dict) -> int:
    """FLOPs of one transformer call on the loop's inputs (matmuls and attention, as torch counts them)."""
    timestep = torch.ones(1, device=batch["hidden_states"].device, dtype=batch["hidden_states"].dtype)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        transformer(timestep=timestep, return_dict=False, **batch)
    return counter.get_total_flops()


def make_variant(name: str, config: dict, device, dtype, scheme: str | None, backend: str, mode: str | None):
    """A fresh transformer for variant ``name``: eager, compile, or compile + quantization."""
    transformer = build(config, device, dtype)
    blocks = family_for_pipeline("FluxPipeline").block_lists
    if scheme is not None:
        quantize_blocks(transformer, blocks, check_scheme(scheme, device, dtype))
    if name != "eager":
        compile_blocks(transformer, backend, mode)
    return transformer


def _fmt(value: float | None, spec: str) -> str:
    return "" if value is None else format(value, spec)


def graphs_compiled() -> int:
    return torch._dynamo.utils.counters["stats"]["unique_graphs"]


def first_call_s(loop: Loop, device) -> float:
    start = time.perf_counter()
    with torch.inference_mode():
        loop()
    sync(device)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="a small model (128², 8 steps), to check the script")
    parser.add_argument("--size", type=int, default=None, help="image side in pixels (default 1024; tiny 128)")
    parser.add_argument("--steps", type=int, default=None, help="denoising steps (default 28; tiny 8)")
    parser.add_argument("--text-tokens", type=int, default=None, help="default 512; tiny 32")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per row, median (default 3; tiny 1)")
    parser.add_argument("--quantize", default=None, help="scheme of the quantized variant (default: float8 on CUDA, "
                        "else int8-weight-only)")  # fmt: skip
    parser.add_argument("--compile-backend", default="inductor")
    parser.add_argument("--compile-mode", default=None)
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak for MFU (H100 SXM: 989)")
    parser.add_argument("--floor-tflops", type=float, default=790.0, help="sustained matmul rate for the FLOP floor")
    parser.add_argument("--variants", default="eager,compile,compile+quant")
    parser.add_argument("--no-e2e", action="store_true", help="skip the gRPC end-to-end overhead")
    parser.add_argument("--e2e-runs", type=int, default=None, help="default 5; tiny 2")
    args = parser.parse_args()

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    tiny = args.tiny
    config = TINY if tiny else FLUX_DEV
    size = args.size or (128 if tiny else 1024)
    steps = args.steps or (8 if tiny else 28)
    text_tokens = args.text_tokens or (32 if tiny else 512)
    repeats = args.repeats or (1 if tiny else 3)
    scheme = args.quantize or ("float8" if device.type == "cuda" else "int8-weight-only")
    check_scheme(scheme, device, dtype)
    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    blocks = config["num_layers"] + config["num_single_layers"]
    print(f"# {name}, torch {torch.__version__}, {dtype}, {blocks} blocks, {size}x{size} "
          f"({(size // 16) ** 2} + {text_tokens} tokens), {steps} steps, median of {repeats}, "
          f"compile backend {args.compile_backend}, quantized variant: {scheme}")  # fmt: skip

    batch = inputs(config, size, text_tokens, device, dtype)
    os.environ.setdefault("CACHE_DIT_LOG_LEVEL", "error")  # read when cache_dit is imported
    try:
        import cache_dit  # noqa: F401

        has_cache_dit = True
    except ImportError:
        has_cache_dit = False
    masks = {policy: list(cache.steps_mask(total_steps=steps, mask_policy=policy)) for policy in cache.MASK_POLICIES}

    rows, eager_s, flops, notes = [], None, None, []
    for variant in args.variants.split(","):
        label = variant.replace("quant", scheme)
        transformer = make_variant(variant, config, device, dtype, scheme if "quant" in variant else None,
                                   args.compile_backend, args.compile_mode)  # fmt: skip
        if flops is None:
            flops = step_flops(transformer, batch)
        loop = Loop(transformer, batch, steps)
        graphs_before = graphs_compiled()
        warmup_s = first_call_s(loop, device)
        graphs_at_warmup = graphs_compiled()
        with torch.inference_mode():
            full = timed(loop, device, repeats)
        eager_s = eager_s or full
        step_ms = full / steps * 1000
        rows.append((label, "none", steps, warmup_s, full, eager_s / full, None, None, flops * steps / full))
        engines = {"ditserve": with_ditserve}
        if has_cache_dit and variant == "eager":
            engines["cache-dit"] = with_cache_dit  # it patches the forward for good: last, eager only
        for engine, enable in engines.items():
            for policy, mask in masks.items():
                computed = sum(mask)
                with enable(loop, mask) as cached_steps, torch.inference_mode():
                    seconds = timed(loop, device, repeats)
                    assert cached_steps() == steps - computed, f"{engine} cached {cached_steps()} steps"
                ideal = steps / computed
                cached_ms = (seconds * 1000 - computed * step_ms) / (steps - computed)
                mask_label = policy if engine == "ditserve" else f"{policy} (cache-dit)"
                rows.append((label, mask_label, computed, None, seconds, eager_s / seconds,
                             (full / seconds) / ideal, cached_ms, flops * computed / seconds))  # fmt: skip
        if variant == "eager":
            notes.append(f"{label}: one step {step_ms:.1f} ms")
        else:
            later = graphs_compiled() - graphs_at_warmup
            notes.append(f"{label}: warm-up {warmup_s:.1f} s compiled {graphs_at_warmup - graphs_before} graphs; "
                         f"{later} more compiled after it, with and without cache (the goal is 0)")  # fmt: skip
        del loop, transformer
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()

    print(f"\nFLOPs per step {flops / 1e12:.4g} TFLOP; FLOP floor for {steps} steps at {args.floor_tflops:.0f} "
          f"TFLOP/s: {flops * steps / args.floor_tflops / 1e12:.4g} s; MFU against {args.peak_tflops:.0f} TFLOP/s "
          "(bf16 dense; FP8 rows count the same FLOPs), over the computed steps\n")  # fmt: skip
    print("| variant | cache | computed | warm-up s | time s | speedup vs eager | of ideal | cached step ms | MFU |")
    print("|---|---|---|---|---|---|---|---|---|")
    for label, mask, computed, warmup, seconds, speedup, of_ideal, cached_ms, rate in rows:
        mfu = 100 * rate / (args.peak_tflops * 1e12)
        print(f"| {label} | {mask} | {computed}/{steps} | {_fmt(warmup, '.1f')} | {seconds:.3f} | {speedup:.2f}x | "
              f"{_fmt(of_ideal, '.3f')} | {_fmt(cached_ms, '.2f')} | {mfu:.3g} % |")  # fmt: skip
    print()
    for note in notes:
        print(f"- {note}")
    if not has_cache_dit:
        print("- cache-dit is not installed: its rows are missing")
    print(f"- {TARGETS}")

    if not args.no_e2e:
        print("\n## end to end through the gRPC server (eager transformer, tiny text encoders and VAE)\n")
        runs = args.e2e_runs or (2 if tiny else 5)
        engine = _engine(config, device, dtype, size, steps, text_tokens)
        print(TABLE_HEADER)
        for row in overhead_rows(engine, "flux-dev-size", [size], runs, steps):
            print(row)


def _engine(config: dict, device, dtype, size: int, steps: int, text_tokens: int):
    """An engine serving a FLUX pipeline around a freshly built transformer of ``config``."""
    from tiny_pipelines import build_tiny_flux

    from engine_service.config import Limits
    from engine_service.models import model_from_pipeline
    from engine_service.runtime.engine import AsyncEngine

    pipeline = build_tiny_flux(transformer=build(config, device, dtype)).to(device=device, dtype=dtype)
    defaults = {"width": size, "height": size, "steps": steps, "call_defaults": {"max_sequence_length": text_tokens}}
    model = model_from_pipeline("flux-dev-size", pipeline, device, defaults)
    return AsyncEngine({"flux-dev-size": model}, "flux-dev-size", Limits(), str(device))


if __name__ == "__main__":
    main()
