"""The ``ditserve`` command line.

    ditserve serve      run the engine (gRPC) until SIGTERM/SIGINT
    ditserve generate   ask a running engine for images; progress bar, files, per-step table
    ditserve stats      a running engine's counters
    ditserve models     the models a running engine serves, and its limits;
                        --supported: every family the registry knows (no engine needed)
    ditserve demo       start an engine in-process, generate one image through the SDK, save it
    ditserve metrics    PSNR or SSIM between two images, or the same-named images of two folders

``generate``, ``stats`` and ``models`` use only the client SDK (no torch; ``models
--supported`` reads the engine's registry); ``serve`` and ``demo`` import the engine;
``metrics`` needs numpy and Pillow.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import logging
import pathlib
import sys
import time

DEFAULT_TARGET = "127.0.0.1:50051"
#: Environment variable read by ``serve`` when ``--auth-token`` is not given (keeps the token out of ``ps``).
AUTH_TOKEN_ENV = "DITSERVE_AUTH_TOKEN"
DEFAULT_PROMPT = "a yellow triangle on a blue background"  # the default model's vocabulary
FORMATS = ("png", "jpeg", "webp", "mp4", "png_frames")


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _quiet_third_party() -> None:
    """Silence import-time notices of transformers and diffusers (missing torchvision, dtype casts)."""
    import os

    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")


def _env_token() -> str | None:
    """The bearer token the client subcommands send: ``DITSERVE_AUTH_TOKEN``, when set."""
    import os

    return os.environ.get(AUTH_TOKEN_ENV) or None


# -- generation shared by `generate` and `demo` ---------------------------------


def _generate_and_report(target: str, args: argparse.Namespace) -> int:
    from client_sdk import CachePolicy, Client, Completed, Step, console, errors

    try:
        cache = CachePolicy.parse(args.cache) if args.cache else None
    except ValueError as err:
        print(f"error: --cache: {err}", file=sys.stderr)
        return 2
    kwargs = {
        "model": args.model or None,
        "negative_prompt": args.negative_prompt or None,
        "width": args.width,
        "height": args.height,
        "num_inference_steps": args.steps,
        "guidance_scale": args.guidance,
        "seed": args.seed,
        "num_outputs": args.num_outputs,
        "output_format": args.format,
        "request_id": args.request_id or None,
        "cache": cache,
    }
    steps: list = []
    result = None
    try:
        with Client(target, timeout=args.timeout, auth_token=_env_token()) as client, console.ProgressBar() as bar:
            for event in client.stream(args.prompt, **kwargs):
                bar.update(event)
                if isinstance(event, Step):
                    steps.append(event)
                elif isinstance(event, Completed):
                    result = event.result
    except errors.DitServeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if result is None:
        print("error: the stream ended without a result", file=sys.stderr)
        return 1
    paths = result.save(args.out, stem=result.request_id[:12])
    print(console.step_table(result.cache_stats, steps))
    print(console.timings_line(result.timings))
    print(f"seed {result.seed}, request {result.request_id}, model {result.model}")
    for path in paths:
        print(f"saved {path}")
    return 0


def _add_generation_args(parser: argparse.ArgumentParser, *, prompt_required: bool, cache_default: str = "") -> None:
    if prompt_required:
        parser.add_argument("prompt", help="text prompt")
    else:
        parser.add_argument("--prompt", default=DEFAULT_PROMPT, help="text prompt (default: %(default)r)")
    parser.add_argument("--model", default="", help="model name (default: the server's default model)")
    parser.add_argument("--negative-prompt", default="", help="negative prompt, for models that use one")
    parser.add_argument("--width", type=int, help="width in pixels (default: the model's)")
    parser.add_argument("--height", type=int, help="height in pixels (default: the model's)")
    parser.add_argument("--steps", type=int, help="denoising steps (default: the model's)")
    parser.add_argument("--guidance", type=float, help="guidance scale (default: the model's)")
    parser.add_argument("--seed", type=int, help="random seed (default: random, printed)")
    parser.add_argument("--num-outputs", type=int, help="outputs for the prompt (default 1)")
    parser.add_argument("--format", choices=FORMATS, help="output encoding (default: png for images)")
    parser.add_argument("--request-id", default="", help="id for Cancel and logs (default: assigned)")
    parser.add_argument(
        "--cache",
        default=cache_default,
        metavar="POLICY",
        help="cache policy: a preset (none, default, dbcache, slow, medium, fast, ultra), optionally with "
        "overrides as PRESET:field=value,... e.g. dbcache:residual_diff_threshold=0.2,taylorseer_order=1 "
        "(default: %(default)s)",
    )
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("outputs"), help="directory for the files")
    parser.add_argument("--timeout", type=float, default=None, help="deadline in seconds (default: none)")


def _add_limit_args(parser: argparse.ArgumentParser) -> None:
    from engine_service.config import Limits

    group = parser.add_argument_group("limits (checked on every request, reported by ListModels)")
    for field in dataclasses.fields(Limits):
        flag = "--" + field.name.replace("_", "-")
        group.add_argument(
            flag, type=int, default=field.default, help=f"{field.metadata['help']} (default: %(default)s)"
        )


def _limits_from_args(args: argparse.Namespace):
    from engine_service.config import Limits

    return Limits(**{field.name: getattr(args, field.name) for field in dataclasses.fields(Limits)})


#: Speed flags that take ``VALUE`` (every model) or ``NAME=VALUE`` (one model), and their SpeedConfig fields.
PER_MODEL_SPEED_FLAGS = {"quantize": "quantize", "attention_backend": "attention_backend", "offload": "offload"}


def _add_speed_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("speed (see docs/performance.md)")
    group.add_argument(
        "--quantize",
        action="append",
        default=[],
        metavar="[NAME=]SCHEME",
        help="torchao quantization of the transformer's repeated blocks: float8 (FP8 row-wise, CUDA 8.9+), "
        "int8-dynamic, int8-weight-only, int4-weight-only (CUDA, bfloat16); NAME=SCHEME for one model",
    )
    group.add_argument(
        "--quantize-text-encoder", action="store_true", help="quantize the text encoders with the same scheme too"
    )
    group.add_argument(
        "--compile",
        action="store_true",
        help="regional torch.compile of the transformer's repeated blocks; graphs are built at start-up "
        "for each --warmup-size while health says NOT_SERVING",
    )
    group.add_argument(
        "--compile-backend",
        default="inductor",
        choices=("inductor", "aot_eager", "eager"),
        help="torch.compile backend (default: %(default)s)",
    )
    group.add_argument("--compile-mode", default=None, help="torch.compile mode, e.g. max-autotune-no-cudagraphs")
    group.add_argument(
        "--compile-cache",
        default=None,
        metavar="DIR",
        help="keep compiled graphs in DIR across restarts, so a restarted engine reaches SERVING fast",
    )
    group.add_argument(
        "--warmup-size",
        action="append",
        default=[],
        metavar="WxH",
        help="size to warm up (and compile) before SERVING, repeatable (default: each model's default size)",
    )
    group.add_argument(
        "--attention-backend",
        action="append",
        default=[],
        metavar="[NAME=]BACKEND",
        help="diffusers attention backend: native, flash, _flash_3, _native_cudnn, _native_flash, sage, ...; "
        "NAME=BACKEND for one model (default: as loaded, native SDPA)",
    )
    group.add_argument(
        "--offload",
        action="append",
        default=[],
        metavar="[NAME=]MODE",
        help="CPU offload for GPUs too small for the model: model (one component on the GPU at a time) or "
        "sequential (one submodule at a time, slowest); CUDA only; NAME=MODE for one model",
    )


def _split_per_model(values: list[str], flag: str, names: list[str]) -> tuple[str | None, dict[str, str]]:
    """``VALUE`` (every model; the last wins) and ``NAME=VALUE`` (one model) values of a speed flag."""
    everywhere, per_model = None, {}
    for value in values:
        name, sep, choice = value.partition("=")
        if not sep:
            everywhere = value
            continue
        if name not in names:
            raise ValueError(f"--{flag} {value}: no model named {name!r} (models: {', '.join(names)})")
        per_model[name] = choice
    return everywhere, per_model


def _with_speed(sources: list, args: argparse.Namespace) -> list:
    """``sources`` (default: the builtin model) with the speed stack of the flags."""
    from engine_service.bootstrap import ModelSource
    from engine_service.quant import SpeedConfig

    sources = sources or [ModelSource(name="default")]
    names = [source.name for source in sources]
    split = {
        field: _split_per_model(getattr(args, attr), attr.replace("_", "-"), names)
        for attr, field in PER_MODEL_SPEED_FLAGS.items()
    }
    result = []
    for source in sources:
        chosen = {field: per_model.get(source.name, everywhere) for field, (everywhere, per_model) in split.items()}
        speed = SpeedConfig(
            quantize_text_encoder=args.quantize_text_encoder,
            compile=args.compile,
            compile_backend=args.compile_backend,
            compile_mode=args.compile_mode,
            **chosen,
        )
        result.append(dataclasses.replace(source, speed=speed))
    return result


# -- subcommands ------------------------------------------------------------------


def _tls_from_args(args: argparse.Namespace):
    """The TLSConfig of ``--tls-cert/--tls-key/--tls-client-ca``, or None; ValueError when incomplete."""
    from engine_service.config import TLSConfig

    if not (args.tls_cert or args.tls_key or args.tls_client_ca):
        return None
    if not (args.tls_cert and args.tls_key):
        raise ValueError("--tls-cert and --tls-key go together (--tls-client-ca needs both)")
    try:
        return TLSConfig(
            cert_chain=pathlib.Path(args.tls_cert).read_bytes(),
            private_key=pathlib.Path(args.tls_key).read_bytes(),
            client_ca=pathlib.Path(args.tls_client_ca).read_bytes() if args.tls_client_ca else None,
        )
    except OSError as err:
        raise ValueError(f"cannot read a TLS file: {err}") from err


def cmd_serve(args: argparse.Namespace) -> int:
    import asyncio
    import os

    from engine_service.bootstrap import build_engine, parse_model_arg, parse_size
    from engine_service.config import BatchingConfig, ServerConfig
    from engine_service.models import ModelLoadError
    from engine_service.parallel import ParallelConfig
    from engine_service.parallel.lockstep import follow
    from engine_service.parallel.ranks import start_ranks, stop_ranks
    from engine_service.server.app import EngineServer, serve_until_signalled
    from engine_service.server.cache_policy import parse_policy

    try:
        parse_policy(args.cache_policy)
        config = ServerConfig(
            host=args.host,
            port=args.port,
            grace_s=args.grace,
            cache_policy=args.cache_policy,
            auth_token=args.auth_token or os.environ.get(AUTH_TOKEN_ENV) or None,
            tls=_tls_from_args(args),
            metrics_port=args.metrics_port,
        )
        batching = BatchingConfig(max_batch=args.max_batch, batch_window_ms=args.batch_window_ms)
        sources = _with_speed([parse_model_arg(value) for value in args.model], args)
        parallel = ParallelConfig.parse(args.parallel)
        lockstep = start_ranks(parallel, args.device, args.parallel_timeout) if parallel.enabled else None
        engine = build_engine(
            sources,
            device=args.device,
            dtype=args.dtype,
            default_model=args.default_model,
            limits=_limits_from_args(args),
            batching=batching,
            warmup_sizes=tuple(parse_size(value) for value in args.warmup_size),
            compile_cache=args.compile_cache,
            parallel=parallel,
            lockstep=lockstep,
        )
    except (ValueError, RuntimeError, ModelLoadError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if lockstep is not None and not lockstep.is_leader:
        follow(engine.models, lockstep)  # ranks other than 0 serve no port: they follow rank 0's calls
        stop_ranks(lockstep)
        return 0
    server = EngineServer(engine, config)
    try:
        asyncio.run(serve_until_signalled(server))
    finally:
        stop_ranks(lockstep)
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    return _generate_and_report(args.target, args)


def cmd_stats(args: argparse.Namespace) -> int:
    from client_sdk import Client, console, errors

    try:
        with Client(args.target, timeout=args.timeout, auth_token=_env_token()) as client:
            print(console.stats_table(client.stats(model=args.model)))
    except errors.DitServeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    if args.supported:
        from engine_service.models.matrix import support_matrix_markdown

        print(support_matrix_markdown())
        return 0
    from client_sdk import Client, console, errors

    try:
        with Client(args.target, timeout=args.timeout, auth_token=_env_token()) as client:
            print(console.models_table(client.list_models()))
    except errors.DitServeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    print("starting an engine with the builtin default model ...", file=sys.stderr)
    from engine_service.bootstrap import build_engine
    from engine_service.server.background import BackgroundServer

    engine = build_engine([], device=args.device)
    with BackgroundServer(engine) as server:
        print(f"engine serving on {server.address} after {time.perf_counter() - started:.1f} s", file=sys.stderr)
        code = _generate_and_report(server.address, args)
        if code == 0:
            from client_sdk import Client, console

            with Client(server.address) as client:
                print(console.stats_table(client.stats()))
    return code


def cmd_calibrate_cache(args: argparse.Namespace) -> int:
    """Fit TeaCache and MagCache to a model from full-compute runs; store them in its ``ditserve.json``."""
    import json

    import torch

    from engine_service import cache
    from engine_service.models import load_builtin_default, load_local_model, shapes
    from engine_service.models.builtin import BUILTIN_DIR, BUILTIN_NAME
    from engine_service.models.registry import MODEL_DEFAULTS_FILE
    from engine_service.runtime.engine import warmup_spec

    device = torch.device(
        "cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()) else "cpu"
    )
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    try:
        if args.model == BUILTIN_NAME:
            directory = BUILTIN_DIR
            model = load_builtin_default(device, dtype)
        else:
            directory = pathlib.Path(args.model)
            model = load_local_model(directory.name, directory, device, dtype)
    except Exception as err:  # a missing or broken directory
        print(f"error: {err}", file=sys.stderr)
        return 2
    steps = args.steps or model.default_steps
    prompts = shapes.prompt_set(args.prompts) if args.model == BUILTIN_NAME else _CALIBRATION_PROMPTS[: args.prompts]
    pipe = model.pipeline
    base = warmup_spec(model)

    def run(seed: int, prompt: str):
        spec = dataclasses.replace(base, prompt=prompt, num_inference_steps=steps, seed=seed)
        kwargs = {**model.call_defaults, **model.family.build_call_kwargs(pipe, [spec])}
        with torch.inference_mode():
            pipe(**kwargs, generator=torch.Generator().manual_seed(seed), output_type="latent")

    started = time.perf_counter()
    runs = [functools.partial(run, seed, prompt) for seed, prompt in enumerate(prompts)]
    try:
        result = cache.calibrate(pipe, runs, Fn_compute_blocks=args.fn_compute_blocks)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    path = directory / MODEL_DEFAULTS_FILE
    contents = json.loads(path.read_text()) if path.is_file() else {}
    contents["cache"] = result.as_json()
    path.write_text(json.dumps(contents, indent=2) + "\n")
    print(f"calibrated {args.model} on {len(runs)} runs of {steps} steps in {time.perf_counter() - started:.0f} s")
    print(f"TeaCache coefficients: {', '.join(f'{c:.6g}' for c in result.teacache_coefficients)}")
    print(f"MagCache ratios: {', '.join(f'{r:.4f}' for r in result.magcache_ratios)}")
    print(f"written to {path}")
    return 0


#: Prompts for calibrating a model other than the builtin one.
_CALIBRATION_PROMPTS = (
    "a photo of a cat sitting on a windowsill",
    "a mountain lake at sunrise, mist over the water",
    "a red sports car on a coastal road",
    "a bowl of fruit on a wooden table, soft light",
    "an astronaut riding a horse on the moon",
    "a city street at night in the rain, neon signs",
    "a watercolor painting of a lighthouse",
    "a close-up portrait of an old fisherman",
)


def cmd_metrics(args: argparse.Namespace) -> int:
    from engine_service.metrics import compare

    try:
        results = compare(args.metric, args.a, args.b)
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    unit = " dB" if args.metric == "psnr" else ""
    width = max(len(name) for name, _ in results)
    for name, value in results:
        print(f"{name:<{width}}  {value:.4f}{unit}")
    if len(results) > 1:
        mean = sum(value for _, value in results) / len(results)
        print(f"{'mean':<{width}}  {mean:.4f}{unit}  ({len(results)} images)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ditserve", description="gRPC engine for diffusion transformers")
    from engine_service import __version__

    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--log-level", default="warning", choices=("debug", "info", "warning", "error"))
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the engine until SIGTERM/SIGINT")
    serve.add_argument("--host", default="127.0.0.1", help="interface to bind; 0.0.0.0 for all (default: %(default)s)")
    serve.add_argument("--port", type=int, default=50051, help="port; 0 picks a free one (default: %(default)s)")
    serve.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="serve the diffusers directory PATH as NAME (repeatable); none = the builtin default",
    )
    serve.add_argument("--default-model", help="model used when a request names none (default: the first)")
    serve.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"), help="(default: %(default)s)")
    serve.add_argument(
        "--dtype",
        default="auto",
        choices=("auto", "float32", "bfloat16", "float16"),
        help="weights dtype; auto = bfloat16 on CUDA, float32 on CPU",
    )
    _add_limit_args(serve)
    _add_speed_args(serve)
    batching = serve.add_argument_group("dynamic batching")
    batching.add_argument(
        "--max-batch",
        type=int,
        default=1,
        help="most compatible requests in one pipeline call; 1 = off (default: %(default)s)",
    )
    batching.add_argument(
        "--batch-window-ms",
        type=float,
        default=10.0,
        help="how long a request waits for compatible ones to join its batch (default: %(default)s)",
    )
    security = serve.add_argument_group("security")
    security.add_argument(
        "--auth-token",
        default=None,
        help=f"require 'authorization: Bearer TOKEN' on every RPC but health (or set {AUTH_TOKEN_ENV})",
    )
    security.add_argument("--tls-cert", help="PEM certificate chain: serve TLS instead of plaintext")
    security.add_argument("--tls-key", help="PEM private key of --tls-cert")
    security.add_argument("--tls-client-ca", help="PEM CA: require client certificates signed by it (mutual TLS)")
    serve.add_argument(
        "--metrics-port", type=int, default=None, help="serve Prometheus metrics at http://HOST:PORT/metrics"
    )
    parallel = serve.add_argument_group("parallelism (launch with torchrun, one process per device)")
    parallel.add_argument(
        "--parallel",
        default="none",
        metavar="DEGREES",
        help="split every model across ranks: ulysses=N, ring=N, both (ulysses=N,ring=M) or tp=N; "
        "e.g. torchrun --nproc-per-node 2 -m engine_service serve --parallel ulysses=2 (default: %(default)s)",
    )
    parallel.add_argument(
        "--parallel-timeout",
        type=float,
        default=300.0,
        help="seconds a rank waits for the others during a request before the engine stops serving "
        "(default: %(default)s)",
    )
    serve.add_argument("--grace", type=float, default=10.0, help="seconds to drain on shutdown (default: %(default)s)")
    serve.add_argument(
        "--cache-policy",
        default="none",
        metavar="POLICY",
        help="cache policy of requests that set none: a preset (none, dbcache, slow, medium, fast, ultra), "
        "optionally PRESET:field=value,... (default: %(default)s)",
    )
    serve.set_defaults(func=cmd_serve)

    generate = sub.add_parser("generate", help="generate with a running engine")
    _add_generation_args(generate, prompt_required=True)
    generate.add_argument("--target", default=DEFAULT_TARGET, help="engine address (default: %(default)s)")
    generate.set_defaults(func=cmd_generate)

    stats = sub.add_parser("stats", help="a running engine's counters")
    stats.add_argument("--target", default=DEFAULT_TARGET, help="engine address (default: %(default)s)")
    stats.add_argument("--model", default="", help="only this model")
    stats.add_argument("--timeout", type=float, default=10.0)
    stats.set_defaults(func=cmd_stats)

    models = sub.add_parser("models", help="the models a running engine serves, or (--supported) every known family")
    models.add_argument("--target", default=DEFAULT_TARGET, help="engine address (default: %(default)s)")
    models.add_argument(
        "--supported",
        action="store_true",
        help="print the support matrix of the model registry (no engine needed) instead of asking --target",
    )
    models.add_argument("--timeout", type=float, default=10.0)
    models.set_defaults(func=cmd_models)

    demo = sub.add_parser("demo", help="start an engine in-process and generate one image")
    _add_generation_args(demo, prompt_required=False, cache_default="fast")
    demo.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"))
    demo.set_defaults(func=cmd_demo)

    calibrate = sub.add_parser(
        "calibrate-cache",
        help="fit TeaCache and MagCache to a model from full-compute runs; writes its ditserve.json",
    )
    calibrate.add_argument("model", help='"default" (the builtin model) or a diffusers pipeline directory')
    calibrate.add_argument("--steps", type=int, default=28, help="steps per run (default: %(default)s)")
    calibrate.add_argument("--prompts", type=int, default=8, help="runs, one prompt each (default: %(default)s)")
    calibrate.add_argument("--fn-compute-blocks", type=int, default=1, help="Fn of the requests (default: 1)")
    calibrate.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"))
    calibrate.set_defaults(func=cmd_calibrate_cache)

    metrics = sub.add_parser(
        "metrics", help="PSNR or SSIM between two images, or between the same-named images of two folders"
    )
    metrics.add_argument("metric", choices=("psnr", "ssim"), help="psnr (dB, higher is closer) or ssim (1 = same)")
    metrics.add_argument("a", type=pathlib.Path, help="an image file or a folder of images")
    metrics.add_argument("b", type=pathlib.Path, help="an image file or a folder with images of the same names")
    metrics.set_defaults(func=cmd_metrics)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _quiet_third_party()
    level = args.log_level
    if args.command == "serve" and "--log-level" not in (argv if argv is not None else sys.argv[1:]):
        level = "info"
    _configure_logging(level)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
