"""Adversarial load: concurrency, cancellation storms, slow readers and a leak run against one engine.

Starts an in-process engine (builtin model, CPU unless ``--device``) on loopback, or
loads ``--target``, and prints one line per phase:

- **concurrent**: ``--concurrent`` Generate calls at once; every call must end with a
  status (``lost`` counts calls that got none before their deadline, ``hung`` calls that
  hit it), statuses are tallied.
- **cancel**: ``--cancels`` requests, each cancelled after a random delay, half by the
  client dropping the call and half by ``Cancel(request_id)``; the engine must end idle
  (queue 0, running 0), and the time from cancel to the CANCELLED status is reported.
- **slow readers**: ``--unread`` Streams with a preview every step that nobody reads;
  the server's memory growth while they sit finished and unread, and whether admission
  counted them.
- **leak**: ``--leak`` requests one after another, alternating good and bad; the server's
  resident memory before, after and per 1000 requests (in-process engine only).

    .venv/bin/python scripts/adversarial_load.py --concurrent 576 --cancels 1500 --leak 1000
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import random
import statistics
import sys
import time

import grpc

from client_sdk._proto import engine_pb2 as pb
from client_sdk._proto import engine_pb2_grpc


def _rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _request(args: argparse.Namespace, **fields) -> pb.GenerateRequest:
    base = {"prompt": "a yellow triangle", "width": args.size, "height": args.size, "num_inference_steps": args.steps}
    return pb.GenerateRequest(**{**base, **fields})


async def concurrent(stub, args) -> str:
    codes: collections.Counter = collections.Counter()
    lost = hung = 0

    async def one(i: int) -> None:
        nonlocal lost, hung
        try:
            await stub.Generate(_request(args, seed=i), timeout=args.deadline)
            codes["OK"] += 1
        except grpc.aio.AioRpcError as err:
            codes[err.code().name] += 1
            hung += err.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        except Exception:  # noqa: BLE001 - any other ending is a lost call
            lost += 1

    started = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(args.concurrent)))
    tally = ", ".join(f"{k} {n}" for k, n in codes.most_common())
    return (
        f"concurrent: {args.concurrent} calls in {time.monotonic() - started:.1f} s: {tally}; lost {lost}, hung {hung}"
    )


async def cancels(stub, args, engine) -> str:
    rng = random.Random(0)
    waits: list[float] = []
    codes: collections.Counter = collections.Counter()

    async def one(i: int) -> None:
        request_id = f"cancel-{i}"
        call = stub.Generate(_request(args, request_id=request_id, num_inference_steps=args.steps * 4), timeout=600)
        await asyncio.sleep(rng.uniform(0, args.cancel_window))
        cancelled_at = time.monotonic()
        if i % 2:
            call.cancel()
        else:
            try:
                await stub.Cancel(pb.CancelRequest(request_id=request_id), timeout=30)
            except grpc.aio.AioRpcError as err:
                codes[f"Cancel {err.code().name}"] += 1
        try:
            await call
            codes["OK"] += 1
        except asyncio.CancelledError:
            codes["CANCELLED (client)"] += 1
        except grpc.aio.AioRpcError as err:
            codes[err.code().name] += 1
        waits.append(time.monotonic() - cancelled_at)

    started = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(args.cancels)))
    idle = "n/a"
    if engine is not None:
        deadline = time.monotonic() + 60
        while (engine.queue_depth or engine.running) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        idle = f"queue {engine.queue_depth}, running {engine.running}"
    tally = ", ".join(f"{k} {n}" for k, n in codes.most_common())
    p95 = statistics.quantiles(waits, n=20)[-1] if len(waits) > 1 else float("nan")
    return (
        f"cancel: {args.cancels} in {time.monotonic() - started:.1f} s: {tally}; cancel-to-status "
        f"median {statistics.median(waits) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms; engine after: {idle}"
    )


async def slow_readers(stub, args) -> str:
    before = _rss_mib()
    calls = [stub.Stream(_request(args, preview_every=1, seed=i), timeout=600) for i in range(args.unread)]
    await asyncio.sleep(0)  # the calls start; nobody reads them
    deadline = time.monotonic() + args.unread_wait
    refused = None
    while time.monotonic() < deadline:
        await asyncio.sleep(1.0)
        try:
            await stub.Generate(_request(args, num_inference_steps=1), timeout=60)
        except grpc.aio.AioRpcError as err:
            refused = err.code().name
            break
    held = _rss_mib() - before
    events = 0
    for call in calls:
        async for _ in call:
            events += 1
    return (
        f"slow readers: {args.unread} unread streams (preview every step): server memory +{held:.0f} MiB while "
        f"unread; a new request then: {refused or 'accepted'}; {events} events read afterwards"
    )


async def leak(stub, args) -> str:
    bad = _request(args, width=65)
    good = _request(args, num_inference_steps=1)
    for _ in range(20):  # allocator warm-up
        await stub.Generate(good, timeout=120)
    before = _rss_mib()
    samples = []
    for i in range(args.leak):
        try:
            await stub.Generate(good if i % 2 else bad, timeout=120)
        except grpc.aio.AioRpcError:
            pass
        if i % max(1, args.leak // 10) == 0:
            samples.append(_rss_mib())
    after = _rss_mib()
    per_1000 = (after - before) / args.leak * 1000
    return (
        f"leak: {args.leak} requests (half invalid): server RSS {before:.0f} -> {after:.0f} MiB "
        f"({per_1000:+.1f} MiB per 1000; samples {', '.join(f'{s:.0f}' for s in samples)})"
    )


async def run(address: str, args, engine) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = engine_pb2_grpc.EngineStub(channel)
        await stub.Generate(_request(args), timeout=300)
        for phase in args.phases.split(","):
            if phase == "concurrent":
                line = await concurrent(stub, args)
            elif phase == "cancel":
                line = await cancels(stub, args, engine)
            elif phase == "slow":
                line = await slow_readers(stub, args)
            elif phase == "leak":
                line = await leak(stub, args) if engine is not None else "leak: in-process engine only"
            else:
                raise SystemExit(f"unknown phase {phase!r}")
            print(line, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", help="a running engine (default: start one in-process)")
    parser.add_argument("--phases", default="concurrent,cancel,slow,leak")
    parser.add_argument("--concurrent", type=int, default=576)
    parser.add_argument("--deadline", type=float, default=600.0, help="deadline of each concurrent call, seconds")
    parser.add_argument("--cancels", type=int, default=1500)
    parser.add_argument("--cancel-window", type=float, default=2.0, help="cancel after 0..this many seconds")
    parser.add_argument("--unread", type=int, default=16)
    parser.add_argument("--unread-wait", type=float, default=30.0)
    parser.add_argument("--leak", type=int, default=1000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--max-queue", type=int, default=64)
    parser.add_argument("--device", default="cpu", choices=("auto", "cuda", "cpu"))
    args = parser.parse_args()
    if args.target:
        asyncio.run(run(args.target, args, None))
        return 0
    from engine_service.bootstrap import build_engine
    from engine_service.config import Limits
    from engine_service.server.background import BackgroundServer

    engine = build_engine([], device=args.device, limits=Limits(max_queue=args.max_queue))
    with BackgroundServer(engine) as server:
        print(f"engine on {server.address} ({engine.device}), max queue {args.max_queue}", file=sys.stderr)
        asyncio.run(run(server.address, args, engine))
    return 0


if __name__ == "__main__":
    sys.exit(main())
