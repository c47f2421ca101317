"""Everything the sync and async clients share that does no I/O.

Request building, channel options, per-call options, stream reassembly and the
hand-encoded health check live here once; `client.py` and `async_client.py`
only move bytes.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypedDict, cast

from client_sdk import _codec
from client_sdk._proto import engine_pb2
from client_sdk.errors import ChunkIntegrityError, DitServeError
from client_sdk.types import CachePolicy, CameraTrajectory, Completed, Event, InputImage, InputVideo

Metadata = Sequence[tuple[str, str | bytes]]
"""gRPC call metadata: (key, value) pairs; keys ending in "-bin" take bytes."""

ImageLike = Any
"""Anything `build_request` accepts as one input image: an `InputImage`, encoded PNG/JPEG bytes (sent
as they are), a file path (read as it is), a `PIL.Image.Image` or a numpy array of H x W x 3 (or
H x W x 4, or H x W) uint8 values (both sent as PNG; needs Pillow)."""

InputImages = Any
"""What `build_request` accepts as `input_images`: one image (`ImageLike`), a `(role, image)` tuple,
a list of images and `(role, image)` tuples, or a mapping of role to image. Images without a role
get the role "image"."""

_ROLE = re.compile(r"[a-z][a-z0-9_]*")

LoraChoice = Mapping[str, float] | Iterable[tuple[str, float] | str]
"""LoRA adapters for `build_request`: {name: scale}, or (name, scale) pairs, or names (scale 1)."""

ChannelOptions = Sequence[tuple[str, Any]]
"""gRPC channel arguments as (name, value) pairs."""

_MIB = 1 << 20

CHANNEL_OPTIONS: tuple[tuple[str, Any], ...] = (
    # Outputs of video models can reach hundreds of MiB in a single Generate reply.
    ("grpc.max_send_message_length", 1024 * _MIB),
    ("grpc.max_receive_message_length", 1024 * _MIB),
    # Denoising can keep a stream silent for minutes; pings keep idle proxies
    # and NATs from dropping the connection meanwhile.
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
)
"""Default channel arguments of both clients; caller options override them by name."""

OUTPUT_FORMATS: dict[str, int] = {
    "png": engine_pb2.OUTPUT_FORMAT_PNG,
    "jpeg": engine_pb2.OUTPUT_FORMAT_JPEG,
    "jpg": engine_pb2.OUTPUT_FORMAT_JPEG,
    "webp": engine_pb2.OUTPUT_FORMAT_WEBP,
    "mp4": engine_pb2.OUTPUT_FORMAT_MP4,
    "png_frames": engine_pb2.OUTPUT_FORMAT_PNG_FRAMES,
}
"""Output format names accepted by `build_request`, mapped to `ditserve.v1.OutputFormat`."""

AUTHORIZATION_METADATA_KEY = "authorization"
"""Metadata key of the bearer token (`authorization: Bearer <token>`)."""

HEALTH_RETRY_S = 0.2
"""Seconds `wait_ready` waits before watching health again after the watch ended."""


class GenerateOptions(TypedDict, total=False):
    """Keyword arguments of `generate`; see `build_request` for their meaning."""

    model: str | None
    negative_prompt: str | None
    width: int | None
    height: int | None
    num_inference_steps: int | None
    guidance_scale: float | None
    seed: int | None
    num_outputs: int | None
    num_frames: int | None
    fps: int | None
    input_images: InputImages | None
    input_videos: Sequence[InputVideo] | None
    output_format: str | int | None
    output_quality: int | None
    cache: CachePolicy | str | None
    request_id: str | None
    strength: float | None
    layers: int | None
    task_prompt: str | None
    loras: LoraChoice | None
    camera: CameraTrajectory | None


class StreamOptions(GenerateOptions, total=False):
    """Keyword arguments of `stream`: those of `generate` plus previews."""

    preview_every: int


def build_request(
    prompt: str,
    *,
    model: str | None = None,
    negative_prompt: str | None = None,
    width: int | None = None,
    height: int | None = None,
    num_inference_steps: int | None = None,
    guidance_scale: float | None = None,
    seed: int | None = None,
    num_outputs: int | None = None,
    num_frames: int | None = None,
    fps: int | None = None,
    input_images: InputImages | None = None,
    input_videos: Sequence[InputVideo] | None = None,
    output_format: str | int | None = None,
    output_quality: int | None = None,
    cache: CachePolicy | str | None = None,
    request_id: str | None = None,
    preview_every: int = 0,
    strength: float | None = None,
    layers: int | None = None,
    task_prompt: str | None = None,
    loras: LoraChoice | None = None,
    camera: CameraTrajectory | None = None,
) -> engine_pb2.GenerateRequest:
    """Builds a `ditserve.v1.GenerateRequest`.

    None leaves a field unset so the model's default applies; the engine checks
    ranges. `output_format` is a name from OUTPUT_FORMATS or an OutputFormat
    value; `cache` is a CachePolicy, a preset name or a policy text for
    `CachePolicy.parse`; `input_images` is one image or several (see `InputImages`);
    `input_videos` lists the videos of a video-to-video model (`InputVideo.from_path`).
    `strength` (image-to-image and inpainting models) is how much of the input
    image is re-noised, in (0, 1]. `layers` (layered decomposition models) is how
    many RGBA images each output is split into: the result holds num_outputs x layers
    outputs, output by output. `task_prompt` (in-context models: VisualCloze) says
    what every row of the input image grid does; `prompt` then describes the target.
    `camera` (camera-controlled world models: Sana-WM, `ModelInfo.requires_camera`)
    is the path the camera moves along over every frame: an action string or poses.
    Raises ValueError for an unknown output format or an unreadable array, and
    TypeError for an input image of another type.
    `loras` picks LoRA adapters of the model: `{"style": 0.8}`,
    `[("style", 0.8), ("ink", 0.5)]` or `["style"]` (scale 1); None or empty runs
    the base model. Raises TypeError for another shape.
    """
    request = engine_pb2.GenerateRequest(
        prompt=prompt,
        model=model or "",
        negative_prompt=negative_prompt or "",
        request_id=request_id or "",
        task_prompt=task_prompt or "",
        preview_every=preview_every,
        output_format=parse_output_format(output_format),
    )
    optionals = {
        "width": width,
        "height": height,
        "num_inference_steps": num_inference_steps,
        "guidance_scale": guidance_scale,
        "seed": seed,
        "num_outputs": num_outputs,
        "num_frames": num_frames,
        "fps": fps,
        "output_quality": output_quality,
        "strength": strength,
        "layers": layers,
    }
    for name, value in optionals.items():
        if value is not None:
            setattr(request, name, value)
    if input_images is not None:
        request.input_images.extend(image.to_proto() for image in input_image_list(input_images))
    if input_videos is not None:
        if isinstance(input_videos, InputVideo):
            input_videos = [input_videos]
        for video in input_videos:
            if not isinstance(video, InputVideo):
                raise TypeError(f"an input video must be an InputVideo, got {type(video).__name__}")
            request.input_videos.append(video.to_proto())
    if cache is not None:
        policy = CachePolicy.parse(cache) if isinstance(cache, str) else cache
        request.cache.CopyFrom(policy.to_proto())
    if loras:
        request.loras.extend(to_lora_adapters(loras))
    if camera is not None:
        if not isinstance(camera, CameraTrajectory):
            raise TypeError(f"camera must be a CameraTrajectory, got {type(camera).__name__}")
        request.camera.CopyFrom(camera.to_proto())
    return request


def to_lora_adapters(loras: LoraChoice) -> list[engine_pb2.LoraAdapter]:
    """`ditserve.v1.LoraAdapter` messages for a mapping of name to scale, (name, scale) pairs or names."""
    if isinstance(loras, str):
        raise TypeError(f"loras must be a mapping or a list of (name, scale) pairs, not the string {loras!r}")
    items = loras.items() if isinstance(loras, Mapping) else loras
    adapters = []
    for item in items:
        if isinstance(item, str):
            adapters.append(engine_pb2.LoraAdapter(name=item))
            continue
        try:
            name, scale = item
        except (TypeError, ValueError):
            raise TypeError(f"a LoRA adapter must be a name or a (name, scale) pair, not {item!r}") from None
        if not isinstance(name, str) or isinstance(scale, bool) or not isinstance(scale, (int, float)):
            raise TypeError(f"a LoRA adapter must be a (str, number) pair, not {item!r}")
        adapters.append(engine_pb2.LoraAdapter(name=name, scale=float(scale)))
    return adapters


def parse_output_format(value: str | int | None) -> engine_pb2.OutputFormat:
    """The `ditserve.v1.OutputFormat` value for a format name or number; None is unspecified."""
    if value is None:
        return engine_pb2.OUTPUT_FORMAT_UNSPECIFIED
    if isinstance(value, str):
        try:
            return cast(engine_pb2.OutputFormat, OUTPUT_FORMATS[value.strip().lower()])
        except KeyError:
            raise ValueError(f"unknown output format {value!r}; expected one of {', '.join(OUTPUT_FORMATS)}") from None
    if isinstance(value, bool) or not isinstance(value, int) or value not in engine_pb2.OutputFormat.values():
        raise ValueError(f"unknown output format {value!r}; expected a name or an OutputFormat value")
    return cast(engine_pb2.OutputFormat, value)


def to_input_image(image: ImageLike, role: str | None = None) -> InputImage:
    """An InputImage (role `role`, else the InputImage's own, else "image") from any `ImageLike`."""
    if isinstance(image, InputImage):
        return image if role is None else InputImage(data=image.data, role=role)
    role = role or "image"
    if isinstance(image, (bytes, bytearray, memoryview)):
        return InputImage(data=bytes(image), role=role)
    if isinstance(image, (str, os.PathLike)):
        return InputImage.from_path(image, role=role)
    pil = sys.modules.get("PIL.Image")
    if pil is not None and isinstance(image, pil.Image):
        return InputImage(data=_png(image), role=role)
    if type(image).__module__.split(".")[0] == "numpy" and hasattr(image, "shape"):
        return InputImage(data=_png(_image_from_array(image)), role=role)
    raise TypeError(
        "an input image must be an InputImage, encoded bytes, a path, a PIL image or a numpy uint8 array, "
        f"not {type(image).__name__}"
    )


def _png(image: Any) -> bytes:
    """A PIL image encoded as PNG (modes PNG cannot hold are converted to RGB)."""
    if image.mode not in ("1", "L", "LA", "I", "I;16", "P", "RGB", "RGBA"):
        image = image.convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _image_from_array(array: Any) -> Any:
    """A PIL image from an H x W x 3, H x W x 4 or H x W uint8 array."""
    shape = tuple(array.shape)
    if str(array.dtype) != "uint8":
        raise ValueError(
            f"an input image array must hold uint8 values (0-255), not {array.dtype}; "
            "e.g. (array * 255).round().clip(0, 255).astype('uint8') for floats in [0, 1]"
        )
    if not (len(shape) == 2 or (len(shape) == 3 and shape[2] in (3, 4))):
        raise ValueError(f"an input image array must be H x W x 3 (RGB), H x W x 4 or H x W; got shape {shape}")
    try:
        from PIL import Image
    except ImportError as err:
        raise ImportError("sending a numpy array as an image needs Pillow (pip install pillow)") from err
    return Image.fromarray(array)


def input_image_list(images: InputImages) -> list[InputImage]:
    """Every image of `input_images` as an InputImage, in order (see `InputImages`).

    A 2-tuple whose first item is a lower-case role name ("image", "mask", "reference", ...;
    not an existing file) is one image with that role.
    """
    if isinstance(images, Mapping):
        return [to_input_image(image, role) for role, image in images.items()]
    if _is_pair(images):
        return [to_input_image(images[1], images[0])]
    if _is_single(images):
        return [to_input_image(images)]
    return [to_input_image(item[1], item[0]) if _is_pair(item) else to_input_image(item) for item in images]


def _is_single(image: Any) -> bool:
    if isinstance(image, (InputImage, bytes, bytearray, memoryview, str, os.PathLike)):
        return True
    pil = sys.modules.get("PIL.Image")
    return (pil is not None and isinstance(image, pil.Image)) or type(image).__module__.split(".")[0] == "numpy"


def _is_pair(item: Any) -> bool:
    """A `(role, image)` tuple: a role name (not itself an existing file), then one image."""
    if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)):
        return False
    if _ROLE.fullmatch(item[0]) is None or not _is_single(item[1]):
        return False
    return not os.path.exists(item[0])


def merge_channel_options(extra: ChannelOptions | None) -> list[tuple[str, Any]]:
    """CHANNEL_OPTIONS with the caller's options added or overriding them by name."""
    merged = dict(CHANNEL_OPTIONS)
    merged.update(dict(extra or ()))
    return list(merged.items())


def auth_metadata(metadata: Metadata | None, auth_token: str | None) -> tuple[tuple[str, str | bytes], ...]:
    """The caller's metadata plus `authorization: Bearer <auth_token>` when a token is given."""
    items = tuple(metadata or ())
    if auth_token:
        items += ((AUTHORIZATION_METADATA_KEY, f"Bearer {auth_token}"),)
    return items


def tls_credentials(
    tls: bool,
    root_certificates: bytes | None,
    certificate_chain: bytes | None,
    private_key: bytes | None,
) -> Any:
    """`grpc.ChannelCredentials` for TLS, or None for a plaintext channel.

    TLS is on when `tls` is true or any certificate is given. `root_certificates`
    (PEM) verify the server (None: the system's roots); `certificate_chain` and
    `private_key` (PEM) are the client's identity for mutual TLS and go together.
    """
    if (certificate_chain is None) != (private_key is None):
        raise ValueError("certificate_chain and private_key go together (the client's identity for mutual TLS)")
    if not (tls or root_certificates or certificate_chain):
        return None
    import grpc

    return grpc.ssl_channel_credentials(
        root_certificates=root_certificates, private_key=private_key, certificate_chain=certificate_chain
    )


def call_options(
    timeout: float | None,
    default_timeout: float | None,
    metadata: Metadata | None,
) -> dict[str, Any]:
    """Keyword arguments for one stub call: the call's timeout, else the client's, and metadata."""
    return {
        "timeout": timeout if timeout is not None else default_timeout,
        "metadata": tuple(metadata) if metadata else None,
    }


def check_health(status: int, target: str, model: str) -> str | None:
    """None when `status` (a grpc.health.v1 serving status) is SERVING, else what it is.

    Raises NotFoundError when the engine has no health status for `model` (it serves no such model).
    """
    from grpc_health.v1 import health_pb2

    if status == health_pb2.HealthCheckResponse.SERVING:
        return None
    if status == health_pb2.HealthCheckResponse.SERVICE_UNKNOWN and model:
        from client_sdk.errors import NotFoundError

        raise NotFoundError(f"{target} serves no model named {model!r}")
    return f"health status {health_pb2.HealthCheckResponse.ServingStatus.Name(status)}"


_EVENT_CONVERTERS: dict[str, Callable[[Any], Event]] = {
    "queued": _codec.queued_from_proto,
    "started": _codec.started_from_proto,
    "step": _codec.step_from_proto,
    "preview": _codec.preview_from_proto,
}


class StreamAssembler:
    """Turns the `GenerateEvent`s of one Stream call into client events.

    Chunk events are consumed, not returned: their bytes are kept per output
    and, when the completed event arrives, joined in offset order, checked
    against the output's size_bytes and sha256, and put into the `Completed`
    result.
    """

    def __init__(self) -> None:
        self._chunks: dict[int, list[tuple[int, bytes]]] = {}
        self.completed = False
        """True once the completed event has been turned into `Completed`."""

    def feed(self, message: engine_pb2.GenerateEvent) -> Event | None:
        """The client event for one message, or None for chunks and unknown kinds.

        Raises ChunkIntegrityError when a reassembled output is incomplete or corrupt.
        """
        kind = message.WhichOneof("event")
        if kind == "chunk":
            chunk = message.chunk
            self._chunks.setdefault(chunk.output_index, []).append((chunk.offset, chunk.data))
            return None
        if kind == "completed":
            return self._complete(message.completed)
        converter = _EVENT_CONVERTERS.get(kind or "")
        return converter(getattr(message, kind)) if converter is not None else None

    def finish(self) -> None:
        """Checks that the stream ended with a completed event; raises DitServeError if not."""
        if not self.completed:
            raise DitServeError("the stream ended without a completed event")

    def _complete(self, response: engine_pb2.GenerateResponse) -> Completed:
        unknown = sorted(set(self._chunks) - set(range(len(response.outputs))))
        if unknown:
            count = len(response.outputs)
            raise ChunkIntegrityError(f"chunks arrived for outputs {unknown}, but the response has {count}")
        outputs = []
        for index, output in enumerate(response.outputs):
            data = self._assemble(index, output) if index in self._chunks else None
            if data is None and not output.data and output.size_bytes > 0:
                raise ChunkIntegrityError(f"output {index}: {output.size_bytes} bytes announced, none received")
            outputs.append(_codec.output_from_proto(output, data))
        self._chunks.clear()
        self.completed = True
        return Completed(result=_codec.result_from_proto(response, outputs))

    def _assemble(self, index: int, output: engine_pb2.Output) -> bytes:
        """Joins the chunks of one output and checks them against its metadata."""
        pieces = sorted(self._chunks[index], key=lambda piece: piece[0])
        expected_offset = 0
        for offset, data in pieces:
            if offset != expected_offset:
                raise ChunkIntegrityError(f"output {index}: chunk at offset {offset}, expected {expected_offset}")
            expected_offset += len(data)
        data = b"".join(piece for _, piece in pieces)
        if len(data) != output.size_bytes:
            raise ChunkIntegrityError(f"output {index}: reassembled {len(data)} bytes, expected {output.size_bytes}")
        digest = hashlib.sha256(data).hexdigest()
        if output.sha256 and digest != output.sha256.lower():
            raise ChunkIntegrityError(f"output {index}: sha256 {digest} does not match {output.sha256}")
        return data
