"""The speed stack on one GPU, in parts: eager, cache-dit, the cost of a cached step, regional compile,
compile + FP8, and the service overhead, against the targets in docs/performance.md.

A FLUX.1-dev-size transformer (19 double-stream + 38 single-stream blocks, random
bf16 weights allocated in bf16 on the device, no download) runs the 28-step
denoising loop at 1024x1024 (4096 image + 512 text tokens), with the engine's own
cache (``engine_service.cache``), quantization and regional compile
(``engine_service.quant``). Each part runs in its own process (``--variants``),
prints its rows as soon as it finishes and appends them to ``--results`` (JSON
lines); ``--table`` prints the collected tables. Parts:

    eager          no cache vs F1B0 + each static mask (slow / medium / fast / ultra)
    cache-dit      the same masks through cache-dit (refresh_context before every run), eager
    step-cost      one block, the shell (embeddings, norms, projection: no block) and a cached step,
                   each measured directly
    compile        regional compile: warm-up, then no cache vs each mask
    compile+quant  regional compile + quantization (float8 on CUDA: GPU only)
    e2e            Generate through the gRPC server vs a direct pipeline call, on a smooth image

Every mask row alternates an uncached and a cached run and takes the median of
each, so drift of the device clock (or of a shared machine) hits both. MFU is
against 989 TFLOP/s (H100 SXM dense bf16); FLOPs are counted once per part by
torch's FlopCounterMode on the uncompiled, unquantized transformer.

    python scripts/bench_gpu.py --variants eager --results results.jsonl   # one part (< 8 min on an H100)
    python scripts/bench_gpu.py --table results.jsonl                      # the collected tables
    python scripts/bench_gpu.py --tiny --variants step-cost                # a small model on any device
    scripts/bench_gpu.sh                                                   # every part, as on the GPU machine

It runs from a source checkout without installing the project (the checkout goes
on ``sys.path``) on torch 2.11 or newer; diffusers and torchao (and cache-dit for
its part; grpcio, protobuf and prometheus-client for e2e) must be importable.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import pathlib
import statistics
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
# The engine from this checkout, the sibling benchmarks, and the tiny encoders and VAE of the tests.
sys.path[:0] = [str(ROOT), str(ROOT / "scripts"), str(ROOT / "tests")]

import torch  # noqa: E402
from bench_cache import FLUX_DEV, TINY, Loop, build, inputs, one_block_ms, sync, with_cache_dit, with_ditserve  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from engine_service import cache  # noqa: E402
from engine_service.models import family_for_pipeline  # noqa: E402
from engine_service.quant.compile import compile_blocks  # noqa: E402
from engine_service.quant.quantize import check_scheme, quantize_blocks  # noqa: E402

#: Parts in the order the whole run takes them; those that need CUDA are skipped by ``bench_gpu.sh --cpu``.
PARTS = ("eager", "cache-dit", "step-cost", "compile", "compile+quant", "e2e")
GPU_ONLY = ("compile+quant",)

#: The targets of docs/performance.md (one H100, 1024x1024, 28 steps).
TARGETS = (
    "targets (H100, 1024², 28 steps): compile + FP8 ≤ 2.6 s; compile + FP8 + ultra mask ≤ 0.9 s; every mask ≥ "
    "cache-dit's fraction of ideal; a cached step ≤ the shell + the Fn blocks + 0.1 ms; service overhead ≤ 2 %"
)

TABLES = {
    "masks": ["variant", "cache", "computed", "warm-up s", "no cache s", "time s", "speedup", "of ideal", "MFU"],
    "step-cost": ["engine", "one block ms", "shell ms", "computed step ms", "cached step ms", "shell + Fn + 0.1 ms"],
    "e2e": ["size", "direct pipeline ms", "Generate via gRPC ms", "overhead ms", "overhead %", "server encode ms",
            "PNG bytes"],
}  # fmt: skip


# -- setup ------------------------------------------------------------------------------


def step_flops(transformer, batch: dict) -> int:
    """FLOPs of one call of the uncompiled, unquantized ``transformer`` (matmuls and attention, as torch counts)."""
    timestep = torch.ones(1, device=batch["hidden_states"].device, dtype=batch["hidden_states"].dtype)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        transformer(timestep=timestep, return_dict=False, **batch)
    return counter.get_total_flops()


def timed_once(fn, device) -> float:
    sync(device)
    start = time.perf_counter()
    with torch.inference_mode():
        fn()
    sync(device)
    return time.perf_counter() - start


def alternate(loop: Loop, enable, device, repeats: int, expected_cached: int) -> tuple[float, float]:
    """Median seconds of ``loop`` uncached and cached (``enable()`` a context manager giving the cached-step
    count), alternating the two after one warm-up of each."""
    uncached, cached = [], []
    for index in range(repeats + 1):
        base = timed_once(loop, device)
        with enable() as count:
            seconds = timed_once(loop, device)
            got = count()
        if got != expected_cached:
            raise RuntimeError(f"the cache skipped {got} steps, the mask {expected_cached}")
        if index:  # the first pair warms up
            uncached.append(base)
            cached.append(seconds)
    return statistics.median(uncached), statistics.median(cached)


class Bench:
    """One part's setting: the model, the device and where rows go."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.dtype = torch.bfloat16 if self.device.type == "cuda" else torch.float32
        self.config = TINY if args.tiny else FLUX_DEV
        self.size = args.size or (128 if args.tiny else 1024)
        self.steps = args.steps or (8 if args.tiny else 28)
        self.text_tokens = args.text_tokens or (32 if args.tiny else 512)
        self.repeats = args.repeats or (1 if args.tiny else 3)
        self.scheme = args.quantize or ("float8" if self.device.type == "cuda" else "int8-weight-only")
        self.masks = {
            policy: list(cache.steps_mask(total_steps=self.steps, mask_policy=policy)) for policy in cache.MASK_POLICIES
        }
        self.blocks = family_for_pipeline("FluxPipeline").block_lists

    def header(self, part: str) -> str:
        name = torch.cuda.get_device_name() if self.device.type == "cuda" else "CPU"
        count = self.config["num_layers"] + self.config["num_single_layers"]
        return (
            f"# {part}: {name}, torch {torch.__version__}, {self.dtype}, {count} blocks, {self.size}x{self.size} "
            f"({(self.size // 16) ** 2} + {self.text_tokens} tokens), {self.steps} steps, median of {self.repeats}"
        )

    def transformer(self):
        return build(self.config, self.device, self.dtype)

    def batch(self) -> dict:
        return inputs(self.config, self.size, self.text_tokens, self.device, self.dtype)

    def emit(self, part: str, table: str, cells: list[str], **values) -> None:
        """Print a row now and append it to the results file."""
        print("| " + " | ".join(cells) + " |", flush=True)
        if self.args.results:
            record = {"part": part, "table": table, "cells": cells, **values}
            with open(self.args.results, "a") as out:
                out.write(json.dumps(record) + "\n")

    def free(self) -> None:
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()


def _fmt(value: float | None, spec: str) -> str:
    return "" if value is None else format(value, spec)


# -- parts --------------------------------------------------------------------------------


def part_masks(bench: Bench, part: str) -> None:
    """No cache vs each static mask for the eager, compiled or compiled + quantized transformer; cache-dit's
    masks on the eager one."""
    transformer = bench.transformer()
    batch = bench.batch()
    flops = step_flops(transformer, batch)  # before quantization and compile: counted on plain modules
    label = part.replace("quant", bench.scheme) if part != "cache-dit" else "eager"
    notes = []
    if part == "compile+quant":
        quantize_blocks(transformer, bench.blocks, check_scheme(bench.scheme, bench.device, bench.dtype))
    compiled = None
    if part.startswith("compile"):
        compiled = compile_blocks(transformer, bench.args.compile_backend, bench.args.compile_mode)
    loop = Loop(transformer, batch, bench.steps)
    warmup_s = timed_once(loop, bench.device)  # the first call builds the graphs
    print(bench.header(part), flush=True)
    print("| " + " | ".join(TABLES["masks"]) + " |\n" + "|---" * len(TABLES["masks"]) + "|", flush=True)
    graphs = compiled.graphs if compiled is not None else 0
    enable = with_cache_dit if part == "cache-dit" else with_ditserve
    engine = "cache-dit" if part == "cache-dit" else "ditserve"
    for policy, mask in bench.masks.items():
        computed = sum(mask)
        base, seconds = alternate(
            loop, lambda mask=mask: enable(loop, mask), bench.device, bench.repeats, bench.steps - computed
        )
        speedup = base / seconds
        ideal = bench.steps / computed
        mfu = 100 * flops * computed / seconds / (bench.args.peak_tflops * 1e12)
        bench.emit(
            part,
            "masks",
            [label, f"{policy} ({engine})", f"{computed}/{bench.steps}", f"{warmup_s:.1f}", f"{base:.3f}",
             f"{seconds:.3f}", f"{speedup:.2f}x", f"{speedup / ideal:.3f}", f"{mfu:.3g} %"],
            variant=label, engine=engine, mask=policy, computed=computed, steps=bench.steps, warmup_s=warmup_s,
            uncached_s=base, cached_s=seconds, of_ideal=speedup / ideal, step_flops=flops,
        )  # fmt: skip
    if compiled is not None:
        later = compiled.graphs - graphs
        notes.append(
            f"{label}: warm-up {warmup_s:.1f} s built {graphs} graphs; {later} more after it (the goal is 0); "
            f"{compiled.eager_calls} transformer calls ran eagerly (the goal is 0)"
        )
    floor_s = flops * bench.steps / bench.args.floor_tflops / 1e12
    notes.append(f"{label}: {flops / 1e12:.4g} TFLOP per step; FLOP floor for {bench.steps} steps at "
                 f"{bench.args.floor_tflops:.0f} TFLOP/s: {floor_s:.4g} s")  # fmt: skip
    for note in notes:
        print(f"- {note}", flush=True)


def _call_times(transformer, device):
    """Per-call durations (ms) of ``transformer``'s forward, recorded by CUDA events (or the host clock)."""
    marks: list = []

    def now():
        if device.type == "cuda":
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    def before(_module, _args):
        marks.append([now(), None])

    def after(_module, _args, _output):
        marks[-1][1] = now()

    hooks = [transformer.register_forward_pre_hook(before), transformer.register_forward_hook(after)]

    def durations() -> list[float]:
        sync(device)
        if device.type == "cuda":
            return [start.elapsed_time(end) for start, end in marks]
        return [(end - start) * 1000 for start, end in marks]

    return marks, hooks, durations


def part_step_cost(bench: Bench, part: str) -> None:
    """One double-stream block, the shell (the transformer with no block) and a cached step, each timed directly."""
    transformer = bench.transformer()
    batch = bench.batch()
    repeats = max(bench.repeats, 3) * 5
    block_ms = one_block_ms(transformer, batch, bench.device, repeats)
    timestep = torch.ones(1, device=bench.device, dtype=bench.dtype)
    lists = {name: getattr(transformer, name) for name in bench.blocks}
    for name in lists:
        setattr(transformer, name, torch.nn.ModuleList())
    try:
        shell = [timed_once(lambda: transformer(timestep=timestep, return_dict=False, **batch), bench.device)
                 for _ in range(repeats + 1)][1:]  # fmt: skip
    finally:
        for name, blocks in lists.items():
            setattr(transformer, name, blocks)
    shell_ms = statistics.median(shell) * 1000
    print(bench.header(part), flush=True)
    print("| " + " | ".join(TABLES["step-cost"]) + " |\n" + "|---" * len(TABLES["step-cost"]) + "|", flush=True)
    engines = {"ditserve": with_ditserve}
    if _has_cache_dit():
        engines["cache-dit"] = with_cache_dit
    mask = bench.masks["ultra"]
    loop = Loop(transformer, batch, bench.steps)
    for engine, enable in engines.items():
        computed, cached = [], []
        for _ in range(bench.repeats + 1):
            marks, hooks, durations = _call_times(transformer, bench.device)
            try:
                with enable(loop, mask), torch.inference_mode():
                    loop()
            finally:
                for hook in hooks:
                    hook.remove()
            times = durations()
            computed += [t for t, compute in zip(times, mask, strict=True) if compute]
            cached += [t for t, compute in zip(times, mask, strict=True) if not compute]
        # the first run of each warms up: drop its share
        computed_ms = statistics.median(computed[sum(mask) :])
        cached_ms = statistics.median(cached[bench.steps - sum(mask) :])
        bound = shell_ms + block_ms + 0.1  # F1B0: one block runs on a cached step
        bench.emit(
            part,
            "step-cost",
            [engine, f"{block_ms:.2f}", f"{shell_ms:.2f}", f"{computed_ms:.2f}", f"{cached_ms:.2f}", f"{bound:.2f}"],
            engine=engine, block_ms=block_ms, shell_ms=shell_ms, computed_step_ms=computed_ms,
            cached_step_ms=cached_ms, bound_ms=bound,
        )  # fmt: skip


def part_e2e(bench: Bench, part: str) -> None:
    """Generate through the gRPC server vs a direct call, on the eager transformer, tiny encoders and a VAE that
    paints one flat colour (so PNG encoding costs what it costs for a smooth picture, not for noise)."""
    from bench_service_overhead import overhead_rows
    from tiny_pipelines import build_tiny_flux

    from engine_service.config import Limits
    from engine_service.models import model_from_pipeline
    from engine_service.runtime.engine import AsyncEngine

    # The transformer is allocated on the device in its dtype; this moves only the tiny encoders and VAE.
    pipeline = build_tiny_flux(transformer=bench.transformer()).to(device=bench.device, dtype=bench.dtype)
    with torch.no_grad():
        conv_out = pipeline.vae.decoder.conv_out
        conv_out.weight.zero_()
        conv_out.bias.copy_(torch.tensor([-0.2, 0.3, 0.6], dtype=conv_out.bias.dtype))
    defaults = {
        "width": bench.size,
        "height": bench.size,
        "steps": bench.steps,
        "call_defaults": {"max_sequence_length": bench.text_tokens},
    }
    model = model_from_pipeline("flux-dev-size", pipeline, bench.device, defaults)
    engine = AsyncEngine({"flux-dev-size": model}, "flux-dev-size", Limits(), str(bench.device))
    print(bench.header(part), flush=True)
    print("| " + " | ".join(TABLES["e2e"]) + " |\n" + "|---" * len(TABLES["e2e"]) + "|", flush=True)
    runs = bench.args.e2e_runs or (2 if bench.args.tiny else 5)
    for row in overhead_rows(engine, "flux-dev-size", [bench.size], runs, bench.steps):
        cells = [cell.strip() for cell in row.strip().strip("|").split("|")]
        bench.emit(part, "e2e", cells)


def _has_cache_dit() -> bool:
    os.environ.setdefault("CACHE_DIT_LOG_LEVEL", "error")  # read when cache_dit is imported
    try:
        import cache_dit  # noqa: F401
    except ImportError:
        return False
    return True


def run_part(bench: Bench, part: str) -> None:
    if part == "cache-dit" and not _has_cache_dit():
        print("# cache-dit: not installed, part skipped", flush=True)
        return
    if part == "compile+quant":
        check_scheme(bench.scheme, bench.device, bench.dtype)
    if part == "step-cost":
        part_step_cost(bench, part)
    elif part == "e2e":
        part_e2e(bench, part)
    else:
        part_masks(bench, part)


def print_tables(path: str) -> None:
    """The rows collected in ``path``, one markdown table per kind, in the order the parts ran."""
    records = [json.loads(line) for line in pathlib.Path(path).read_text().splitlines() if line.strip()]
    for table, headers in TABLES.items():
        rows = [record["cells"] for record in records if record["table"] == table]
        if not rows:
            continue
        print("| " + " | ".join(headers) + " |")
        print("|---" * len(headers) + "|")
        for cells in rows:
            print("| " + " | ".join(cells) + " |")
        print()
    print(f"- {TARGETS}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--variants", default=",".join(PARTS), help=f"parts to run, comma-separated: {', '.join(PARTS)}"
    )
    parser.add_argument("--results", default=None, help="append each row to this JSON-lines file")
    parser.add_argument("--table", metavar="RESULTS", default=None, help="print the tables of a results file, exit")
    parser.add_argument("--tiny", action="store_true", help="a small model (128², 8 steps), to check the script")
    parser.add_argument("--size", type=int, default=None, help="image side in pixels (default 1024; tiny 128)")
    parser.add_argument("--steps", type=int, default=None, help="denoising steps (default 28; tiny 8)")
    parser.add_argument("--text-tokens", type=int, default=None, help="default 512; tiny 32")
    parser.add_argument("--repeats", type=int, default=None, help="timed pairs per row, median (default 3; tiny 1)")
    parser.add_argument("--quantize", default=None, help="scheme of compile+quant (default: float8 on CUDA, "
                        "else int8-weight-only)")  # fmt: skip
    parser.add_argument("--compile-backend", default="inductor")
    parser.add_argument("--compile-mode", default=None)
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak for MFU (H100 SXM: 989)")
    parser.add_argument("--floor-tflops", type=float, default=790.0, help="sustained matmul rate for the FLOP floor")
    parser.add_argument("--e2e-runs", type=int, default=None, help="default 5; tiny 2")
    args = parser.parse_args()
    if args.table:
        print_tables(args.table)
        return
    parts = [part.strip() for part in args.variants.split(",") if part.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        parser.error(f"unknown parts {', '.join(unknown)}; choose from {', '.join(PARTS)}")
    bench = Bench(args)
    for part in parts:
        started = time.perf_counter()
        run_part(bench, part)  # the part's model is garbage once it returns
        bench.free()
        print(f"- part {part} took {time.perf_counter() - started:.0f} s\n", flush=True)


if __name__ == "__main__":
    main()
