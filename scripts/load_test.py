"""Load test: N concurrent SDK clients on loopback, throughput, latency percentiles, errors, batching gain.

Each client sends requests back to back (``AsyncClient.generate``) for ``--duration``
seconds, or ``--requests`` requests each. With ``--target`` it loads a running
engine once; without it, it starts an in-process engine (builtin model, or
``--model NAME=PATH``) once per ``--max-batch`` value and prints the gain of
each over the first::

    .venv/bin/python scripts/load_test.py --clients 4 --duration 20 --max-batch 1,4
    .venv/bin/python scripts/load_test.py --target 10.0.0.5:50051 --clients 16 --requests 4
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import dataclasses
import statistics
import sys
import time

from client_sdk import AsyncClient, errors


@dataclasses.dataclass
class RunResult:
    label: str
    seconds: float
    latencies_s: list[float]
    images: int
    errors: collections.Counter

    @property
    def ok(self) -> int:
        return len(self.latencies_s)

    def percentile(self, q: float) -> float:
        if not self.latencies_s:
            return float("nan")
        if len(self.latencies_s) == 1:
            return self.latencies_s[0]
        return statistics.quantiles(self.latencies_s, n=100, method="inclusive")[int(q) - 1]

    def line(self) -> str:
        err = sum(self.errors.values())
        kinds = ", ".join(f"{k} x{n}" for k, n in self.errors.most_common()) or "none"
        return (
            f"{self.label:>14}: {self.ok} ok, {err} errors ({kinds}) in {self.seconds:.1f} s; "
            f"{self.ok / self.seconds:.2f} req/s, {self.images / self.seconds:.2f} images/s; "
            f"latency p50 {self.percentile(50):.3f} s, p95 {self.percentile(95):.3f} s, p99 {self.percentile(99):.3f} s"
        )


async def _client(index: int, args: argparse.Namespace, address: str, stop_at: float, result: RunResult) -> None:
    async with AsyncClient(address, timeout=args.timeout, auth_token=args.auth_token) as client:
        sent = 0
        while (args.requests and sent < args.requests) or (not args.requests and time.monotonic() < stop_at):
            sent += 1
            started = time.perf_counter()
            try:
                reply = await client.generate(
                    f"load test client {index} request {sent}",
                    width=args.width,
                    height=args.height,
                    num_inference_steps=args.steps,
                    num_outputs=args.outputs,
                    seed=index * 1_000_000 + sent,
                )
            except errors.DitServeError as err:
                result.errors[type(err).__name__] += 1
                await asyncio.sleep(getattr(err, "retry_after", None) or 0.05)
                continue
            result.latencies_s.append(time.perf_counter() - started)
            result.images += len(reply.outputs)


async def load(address: str, args: argparse.Namespace, label: str) -> RunResult:
    result = RunResult(label, 0.0, [], 0, collections.Counter())
    async with AsyncClient(address, auth_token=args.auth_token) as probe:
        await probe.wait_ready(timeout=120)
    started = time.monotonic()
    stop_at = started + args.duration
    await asyncio.gather(*(_client(i, args, address, stop_at, result) for i in range(args.clients)))
    result.seconds = time.monotonic() - started
    return result


def _in_process(args: argparse.Namespace, max_batch: int) -> RunResult:
    from engine_service.bootstrap import build_engine, parse_model_arg
    from engine_service.config import BatchingConfig, Limits
    from engine_service.server.background import BackgroundServer

    engine = build_engine(
        [parse_model_arg(m) for m in args.model],
        device=args.device,
        limits=Limits(max_queue=max(64, args.clients)),
        batching=BatchingConfig(max_batch=max_batch, batch_window_ms=args.batch_window_ms),
    )
    with BackgroundServer(engine) as server:
        print(f"engine on {server.address} ({engine.device}), --max-batch {max_batch}", file=sys.stderr)
        # Warm the requested size up before timing: first calls at a new size allocate.
        asyncio.run(load(server.address, argparse.Namespace(**{**vars(args), "requests": 1, "clients": 1}), "warm"))
        return asyncio.run(load(server.address, args, f"max-batch {max_batch}"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", help="a running engine (default: start one in-process per --max-batch)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients (default: %(default)s)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load (default: %(default)s)")
    parser.add_argument("--requests", type=int, default=0, help="requests per client instead of --duration")
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--outputs", type=int, default=1, help="outputs per request")
    parser.add_argument("--timeout", type=float, default=600.0, help="deadline per request in seconds")
    parser.add_argument("--auth-token", default=None)
    parser.add_argument("--max-batch", default="1,4", help="in-process: comma-separated values to compare")
    parser.add_argument("--batch-window-ms", type=float, default=10.0)
    parser.add_argument("--model", action="append", default=[], metavar="NAME=PATH", help="in-process model(s)")
    parser.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"))
    args = parser.parse_args()
    mode = f"{args.requests} requests each" if args.requests else f"{args.duration:g} s"
    print(
        f"{args.clients} clients x {mode}, {args.width}x{args.height}, {args.steps} steps, "
        f"{args.outputs} output(s) per request",
        file=sys.stderr,
    )
    if args.target:
        print(asyncio.run(load(args.target, args, args.target)).line())
        return 0
    results = [_in_process(args, int(value)) for value in args.max_batch.split(",")]
    for result in results:
        print(result.line())
    base = results[0]
    for result in results[1:]:
        gain = (result.images / result.seconds) / (base.images / base.seconds)
        print(f"batching gain, {result.label} over {base.label}: {gain:.2f}x images/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
