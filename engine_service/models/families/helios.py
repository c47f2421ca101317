"""Helios long-video generation: ``HeliosPipeline`` served, ``HeliosPyramidPipeline`` known, not served.

Helios samples a video in chunks of ``num_latent_frames_per_chunk`` latent frames
(9 by default: 33 frames), each a whole denoising loop of ``num_inference_steps``
with the scheduler's timesteps set anew, conditioned on a compressed history of
the chunks before it. The engine follows every loop (``FamilySpec.denoising_loops``):
progress counts the steps of all chunks, and the cache starts a fresh run at each
chunk. The pipeline decodes whole chunks and cuts the joined video to a multiple of
the VAE's 4x temporal compression plus 1, so only the frame counts whole chunks make
are served (its default 132 makes 129).

The pyramid pipeline also runs each chunk as stages at growing resolutions, with a
step count per stage; it stays refused (see its reason).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from engine_service.models.spec import FamilySpec
from engine_service.models.video import mean_std, video_call_kwargs, video_preview

#: The Wan VAE's temporal compression: ``k`` latent frames decode to ``4 (k - 1) + 1`` frames.
_TEMPORAL = 4
#: ``HeliosPipeline.__call__``'s default ``num_latent_frames_per_chunk``.
_CHUNK_LATENT_FRAMES = 9


def chunks(frames: int, call_defaults: Mapping[str, Any]) -> tuple[int, int]:
    """(chunks, frames made) for ``frames`` asked for, as ``HeliosPipeline.__call__`` splits them:
    ``ceil(frames / window)`` chunks of ``window = 4 (chunk - 1) + 1`` frames, joined and cut to
    ``4 k + 1`` frames."""
    chunk = int(call_defaults.get("num_latent_frames_per_chunk", _CHUNK_LATENT_FRAMES))
    window = (chunk - 1) * _TEMPORAL + 1
    loops = max(1, math.ceil(frames / window))
    made = (loops * window - 1) // _TEMPORAL * _TEMPORAL + 1
    return loops, made


_COMMON = {
    "output_kind": "video",
    "latent_patch": 2,
    "default_width": 640,
    "default_height": 384,
    "default_steps": 50,
    "default_guidance_scale": 5.0,
    "block_lists": ("blocks",),
    # What the pipeline's own default (132) makes: 4 chunks of 33 frames, cut to 129.
    "default_frames": 129,
    "frame_stride": _TEMPORAL,
    "uses_negative_prompt": True,
    "input_roles": ("image",),
    "build_call_kwargs": video_call_kwargs(images={"image": "image"}),
}

HELIOS = FamilySpec(
    name="helios",
    pipeline_classes=("HeliosPipeline",),
    # A preview shows the first frame of the chunk being sampled (the VAE is causal).
    decode_latents=video_preview(mean_std),
    denoising_loops=chunks,
    # Its image noise draws ``torch.rand(..., generator=generator)``: one generator, never a list.
    generator_per_output=False,
    **_COMMON,
)

HELIOS_PYRAMID = FamilySpec(
    name="helios-pyramid",
    pipeline_classes=("HeliosPyramidPipeline",),
    unsupported_reason=(
        "each chunk runs as pyramid stages, each a denoising loop with its own step count "
        "(pyramid_num_inference_steps_list, not num_inference_steps), and the first stages denoise "
        "at a half and a quarter of the video's size; the engine follows whole loops of the request's "
        "num_inference_steps at the video's size (progress totals, previews, the cache's step mask)"
    ),
    **_COMMON,
)
