"""The ``ditserve`` command line.

    ditserve serve      run the engine (gRPC) until SIGTERM/SIGINT
    ditserve generate   ask a running engine for images or videos; progress bar, files, per-step table
    ditserve cancel     cancel a queued or running request by its id
    ditserve stats      a running engine's counters
    ditserve models     the models a running engine serves, and its limits;
                        --supported: every family the registry knows (no engine needed)
    ditserve demo       start an engine in-process, generate one image through the SDK, save it
    ditserve metrics    PSNR or SSIM between two images, or the same-named images of two folders

``generate``, ``cancel``, ``stats`` and ``models`` use only the client SDK (no torch);
``serve``, ``demo`` and ``models --supported`` import the engine, and ``metrics`` needs
numpy and Pillow: in an SDK-only install these say which extra to install.
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
#: Environment variable the client subcommands read when ``--target`` is not given.
TARGET_ENV = "DITSERVE_TARGET"
#: The extra that installs what ``serve``, ``demo``, ``models --supported`` and ``metrics`` import.
ENGINE_EXTRA = "ditserve[engine]"
#: Top-level modules of the engine extra; a command failing to import one is told to install the extra.
ENGINE_MODULES = frozenset(
    {"torch", "numpy", "PIL", "diffusers", "transformers", "accelerate", "prometheus_client", "grpc_reflection"}
    | {"imageio", "imageio_ffmpeg", "torchao", "safetensors", "sentencepiece", "ftfy"}
)
#: Environment variable read by ``serve`` when ``--auth-token`` is not given (keeps the token out of ``ps``).
AUTH_TOKEN_ENV = "DITSERVE_AUTH_TOKEN"
DEFAULT_PROMPT = "a yellow triangle on a blue background"  # the default model's vocabulary
FORMATS = ("png", "jpeg", "webp", "mp4", "png_frames", "exr_frames")


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


def _add_client_args(parser: argparse.ArgumentParser, timeout: float | None = 10.0) -> None:
    """Where a client subcommand connects, and how (TLS); the token comes from DITSERVE_AUTH_TOKEN."""
    import os

    target = os.environ.get(TARGET_ENV) or DEFAULT_TARGET
    parser.add_argument(
        "--target", default=target, help=f"engine address HOST:PORT (default: ${TARGET_ENV} or {DEFAULT_TARGET})"
    )
    parser.add_argument(
        "--timeout", type=float, default=timeout, help="deadline in seconds (default: %(default)s; none = no deadline)"
    )
    tls = parser.add_argument_group(f"connection (the bearer token is read from ${AUTH_TOKEN_ENV})")
    tls.add_argument("--tls", action="store_true", help="speak TLS, verifying the engine with the system's roots")
    tls.add_argument("--tls-ca", metavar="PEM", help="speak TLS, verifying the engine's certificate with this CA")
    tls.add_argument("--tls-cert", metavar="PEM", help="client certificate chain, for engines that require mutual TLS")
    tls.add_argument("--tls-key", metavar="PEM", help="private key of --tls-cert")
    tls.add_argument(
        "--tls-server-name", metavar="NAME", help="the name the engine's certificate must carry, when not the host"
    )


def _client_kwargs(args: argparse.Namespace) -> dict:
    """Keyword arguments of ``Client`` for the connection flags; ValueError for an unreadable file."""

    def read(path: str | None) -> bytes | None:
        if path is None:
            return None
        try:
            return pathlib.Path(path).read_bytes()
        except OSError as err:
            raise ValueError(f"cannot read {path}: {err.strerror}") from None

    options = [("grpc.ssl_target_name_override", args.tls_server_name)] if args.tls_server_name else []
    return {
        "timeout": args.timeout,
        "auth_token": _env_token(),
        "tls": args.tls or bool(args.tls_server_name),
        "root_certificates": read(args.tls_ca),
        "certificate_chain": read(args.tls_cert),
        "private_key": read(args.tls_key),
        "channel_options": options,
    }


def _client(args: argparse.Namespace):
    from client_sdk import Client

    return Client(args.target, **_client_kwargs(args))


# -- generation shared by `generate` and `demo` ---------------------------------


def _input_images(values: list[str], flag: str = "--input-image", default_role: str = "image") -> list:
    """``--input-image [ROLE=]PATH`` values as (role, path) pairs; ValueError for a missing file."""
    import re

    images = []
    for value in values:
        role, sep, path = value.partition("=")
        if not (sep and re.fullmatch(r"[a-z][a-z0-9_]*", role)) or pathlib.Path(value).exists():
            role, path = default_role, value
        if not pathlib.Path(path).is_file():
            raise ValueError(f"{flag} {value}: no such file {path!r}")
        images.append((role, pathlib.Path(path)))
    return images


def _input_videos(values: list[str]) -> list:
    """``--input-video [ROLE=]PATH`` values as InputVideos read from their files; ValueError for a missing file."""
    from client_sdk import InputVideo

    return [InputVideo.from_path(path, role) for role, path in _input_images(values, "--input-video", "video")]


def _with_controlnet_scales(images: list, scales: list[float]) -> list:
    """``images`` with the ``--controlnet-scale`` values given to their ``control`` images, in order (one
    scale per control image, or none: the engine's 1.0); ValueError when the counts differ."""
    from client_sdk import InputImage

    if not scales:
        return images
    controls = [index for index, (role, _) in enumerate(images) if role == "control"]
    if len(scales) != len(controls):
        raise ValueError(
            f"--controlnet-scale: {len(scales)} scale(s) for {len(controls)} control image(s); "
            "give one per --input-image control=PATH, in the same order"
        )
    scaled = list(images)
    for index, scale in zip(controls, scales, strict=True):
        role, path = images[index]
        scaled[index] = InputImage.from_path(path, role, scale)
    return scaled


def _camera(action: str | None, poses: str | None, intrinsics: str | None):
    """The `CameraTrajectory` of --camera-action / --camera-poses with --camera-intrinsics (which
    overrides the poses file's "intrinsics"), or None without either. The file is read as
    `CameraTrajectory.from_json` reads it. Raises ValueError for both, an unreadable file or one of another
    shape or with another key, a file whose poses or intrinsics are not numbers (a 3x3 K matrix), or
    intrinsics that are not numbers; the server checks the rest."""
    from client_sdk import CameraTrajectory

    if action is None and poses is None:
        if intrinsics is not None:
            raise ValueError("--camera-intrinsics goes with --camera-action or --camera-poses")
        return None
    if action is not None and poses is not None:
        raise ValueError("give --camera-action or --camera-poses, not both")
    given: list[float] = []
    if intrinsics is not None:
        try:
            given = [float(value) for value in intrinsics.split(",")]
        except ValueError:
            raise ValueError(f"--camera-intrinsics: expected FX,FY,CX,CY numbers, got {intrinsics!r}") from None
    if action is not None:
        return CameraTrajectory(intrinsics=given, action=action)
    try:
        camera = CameraTrajectory.from_json(poses)
    except ValueError as err:
        raise ValueError(f"--camera-poses: {err}") from None
    if given:
        camera = dataclasses.replace(camera, intrinsics=given)
    try:
        camera.to_proto()
    except TypeError as err:
        raise ValueError(f"--camera-poses: {err}") from None
    return camera


def _generate_and_report(args: argparse.Namespace, client_kwargs: dict) -> int:
    from client_sdk import CachePolicy, Client, Completed, Preview, Step, console, errors

    try:
        cache = CachePolicy.parse(args.cache) if args.cache else None
    except ValueError as err:
        print(f"error: --cache: {err}", file=sys.stderr)
        return 2
    try:
        images = _with_controlnet_scales(_input_images(args.input_image), args.controlnet_scale)
        videos = _input_videos(args.input_video)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        loras = [_parse_lora_choice(value) for value in args.lora]
    except ValueError as err:
        print(f"error: --lora: {err}", file=sys.stderr)
        return 2
    try:
        camera = _camera(args.camera_action, args.camera_poses, args.camera_intrinsics)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    kwargs = {
        "model": args.model or None,
        "negative_prompt": args.negative_prompt or None,
        "width": args.width,
        "height": args.height,
        "num_inference_steps": args.steps,
        "guidance_scale": args.guidance,
        "seed": args.seed,
        "strength": args.strength,
        "layers": args.layers,
        "task_prompt": args.task_prompt or None,
        "num_outputs": args.num_outputs,
        "num_frames": args.frames,
        "fps": args.fps,
        "input_images": images or None,
        "input_videos": videos or None,
        "output_format": args.format,
        "request_id": args.request_id or None,
        "preview_every": args.preview_every,
        "cache": cache,
        "loras": loras,
        "camera": camera,
    }
    steps: list = []
    previews: list = []
    result = None
    try:
        with Client(**client_kwargs) as client, console.ProgressBar() as bar:
            for event in client.stream(args.prompt, **kwargs):
                bar.update(event)
                if isinstance(event, Step):
                    steps.append(event)
                elif isinstance(event, Preview):
                    previews.append(event)
                elif isinstance(event, Completed):
                    result = event.result
    except errors.DitServeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        # Leaving the stream closed the channel: the engine cancels the request (its client went away).
        print("error: interrupted; the request was cancelled", file=sys.stderr)
        return 130
    if result is None:
        print("error: the stream ended without a result", file=sys.stderr)
        return 1
    try:
        paths = result.save(args.out, name=args.name)
    except (ValueError, OSError) as err:
        print(f"error: --name/--out: {err}", file=sys.stderr)
        return 2
    for preview in previews:
        stem = paths[0].name.rsplit(".", 1)[0]
        path = args.out / f"{stem}.preview-{preview.step}.{'jpg' if preview.mime_type == 'image/jpeg' else 'png'}"
        path.write_bytes(preview.data)
        paths.append(path)
    print(console.step_table(result.cache_stats, steps))
    print(console.timings_line(result.timings))
    adapters = ", ".join(f"{name}:{scale:g}" for name, scale in result.loras) or "none"
    print(f"seed {result.seed}, request {result.request_id}, model {result.model}, loras {adapters}")
    for path in paths:
        print(f"saved {path}")
    return 0


def _parse_lora_choice(value: str) -> tuple[str, float]:
    """``NAME`` (scale 1) or ``NAME:SCALE`` from ``generate --lora``."""
    name, sep, scale = value.rpartition(":")
    if not sep:
        return value, 1.0
    try:
        return name, float(scale)
    except ValueError:
        raise ValueError(f"expected NAME or NAME:SCALE, got {value!r}") from None


def _add_generation_args(parser: argparse.ArgumentParser, *, prompt_required: bool, cache_default: str = "") -> None:
    from client_sdk.types import DEFAULT_NAME

    if prompt_required:
        parser.add_argument("prompt", help='text prompt ("" for a model that takes none: a video upscaler)')
    else:
        parser.add_argument("--prompt", default=DEFAULT_PROMPT, help="text prompt (default: %(default)r)")
    parser.add_argument("--model", default="", help="model name (default: the server's default model)")
    parser.add_argument("--negative-prompt", default="", help="negative prompt, for models that use one")
    parser.add_argument(
        "--task-prompt",
        default="",
        help="in-context models (VisualCloze): what every row of the input image grid does; the prompt then "
        "describes the target",
    )
    parser.add_argument("--width", type=int, help="width in pixels (default: the model's)")
    parser.add_argument("--height", type=int, help="height in pixels (default: the model's)")
    parser.add_argument("--steps", type=int, help="denoising steps (default: the model's)")
    parser.add_argument("--guidance", type=float, help="guidance scale (default: the model's)")
    parser.add_argument("--seed", type=int, help="random seed (default: random, printed)")
    parser.add_argument(
        "--strength",
        type=float,
        help="image-to-image / inpainting: how much of the input image is re-noised, in (0, 1] (default: the model's)",
    )
    parser.add_argument(
        "--layers",
        type=int,
        help="layered decomposition models: RGBA layers each output is split into, one file each "
        "(default: the model's)",
    )
    parser.add_argument("--num-outputs", type=int, help="outputs for the prompt (default 1)")
    parser.add_argument(
        "--frames",
        type=int,
        help="video frames, for video models (default: the model's); for a model that continues its input "
        "video, the new frames that follow the video's",
    )
    parser.add_argument(
        "--fps",
        type=int,
        help="frames per second of a video (default: the input video's rate where the output follows or "
        "continues one, else 16)",
    )
    parser.add_argument(
        "--input-image",
        action="append",
        default=[],
        metavar="[ROLE=]PATH",
        help="an input image (PNG or JPEG) for editing, fill or image-to-video models, repeatable; "
        "ROLE is image (the default), mask, reference or control, as the model takes them",
    )
    parser.add_argument(
        "--input-video",
        "--video",
        action="append",
        default=[],
        metavar="[ROLE=]PATH",
        help="an input video (MP4, WebM or animated PNG) for video-to-video models; ROLE is video (the default), "
        "control (a control video), reference (an in-context reference video), or pose, face, background and "
        "mask (Wan-Animate), as the model takes them. The output has its frames unless --frames asks for fewer; "
        "a model that continues its video returns them followed by --frames new ones",
    )
    parser.add_argument(
        "--camera-action",
        metavar="ACTIONS",
        help="camera-controlled world models (Sana-WM): keys held for a number of frames, e.g. 'w-80,jw-40' "
        "(w/s forward/back, a/d left/right, i/k pitch, j/l yaw, none); the frames sum to --frames minus 1",
    )
    parser.add_argument(
        "--camera-poses",
        metavar="FILE.json",
        help="camera-controlled world models: camera-to-world 4x4 poses, one per frame, as a JSON list or an "
        'object {"c2w": [...], "intrinsics": [fx, fy, cx, cy]} (or "action" in place of "c2w"); other keys are refused',
    )
    parser.add_argument(
        "--camera-intrinsics",
        metavar="FX,FY,CX,CY",
        help="with --camera-action or --camera-poses: pinhole intrinsics in pixels of the input image",
    )
    parser.add_argument(
        "--controlnet-scale",
        type=float,
        action="append",
        default=[],
        metavar="SCALE",
        help="ControlNet models: how strongly each control image steers (controlnet_conditioning_scale, 0-10), "
        "one per --input-image control=PATH in the same order (default: 1 each)",
    )
    parser.add_argument(
        "--preview-every", type=int, default=0, metavar="N", help="save a preview every N steps (default: none)"
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        type=lambda name: name.lower().replace("-", "_"),  # EXR-Frames is exr_frames, as in the SDK
        help="output encoding (default: png for images, mp4 for videos); exr_frames: one OpenEXR file per frame "
        "of a high-dynamic-range model's video (its linear light in full)",
    )
    parser.add_argument("--request-id", default="", help="id for Cancel and logs (default: assigned)")
    parser.add_argument(
        "--cache",
        default=cache_default,
        metavar="POLICY",
        help="cache policy: a preset (none, default, dbcache, slow, medium, fast, ultra) or a cache-dit tag "
        "(F1B0_W8MC3_R0.12), optionally with overrides as PRESET:field=value,..., e.g. "
        "dbcache:residual_diff_threshold=0.2,taylorseer_order=1 or dbcache:Fn_compute_blocks=4 "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--lora",
        action="append",
        default=[],
        metavar="NAME[:SCALE]",
        help="run with the model's LoRA adapter NAME at SCALE (default 1); repeatable (see `ditserve models`)",
    )
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("outputs"), help="directory for the files")
    parser.add_argument(
        "--name",
        default=DEFAULT_NAME,
        metavar="TEMPLATE",
        help="file name of each output, without extension: {request_id}, {seed}, {index} (the output's "
        "position) and {model} are filled in (default: %(default)s); previews add .preview-STEP",
    )


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
    _check_pem(args.tls_cert, args.tls_key, args.tls_client_ca)
    try:
        return TLSConfig(
            cert_chain=pathlib.Path(args.tls_cert).read_bytes(),
            private_key=pathlib.Path(args.tls_key).read_bytes(),
            client_ca=pathlib.Path(args.tls_client_ca).read_bytes() if args.tls_client_ca else None,
        )
    except OSError as err:
        raise ValueError(f"cannot read a TLS file: {err}") from err


def _check_pem(cert: str, key: str, client_ca: str | None) -> None:
    """Parse the TLS files as the server will use them; ValueError naming the flag that is wrong."""
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as err:
        raise ValueError(
            f"--tls-cert/--tls-key: not a PEM certificate chain and its matching private key ({err.strerror or err})"
        ) from None
    if client_ca:
        try:
            context.load_verify_locations(cafile=client_ca)
        except (OSError, ssl.SSLError) as err:
            raise ValueError(f"--tls-client-ca: not a PEM CA certificate ({err.strerror or err})") from None


def _check_serve_args(args: argparse.Namespace) -> None:
    """The flag values a server cannot start with; ValueError naming the flag."""
    import math

    for flag, port in (("--port", args.port), ("--metrics-port", args.metrics_port)):
        if port is not None and not 0 <= port <= 65535:
            raise ValueError(f"{flag} must be between 0 and 65535, got {port}")
    if args.metrics_port and args.metrics_port == args.port:
        raise ValueError(f"--metrics-port and --port must differ, both are {args.port}")
    if not (math.isfinite(args.grace) and args.grace >= 0):
        raise ValueError(f"--grace must be a number of seconds >= 0, got {args.grace}")
    if args.auth_token is not None and not args.auth_token.strip():
        raise ValueError("--auth-token must not be empty: leave it out to serve without a token")


def cmd_serve(args: argparse.Namespace) -> int:
    if args.max_queue < args.max_batch:
        print(
            f"error: --max-queue {args.max_queue} is smaller than --max-batch {args.max_batch}: batches are formed "
            f"from queued requests, so no batch could fill; raise --max-queue to {args.max_batch} at least",
            file=sys.stderr,
        )
        return 2
    import asyncio
    import os

    from engine_service.bootstrap import build_engine, parse_controlnet_arg, parse_model_arg, parse_size
    from engine_service.config import BatchingConfig, ServerConfig
    from engine_service.models import ModelLoadError
    from engine_service.models.lora import parse_lora_arg
    from engine_service.parallel import ParallelConfig
    from engine_service.parallel.ranks import start_ranks, stop_ranks
    from engine_service.runtime.executor import follow
    from engine_service.server.app import EngineServer, PortInUse, check_ports, serve_until_signalled
    from engine_service.server.cache_policy import check_default_policy, parse_policy

    try:
        _check_serve_args(args)
        default_cache = parse_policy(args.cache_policy)
        config = ServerConfig(
            host=args.host,
            port=args.port,
            grace_s=args.grace,
            cache_policy=args.cache_policy,
            auth_token=args.auth_token or os.environ.get(AUTH_TOKEN_ENV) or None,
            tls=_tls_from_args(args),
            metrics_port=args.metrics_port,
            health_port=args.health_port,
            max_connection_age_s=args.max_connection_age,
            max_connection_age_grace_s=args.max_connection_age_grace,
        )
        batching = BatchingConfig(max_batch=args.max_batch, batch_window_ms=args.batch_window_ms)
        sources = _with_speed([parse_model_arg(value) for value in args.model], args)
        sources += [parse_controlnet_arg(value, sources) for value in args.controlnet]
        model_names = [source.name for source in sources]
        loras = [parse_lora_arg(value, model_names) for value in args.lora]
        parallel = ParallelConfig.parse(args.parallel)
        if int(os.environ.get("RANK", "0")) == 0:
            check_ports(config)  # fail before the models load; only rank 0 serves
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
            loras=loras,
            max_loras_per_request=args.max_loras_per_request,
        )
        check_default_policy(default_cache, engine.models, engine.limits.max_steps)
    except (ValueError, RuntimeError, ModelLoadError, PortInUse) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if lockstep is not None and not lockstep.is_leader:
        follow(engine.models, lockstep)  # ranks other than 0 serve no port: they follow rank 0's calls
        stop_ranks(lockstep)
        return 0
    server = EngineServer(engine, config)
    try:
        abandoned = asyncio.run(serve_until_signalled(server))
    except (PortInUse, OSError, ModelLoadError) as err:  # a port that cannot be bound, a failed warm-up
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        stop_ranks(lockstep)
    if abandoned:
        # The abandoned warm-up call still runs on the worker thread, which a normal exit would join.
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    try:
        client_kwargs = {"target": args.target, **_client_kwargs(args)}
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return _generate_and_report(args, client_kwargs)


def _with_client(args: argparse.Namespace, action) -> int:
    """Run ``action(client)`` with the connection flags; 1 on an error status, 2 on a bad flag."""
    from client_sdk import errors

    try:
        client = _client(args)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        with client:
            print(action(client))
    except errors.DitServeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    return _with_client(args, lambda client: f"cancelled {args.request_id} ({client.cancel(args.request_id)})")


def cmd_stats(args: argparse.Namespace) -> int:
    from client_sdk import console

    return _with_client(args, lambda client: console.stats_table(client.stats(model=args.model)))


def cmd_models(args: argparse.Namespace) -> int:
    if args.supported:
        from engine_service.models.matrix import support_matrix_markdown

        print(support_matrix_markdown())
        return 0
    from client_sdk import console

    return _with_client(args, lambda client: console.models_table(client.list_models()))


def cmd_demo(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    print("starting an engine with the builtin default model ...", file=sys.stderr)
    from engine_service.bootstrap import build_engine
    from engine_service.models.builtin import BUILTIN_LORAS
    from engine_service.models.lora import LoraSource
    from engine_service.server.background import BackgroundServer

    demo_loras = [LoraSource(name, str(path)) for name, path in BUILTIN_LORAS.items()]
    engine = build_engine([], device=args.device, loras=demo_loras)
    with BackgroundServer(engine) as server:
        print(f"engine serving on {server.address} after {time.perf_counter() - started:.1f} s", file=sys.stderr)
        code = _generate_and_report(args, {"target": server.address, "timeout": args.timeout})
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
            # Decoded as the engine decodes every family ("latent" is no output type of some, e.g. an upscaler).
            pipe(**kwargs, generator=torch.Generator().manual_seed(seed), output_type="np")

    started = time.perf_counter()
    runs = [functools.partial(run, seed, prompt) for seed, prompt in enumerate(prompts)]
    try:
        result = cache.calibrate(
            pipe,
            runs,
            Fn_compute_blocks=args.fn_compute_blocks,
            loops_on_scheduler_copies=model.family.loops_on_scheduler_copies,
        )
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

    unpaired: list[str] = []
    try:
        results = compare(args.metric, args.a, args.b, unpaired)
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if unpaired:
        print(f"skipped, no partner of the same name: {', '.join(unpaired)}", file=sys.stderr)
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
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="interface to bind: an IPv4 or IPv6 address (::1 or [::1]) or a name; 0.0.0.0 for every IPv4 "
        "interface, :: for every interface of both families (default: %(default)s)",
    )
    serve.add_argument("--port", type=int, default=50051, help="port; 0 picks a free one (default: %(default)s)")
    serve.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="serve the diffusers directory PATH as NAME (repeatable); none = the builtin default",
    )
    serve.add_argument(
        "--controlnet",
        action="append",
        default=[],
        metavar="NAME=PATH[,PATH...]:MODEL",
        help="also serve as NAME the --model MODEL steered by the ControlNet model directory PATH (several, "
        "comma-separated: a multi-ControlNet model taking one control image each); NAME loads its own copy of "
        "MODEL's weights (repeatable)",
    )
    serve.add_argument("--default-model", help="model used when a request names none (default: the first)")
    serve.add_argument(
        "--lora",
        action="append",
        default=[],
        metavar="NAME=PATH[:MODEL]",
        help="load the LoRA adapter at PATH (a pytorch_lora_weights.safetensors or its directory) as NAME for "
        "MODEL (default: the default model); requests pick adapters by name (repeatable)",
    )
    serve.add_argument(
        "--max-loras-per-request",
        type=int,
        default=4,
        help="most LoRA adapters one request may combine; with --compile, each costs every LoRA request "
        "a low-rank product per adapted layer (default: %(default)s)",
    )
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
    scale = serve.add_argument_group("running many engines (see docs/deploy.md)")
    scale.add_argument(
        "--health-port",
        type=int,
        default=None,
        help="also serve grpc.health.v1.Health alone on this port, plaintext and without a token, for "
        "Kubernetes gRPC probes when the main port uses TLS or --auth-token",
    )
    scale.add_argument(
        "--max-connection-age",
        type=float,
        default=None,
        metavar="S",
        help="ask clients to reconnect (HTTP/2 GOAWAY) after S seconds, so L4 balancers spread long-lived "
        "connections again (default: never)",
    )
    scale.add_argument(
        "--max-connection-age-grace",
        type=float,
        default=None,
        metavar="S",
        help="seconds calls on a connection past --max-connection-age may still run before it is closed "
        "(default: until they finish)",
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
    _add_client_args(generate, timeout=None)
    generate.set_defaults(func=cmd_generate)

    cancel = sub.add_parser("cancel", help="cancel a queued or running request of a running engine")
    cancel.add_argument("request_id", help="the request's id (ditserve generate --request-id, or the one it printed)")
    _add_client_args(cancel)
    cancel.set_defaults(func=cmd_cancel)

    stats = sub.add_parser("stats", help="a running engine's counters")
    stats.add_argument("--model", default="", help="only this model")
    _add_client_args(stats)
    stats.set_defaults(func=cmd_stats)

    models = sub.add_parser("models", help="the models a running engine serves, or (--supported) every known family")
    models.add_argument(
        "--supported",
        action="store_true",
        help="print the support matrix of the model registry (no engine needed) instead of asking --target",
    )
    _add_client_args(models)
    models.set_defaults(func=cmd_models)

    demo = sub.add_parser("demo", help="start an engine in-process and generate one image")
    _add_generation_args(demo, prompt_required=False, cache_default="fast")
    demo.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"))
    demo.add_argument("--timeout", type=float, default=None, help="deadline in seconds (default: none)")
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
    try:
        return _main(argv)
    except BrokenPipeError:
        # The reader went away (`ditserve models | head`): stop quietly, as a command in a pipe does.
        # stdout is pointed at devnull so that the interpreter's last flush does not fail again.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    _quiet_third_party()
    level = args.log_level
    if args.command == "serve" and "--log-level" not in (argv if argv is not None else sys.argv[1:]):
        level = "info"
    _configure_logging(level)
    try:
        code = args.func(args)
    except ModuleNotFoundError as err:
        if (err.name or "").split(".")[0] not in ENGINE_MODULES:
            raise
        command = "models --supported" if args.command == "models" else args.command
        print(
            f"error: 'ditserve {command}' needs the engine's packages ({err.name} is not installed); "
            f'install them with: pip install "{ENGINE_EXTRA}"',
            file=sys.stderr,
        )
        return 2
    if args.command == "serve" and argv is None:
        _exit_now(code)
    return code


def _exit_now(code: int) -> None:
    """End the process at once: the server has stopped and every file is flushed.

    Tearing down an interpreter that imported torch and diffusers takes seconds (every module
    and tensor is freed one by one); an orchestrator waiting for the exit gains nothing from it.
    """
    import os

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
