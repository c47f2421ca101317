"""Encoding decoded pipeline outputs (float arrays in [0, 1]) into image and video bytes, in the worker.

Videos become H.264 MP4 through imageio's ffmpeg plugin (the imageio-ffmpeg wheel
carries its own ffmpeg binary), or one PNG per frame. A high-dynamic-range video
(linear light in [0, inf)) becomes one half-float OpenEXR image per frame, written
with the ``OpenEXR`` package, or its 8-bit SDR rendering (:func:`sdr_rendering`) in
any of the 8-bit formats.
"""

from __future__ import annotations

import hashlib
import io
import os

import numpy as np
from PIL import Image

from engine_service.jobs import EncodedOutput, OutputFormat

_PIL_FORMATS = {
    OutputFormat.PNG: ("PNG", "image/png"),
    OutputFormat.JPEG: ("JPEG", "image/jpeg"),
    OutputFormat.WEBP: ("WEBP", "image/webp"),
}
#: The MIME type of an OpenEXR image.
EXR_MIME_TYPE = "image/x-exr"
#: PNG compression level: 1 is several times faster than the default 6 for a few % more bytes.
PNG_COMPRESS_LEVEL = 1


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Float images in [0, 1] (any leading dims, channels last) to uint8 with rounding."""
    return (np.clip(images, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def sdr_rendering(linear: np.ndarray) -> np.ndarray:
    """The SDR rendering of linear light (any shape, float, values in [0, inf)): values in [0, 1] to show
    on an sRGB display. The tone map clips to [0, 1], then the sRGB (Rec. 709) transfer function applies:
    ``12.92 x`` up to 0.0031308, ``1.055 x^(1/2.4) - 0.055`` above. This is diffusers' rendering of LTX-2
    HDR video (``diffusers.pipelines.ltx2.export_utils.encode_hdr_tensor_to_mp4`` with its default tone
    map), so ``to_uint8`` of it gives the 8-bit frames that function encodes."""
    clipped = np.clip(linear, 0.0, 1.0)
    return np.where(clipped <= 0.0031308, clipped * 12.92, 1.055 * np.power(clipped, 1.0 / 2.4) - 0.055)


def encode_exr(frame: np.ndarray) -> EncodedOutput:
    """Encode one (H, W, 3) float frame of linear light as an OpenEXR image: half-float RGB channels, ZIP
    compressed (lossless), scanline; values above 1.0 (and up to half-float's 65504) are kept."""
    import OpenEXR

    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    buffer = io.BytesIO()
    with OpenEXR.File(header, {"RGB": np.ascontiguousarray(frame, dtype=np.float16)}) as image:
        image.write(buffer)
    data = buffer.getvalue()
    return EncodedOutput(
        data=data,
        mime_type=EXR_MIME_TYPE,
        width=int(frame.shape[1]),
        height=int(frame.shape[0]),
        num_frames=1,
        sha256=hashlib.sha256(data).hexdigest(),
    )


def encode_image(pixels: np.ndarray, fmt: OutputFormat, quality: int) -> EncodedOutput:
    """Encode one (H, W, 3) uint8 image as PNG, JPEG or WebP, or one (H, W, 4) RGBA image as PNG or WebP
    (both keep its alpha channel; validation refuses JPEG for such a model)."""
    pil_format, mime_type = _PIL_FORMATS[fmt]
    image = Image.fromarray(pixels, mode="RGBA" if pixels.shape[-1] == 4 else "RGB")
    buffer = io.BytesIO()
    if fmt is OutputFormat.PNG:
        image.save(buffer, format=pil_format, compress_level=PNG_COMPRESS_LEVEL)
    else:
        image.save(buffer, format=pil_format, quality=quality)
    data = buffer.getvalue()
    return EncodedOutput(
        data=data,
        mime_type=mime_type,
        width=image.width,
        height=image.height,
        num_frames=1,
        sha256=hashlib.sha256(data).hexdigest(),
    )


def encode_preview(pixels: np.ndarray, max_side: int = 256) -> tuple[bytes, int, int]:
    """A small PNG of one (H, W, 3) uint8 image, its longer side at most ``max_side``."""
    image = Image.fromarray(pixels, mode="RGB")
    image.thumbnail((max_side, max_side))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue(), image.width, image.height


def encode_images(images: np.ndarray, fmt: OutputFormat, quality: int) -> list[EncodedOutput]:
    """Encode a batch of float images (N, H, W, 3) or RGBA images (N, H, W, 4) in [0, 1]."""
    return [encode_image(pixels, fmt, quality) for pixels in to_uint8(images)]


def encode_mp4(frames: np.ndarray, fps: int, quality: int) -> EncodedOutput:
    """Encode one video, (F, H, W, 3) uint8, as H.264 MP4 (yuv420p, playable everywhere)."""
    import imageio.v3 as iio

    # imageio-ffmpeg otherwise starts ffmpeg with a Python preexec_fn, which runs Python in the
    # forked child of this many-threaded process (gRPC, torch) and can crash it there.
    os.environ.setdefault("IMAGEIO_FFMPEG_NO_PREVENT_SIGINT", "1")

    data = iio.imwrite(
        "<bytes>",
        frames,
        extension=".mp4",
        plugin="FFMPEG",
        fps=fps,
        codec="libx264",
        quality=max(1.0, quality / 10.0),
        macro_block_size=1,
        pixelformat="yuv420p",
    )
    return EncodedOutput(
        data=data,
        mime_type="video/mp4",
        width=int(frames.shape[2]),
        height=int(frames.shape[1]),
        num_frames=int(frames.shape[0]),
        sha256=hashlib.sha256(data).hexdigest(),
    )


def encode_videos(
    videos: np.ndarray, fmt: OutputFormat, fps: int, quality: int, hdr: bool = False
) -> list[EncodedOutput]:
    """Encode a batch of float videos (N, F, H, W, 3) in [0, 1]: one MP4 each, or one PNG per frame.

    ``hdr``: the videos are linear light in [0, inf) (a family that ``outputs_hdr``): ``EXR_FRAMES`` encodes
    each frame as it is (:func:`encode_exr`), MP4 and PNG frames encode the SDR rendering
    (:func:`sdr_rendering`)."""
    if fmt is OutputFormat.EXR_FRAMES:
        return [encode_exr(frame) for frames in videos for frame in frames]
    if hdr:
        videos = sdr_rendering(videos)
    outputs: list[EncodedOutput] = []
    for frames in to_uint8(videos):
        if fmt is OutputFormat.MP4:
            outputs.append(encode_mp4(frames, fps, quality))
        else:
            outputs.extend(encode_image(frame, OutputFormat.PNG, quality) for frame in frames)
    return outputs
