"""Service overhead: Generate through the gRPC server vs a direct in-process pipeline call.

Both run the same pipeline object in the same process, on the engine's worker
thread, one after the other, so
the difference is what the service adds: validation, queueing, the worker
thread hop, the step callback, PNG encoding, protobuf and the loopback round
trip. Prints the median of N runs per size and the server's own phase split.

    python scripts/bench_service_overhead.py [--sizes 64 512] [--runs 20] [--steps 8] [--device auto]
"""

from __future__ import annotations

import argparse
import statistics
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 512])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    import torch

    from client_sdk import Client
    from engine_service.bootstrap import build_engine
    from engine_service.server.background import BackgroundServer

    engine = build_engine([], device=args.device)
    model = engine.models[engine.default_model]
    pipe = model.pipeline
    sync = torch.cuda.synchronize if engine.device.startswith("cuda") else (lambda: None)

    def direct_on_worker(size: int) -> float:
        return engine.run_on_worker(direct, size).result()

    def direct(size: int) -> float:
        start = time.perf_counter()
        with torch.inference_mode():
            pipe(
                prompt="a cat",
                width=size,
                height=size,
                num_inference_steps=args.steps,
                generator=torch.Generator("cpu").manual_seed(0),
                output_type="np",
                **model.call_defaults,
            )
        sync()
        return (time.perf_counter() - start) * 1000.0

    print(
        f"device {engine.device}, model {model.name} ({type(pipe).__name__}), {args.steps} steps, "
        f"median of {args.runs}, torch threads {torch.get_num_threads()}"
    )
    print(
        "| size | direct pipeline ms | Generate via gRPC ms | overhead ms | overhead % | server encode ms | PNG bytes |"
    )
    print("|---|---|---|---|---|---|---|")
    with BackgroundServer(engine) as server, Client(server.address, timeout=600) as client:
        for size in args.sizes:
            request = dict(width=size, height=size, num_inference_steps=args.steps, seed=0)
            for _ in range(2):  # warm both paths at this size
                direct_on_worker(size)
                client.generate("a cat", **request)
            direct_ms, served_ms, encode_ms, nbytes = [], [], [], 0
            for _ in range(args.runs):
                direct_ms.append(direct_on_worker(size))
                start = time.perf_counter()
                result = client.generate("a cat", **request)
                served_ms.append((time.perf_counter() - start) * 1000.0)
                encode_ms.append(result.timings.encode_ms)
                nbytes = result.outputs[0].size_bytes
            d, s = statistics.median(direct_ms), statistics.median(served_ms)
            print(
                f"| {size}² | {d:.1f} | {s:.1f} | {s - d:.1f} | {100 * (s - d) / d:.1f} % | "
                f"{statistics.median(encode_ms):.1f} | {nbytes} |"
            )


if __name__ == "__main__":
    main()
