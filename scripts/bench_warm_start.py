"""Start-up time with --compile: a cold start (empty compile cache) against a warm restart.

Starts the engine twice in fresh processes with regional compile and the same
``--compile-cache`` directory (new and empty for the first), each time until it
would report SERVING (models loaded, every warm-up size compiled and run), and
prints both times. The second start reuses what the first saved.

    python scripts/bench_warm_start.py                       # builtin default model, inductor, 64x64
    python scripts/bench_warm_start.py --model flux=/models/FLUX.1-dev --quantize float8 --warmup-size 1024x1024
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time

_START = time.perf_counter()


def child(args: argparse.Namespace) -> None:
    """Build and warm one engine; print the seconds it took as JSON."""
    import asyncio

    from engine_service.bootstrap import ModelSource, build_engine, parse_model_arg, parse_size
    from engine_service.quant import SpeedConfig

    imported = time.perf_counter()
    speed = SpeedConfig(quantize=args.quantize, compile=True, compile_backend=args.backend, compile_mode=args.mode)
    sources = [parse_model_arg(args.model)] if args.model else [ModelSource("default")]
    engine = build_engine(
        [ModelSource(s.name, s.path, speed) for s in sources],
        device=args.device,
        warmup_sizes=tuple(parse_size(v) for v in args.warmup_size),
        compile_cache=args.cache_dir,
    )
    loaded = time.perf_counter()

    async def start_and_stop() -> float:
        await engine.start()
        ready = time.perf_counter()
        await engine.shutdown(grace_s=0)
        return ready

    ready = asyncio.run(start_and_stop())
    print(json.dumps({"import_s": imported - _START, "load_s": loaded - imported, "warmup_s": ready - loaded}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, metavar="NAME=PATH", help="default: the builtin model")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--quantize", default=None)
    parser.add_argument("--backend", default="inductor")
    parser.add_argument("--mode", default=None)
    parser.add_argument("--warmup-size", action="append", default=[], metavar="WxH")
    parser.add_argument("--cache-dir", default=None, help="default: a new temporary directory")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    with tempfile.TemporaryDirectory(prefix="compile-cache-") as fresh:
        cache_dir = args.cache_dir or fresh
        command = [sys.executable, __file__, "--child", "--cache-dir", cache_dir, *sys.argv[1:]]
        rows = []
        for label in ("cold (empty cache)", "warm (restart)"):
            started = time.perf_counter()
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            wall = time.perf_counter() - started
            rows.append((label, wall, json.loads(output.strip().splitlines()[-1])))
    print(f"| start | to SERVING s | imports s | load + speed stack s | warm-up (compile) s |  backend {args.backend}")
    print("|---|---|---|---|---|")
    for label, wall, parts in rows:
        print(f"| {label} | {wall:.1f} | {parts['import_s']:.1f} | {parts['load_s']:.1f} | {parts['warmup_s']:.1f} |")


if __name__ == "__main__":
    main()
