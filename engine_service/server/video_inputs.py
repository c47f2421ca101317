"""Input videos of a request: their container sniffed before any work, decoded to RGB frames off the
event loop (PyAV for MP4 and WebM, Pillow for animated PNG) within the engine's limits.

Violations name proto field paths (``input_videos[0].data``); the caller collects them.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable

from PIL import Image

from engine_service.config import Limits

#: Leading bytes of each container an input video may come in, with the demuxer that reads it.
#: Naming the demuxer (never letting ffmpeg probe) keeps playlists and other formats that refer to
#: further files or URLs out.
_MP4_BOXES = (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip")
_WEBM = b"\x1a\x45\xdf\xa3"
_PNG = b"\x89PNG\r\n\x1a\n"
#: What the contract accepts, for messages.
VIDEO_FORMATS = "an MP4, WebM or animated PNG video"

#: (field, description) -> None: records one violation.
AddViolation = Callable[[str, str], None]


def container_of(data: bytes) -> str | None:
    """The container ``data`` starts as: ``"mov"`` (MP4 / QuickTime), ``"matroska"`` (WebM) or
    ``"png"`` (a still or animated PNG); ``None`` for anything else."""
    if data[4:8] in _MP4_BOXES:
        return "mov"
    if data.startswith(_WEBM):
        return "matroska"
    if data.startswith(_PNG):
        return "png"
    return None


def decode_video(
    add: AddViolation, field: str, data: bytes, limits: Limits, wanted: int | None, *, cut: bool = True
) -> list | None:
    """The frames of one video as PIL RGB images, in order, or ``None`` after a violation on ``field``.

    ``wanted`` frames are enough (decoding stops there); ``None`` = all of them. ``cut``: a request's
    ``num_frames`` would take this video's first frames (the message on too long a video suggests it only
    then). A video with more
    frames than ``limits.max_input_video_frames`` (all wanted) or a frame larger than
    ``limits.max_input_video_pixels`` (checked from the stream's header before its frames decode, and
    again per frame) is a violation, as are data that do not decode and a video without frames.
    Blocking: run it off the event loop.
    """
    most = limits.max_input_video_frames
    stop = most + 1 if wanted is None else min(wanted, most + 1)
    container = container_of(data)
    try:
        if container == "png":
            frames = _png_frames(add, field, data, limits, stop)
        elif container is not None:
            frames = _av_frames(add, field, data, container, limits, stop)
        else:
            add(field, f"is not {VIDEO_FORMATS}")
            return None
    except Image.DecompressionBombError:  # a PNG header that claims far more than Pillow's own ceiling
        add(field, f"its frames exceed the limit of {limits.max_input_video_pixels} pixels")
        return None
    except Exception:  # PyAV and Pillow raise many types on hostile data; none of their text is sent
        add(field, "is truncated or corrupt: its video data does not decode")
        return None
    if frames is None:
        return None
    if not frames:
        add(field, "holds no frames")
        return None
    if len(frames) > most:
        first = ", or num_frames to use its first frames" if cut else ""
        add(field, f"has more than {most} frames (the limit); send a shorter video{first}")
        return None
    return frames


def _pixels_ok(add: AddViolation, field: str, width: int, height: int, limits: Limits) -> bool:
    if width * height > limits.max_input_video_pixels:
        add(field, f"its {width}x{height} frames exceed the limit of {limits.max_input_video_pixels} pixels")
        return False
    if min(width, height) < 1:
        add(field, f"its frames are {width}x{height}")
        return False
    return True


def _av_frames(add: AddViolation, field: str, data: bytes, container: str, limits: Limits, stop: int) -> list | None:
    import av

    with av.open(io.BytesIO(data), format=container) as opened:
        if not opened.streams.video:
            add(field, "holds no video stream")
            return None
        stream = opened.streams.video[0]
        if not _pixels_ok(add, field, stream.codec_context.width, stream.codec_context.height, limits):
            return None
        frames = []
        for frame in opened.decode(stream):
            if not _pixels_ok(add, field, frame.width, frame.height, limits):
                return None
            frames.append(frame.to_image().convert("RGB"))
            if len(frames) >= stop:
                break
        return frames


def _png_frames(add: AddViolation, field: str, data: bytes, limits: Limits, stop: int) -> list | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the limit below is ours
        image = Image.open(io.BytesIO(data), formats=("PNG",))
    with image:
        if not _pixels_ok(add, field, image.width, image.height, limits):
            return None
        frames = []
        for index in range(min(getattr(image, "n_frames", 1), stop)):
            image.seek(index)
            frames.append(image.convert("RGB"))
        return frames


def frame_rate(data: bytes) -> float | None:
    """The frames per second a video's container states (the stream's average rate for MP4 and WebM, the
    first frame's duration for an animated PNG), or ``None`` where it states none. Reads headers only;
    call it on a video that :func:`decode_video` decoded."""
    container = container_of(data)
    try:
        if container == "png":
            with Image.open(io.BytesIO(data), formats=("PNG",)) as image:
                duration = image.info.get("duration") if getattr(image, "n_frames", 1) > 1 else None
            return 1000.0 / duration if duration else None
        if container is not None:
            import av

            with av.open(io.BytesIO(data), format=container) as opened:
                rate = opened.streams.video[0].average_rate
            return float(rate) if rate else None
    except Exception:  # decoded already: a rate that cannot be read is no rate
        return None
    return None


def frames_of_rule(count: int, stride: int) -> int:
    """The largest frame count of the ``k * stride + 1`` rule within ``count`` frames (0 for none)."""
    return (count - 1) // stride * stride + 1 if count >= 1 else 0


__all__ = ["VIDEO_FORMATS", "container_of", "decode_video", "frame_rate", "frames_of_rule"]
