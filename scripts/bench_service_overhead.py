"""Service overhead: Generate through the gRPC server vs a direct in-process pipeline call.

Both run the same pipeline object in the same process, on the engine's worker
thread, one after the other, so
the difference is what the service adds: validation, queueing, the worker
thread hop, the step callback, PNG encoding, protobuf and the loopback round
trip. Prints the median of N runs per size and the server's own phase split.
``scripts/bench_gpu.py`` uses the same measurement on a FLUX.1-dev-size transformer.

    python scripts/bench_service_overhead.py [--sizes 64 512] [--runs 20] [--steps 8] [--device auto]
"""

from __future__ import annotations

import argparse
import statistics
import time

TABLE_HEADER = (
    "| size | direct pipeline ms | Generate via gRPC ms | overhead ms | overhead % | server encode ms | PNG bytes |\n"
    "|---|---|---|---|---|---|---|"
)


def overhead_rows(engine, model_name: str, sizes: list[int], runs: int, steps: int, prompt: str = "a cat") -> list[str]:
    """One markdown row per size: median direct call vs median Generate, for model ``model_name`` of ``engine``."""
    import torch

    from client_sdk import Client
    from engine_service.server.background import BackgroundServer

    model = engine.models[model_name]
    pipe = model.pipeline
    sync = torch.cuda.synchronize if engine.device.startswith("cuda") else (lambda: None)

    def direct(size: int) -> float:
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

    def direct_on_worker(size: int) -> float:
        return engine.run_on_worker(direct, size).result()

    rows = []
    with BackgroundServer(engine) as server, Client(server.address, timeout=600) as client:
        for size in sizes:
            request = dict(model=model_name, width=size, height=size, num_inference_steps=steps, seed=0)
            for _ in range(2):  # warm both paths at this size
                direct_on_worker(size)
                client.generate(prompt, **request)
            direct_ms, served_ms, encode_ms, nbytes = [], [], [], 0
            for _ in range(runs):
                direct_ms.append(direct_on_worker(size))
                start = time.perf_counter()
                result = client.generate(prompt, **request)
                served_ms.append((time.perf_counter() - start) * 1000.0)
                encode_ms.append(result.timings.encode_ms)
                nbytes = result.outputs[0].size_bytes
            d, s = statistics.median(direct_ms), statistics.median(served_ms)
            rows.append(
                f"| {size}² | {d:.1f} | {s:.1f} | {s - d:.1f} | {100 * (s - d) / d:.1f} % | "
                f"{statistics.median(encode_ms):.1f} | {nbytes} |"
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 512])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    import torch

    from engine_service.bootstrap import build_engine

    engine = build_engine([], device=args.device)
    model = engine.models[engine.default_model]
    print(
        f"device {engine.device}, model {model.name} ({type(model.pipeline).__name__}), {args.steps} steps, "
        f"median of {args.runs}, torch threads {torch.get_num_threads()}"
    )
    print(TABLE_HEADER)
    for row in overhead_rows(engine, engine.default_model, args.sizes, args.runs, args.steps):
        print(row)


if __name__ == "__main__":
    main()
