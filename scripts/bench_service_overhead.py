"""Service overhead: Generate through the gRPC server vs a direct in-process pipeline call.

Both run the same pipeline object in the same process, on the engine's device thread,
alternating one direct call and one Generate, so the difference is what the service adds:
validation, queueing, the thread hops, the step callback, PNG encoding, protobuf and the
loopback round trip. Prints the median of N runs per size and step count, and the served /
direct ratio. ``scripts/bench_gpu.py`` uses the same measurement on a FLUX.1-dev-size
transformer.

``--encoding`` measures instead what encoding off the device thread gives: the time per
request of a queue of requests sent together, served by an engine that encodes on its
encoder threads and by one that encodes on the device thread (alternating rounds), for a
512² PNG of the default model and a 9-frame MP4 of a tiny Wan pipeline built in code.

    python scripts/bench_service_overhead.py [--sizes 64] [--steps 20 40] [--runs 20] [--device auto]
    python scripts/bench_service_overhead.py --encoding [--requests 4] [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import pathlib
import statistics
import sys
import time

TABLE_HEADER = (
    "| size | direct pipeline ms | Generate via gRPC ms | overhead ms | overhead % | server encode ms | PNG bytes |\n"
    "|---|---|---|---|---|---|---|"
)
ENCODING_HEADER = (
    "| output | requests | per request, encoded on the device thread ms | per request, encoder threads ms | "
    "ratio | encode ms (median) |\n|---|---|---|---|---|---|"
)


def overhead_rows(engine, model_name: str, sizes: list[int], runs: int, steps: int, prompt: str = "a cat") -> list[str]:
    """One markdown row per size: median direct call vs median Generate, for model ``model_name`` of ``engine``."""
    return overhead_tables(engine, model_name, sizes, runs, [steps], prompt)[steps]


def overhead_tables(
    engine, model_name: str, sizes: list[int], runs: int, step_counts: list[int], prompt: str = "a cat"
) -> dict[int, list[str]]:
    """``overhead_rows`` for each step count, all through one server (it stops ``engine`` at the end)."""
    import torch

    from client_sdk import Client
    from engine_service.server.background import BackgroundServer

    model = engine.models[model_name]
    pipe = model.pipeline
    sync = torch.cuda.synchronize if engine.device.startswith("cuda") else (lambda: None)

    def direct(size: int, steps: int) -> float:
        start = time.perf_counter()
        with torch.inference_mode():
            pipe(
                prompt=prompt,
                width=size,
                height=size,
                num_inference_steps=steps,
                generator=torch.Generator("cpu").manual_seed(0),
                output_type="np",
                **model.call_defaults,
            )
        sync()
        return (time.perf_counter() - start) * 1000.0

    def direct_on_worker(size: int, steps: int) -> float:
        return engine.run_on_worker(direct, size, steps).result()

    tables: dict[int, list[str]] = {}
    with BackgroundServer(engine) as server, Client(server.address, timeout=600) as client:
        for size, steps in itertools.product(sizes, step_counts):
            request = dict(model=model_name, width=size, height=size, num_inference_steps=steps, seed=0)
            for _ in range(2):  # warm both paths at this size
                direct_on_worker(size, steps)
                client.generate(prompt, **request)
            direct_ms, served_ms, encode_ms, nbytes = [], [], [], 0
            for _ in range(runs):
                direct_ms.append(direct_on_worker(size, steps))
                start = time.perf_counter()
                result = client.generate(prompt, **request)
                served_ms.append((time.perf_counter() - start) * 1000.0)
                encode_ms.append(result.timings.encode_ms)
                nbytes = result.outputs[0].size_bytes
            d, s = statistics.median(direct_ms), statistics.median(served_ms)
            tables.setdefault(steps, []).append(
                f"| {size}² | {d:.1f} | {s:.1f} | {s - d:.1f} | {100 * (s - d) / d:.1f} % | "
                f"{statistics.median(encode_ms):.1f} | {nbytes} |"
            )
            print(f"{steps} steps: {tables[steps][-1]}  served / direct {s / d:.3f}", flush=True)
    return tables


# -- encoding on the device thread or off it ---------------------------------------------


async def _queue_of(address: str, count: int, prompt: str, request: dict) -> tuple[float, list]:
    from client_sdk import AsyncClient

    async with AsyncClient(address, timeout=600) as client:
        start = time.perf_counter()
        results = await asyncio.gather(*(client.generate(prompt, seed=i, **request) for i in range(count)))
        return (time.perf_counter() - start) * 1000.0 / count, results


def encoding_rows(device: str, count: int, runs: int) -> list[str]:
    """Per-request time of ``count`` queued requests, outputs encoded on the device thread vs on encoder threads."""
    import torch

    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "tests"))
    from tiny_pipelines import build_tiny_wan

    from engine_service.bootstrap import build_engine
    from engine_service.models import model_from_pipeline
    from engine_service.runtime.engine import AsyncEngine
    from engine_service.server.background import BackgroundServer

    loaded = build_engine([], device=device)
    wan_defaults = {"width": 256, "height": 256, "frames": 9, "steps": 8, "call_defaults": {"max_sequence_length": 16}}
    wan = model_from_pipeline("wan", build_tiny_wan(), torch.device(loaded.device), wan_defaults)
    models = {**loaded.models, "wan": wan}
    cases = {
        "512² PNG (default model, 8 steps)": (
            "a cat",
            dict(model=loaded.default_model, width=512, height=512, num_inference_steps=8, output_format="png"),
        ),
        "9-frame 256² MP4 (tiny Wan, 8 steps)": (
            "a cat",
            dict(model="wan", num_frames=9, width=256, height=256, num_inference_steps=8, output_format="mp4"),
        ),
    }
    engines = {
        threads: AsyncEngine(models, loaded.default_model, loaded.limits, loaded.device, encode_threads=threads)
        for threads in (0, 2)
    }
    rows = []
    with BackgroundServer(engines[0]) as inline, BackgroundServer(engines[2]) as pooled:
        servers = {0: inline, 2: pooled}
        for name, (prompt, request) in cases.items():
            per_request: dict[int, list[float]] = {0: [], 2: []}
            encode_ms: list[float] = []
            for run in range(runs + 1):  # the first round warms both engines at this size
                for threads, server in servers.items():
                    ms, results = asyncio.run(_queue_of(server.address, count, prompt, request))
                    if run:
                        per_request[threads].append(ms)
                        encode_ms.extend(r.timings.encode_ms for r in results)
            on_device, off_device = statistics.median(per_request[0]), statistics.median(per_request[2])
            rows.append(
                f"| {name} | {count} | {on_device:.1f} | {off_device:.1f} | {off_device / on_device:.3f} | "
                f"{statistics.median(encode_ms):.1f} |"
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64])
    parser.add_argument("--steps", type=int, nargs="+", default=[20, 40])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--encoding", action="store_true", help="measure encoding on vs off the device thread")
    parser.add_argument("--requests", type=int, default=4, help="--encoding: requests sent together")
    args = parser.parse_args()

    import torch

    if args.encoding:
        print(f"median of {args.runs} rounds, torch threads {torch.get_num_threads()}")
        print(ENCODING_HEADER)
        for row in encoding_rows(args.device, args.requests, args.runs):
            print(row, flush=True)
        return

    from engine_service.bootstrap import build_engine

    engine = build_engine([], device=args.device)
    model = engine.models[engine.default_model]
    print(
        f"device {engine.device}, model {model.name} ({type(model.pipeline).__name__}), "
        f"median of {args.runs}, alternated, torch threads {torch.get_num_threads()}"
    )
    tables = overhead_tables(engine, engine.default_model, args.sizes, args.runs, args.steps)
    for steps, rows in tables.items():
        print(f"\n{steps} steps\n{TABLE_HEADER}")
        print("\n".join(rows))


if __name__ == "__main__":
    main()
