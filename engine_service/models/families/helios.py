"""Helios long-video generation (``HeliosPipeline``, ``HeliosPyramidPipeline``): known, not served.

Helios samples a video in chunks of ``num_latent_frames_per_chunk`` latent frames
(33 frames), each a whole denoising loop with the scheduler's timesteps set anew,
conditioned on a compressed history of the chunks before it. The pyramid pipeline
also runs each chunk as several stages at growing resolutions, each its own loop
of steps. The engine follows one denoising loop per request (progress,
cancellation, the cache's warmup and step counts, previews), which would restart
every chunk and stage.
"""

from __future__ import annotations

from engine_service.models.spec import FamilySpec
from engine_service.models.video import video_call_kwargs

_CHUNKS = (
    "it samples the video in chunks of num_latent_frames_per_chunk latent frames (33 frames; 4 chunks for "
    "its default 132), each a whole denoising loop with the scheduler's timesteps set anew and conditioned "
    "on a history of the chunks before it"
)
_ENGINE = (
    "; the engine follows one denoising loop per request (progress, cancellation, the cache's warmup and "
    "step counts, previews), which would restart every chunk"
)

_COMMON = {
    "output_kind": "video",
    "latent_patch": 2,
    "default_width": 640,
    "default_height": 384,
    "default_steps": 50,
    "default_guidance_scale": 5.0,
    "block_lists": ("blocks",),
    "default_frames": 132,
    "uses_negative_prompt": True,
    "input_roles": ("image",),
    "build_call_kwargs": video_call_kwargs(images={"image": "image"}),
}

HELIOS = FamilySpec(
    name="helios",
    pipeline_classes=("HeliosPipeline",),
    unsupported_reason=_CHUNKS + _ENGINE,
    **_COMMON,
)

HELIOS_PYRAMID = FamilySpec(
    name="helios-pyramid",
    pipeline_classes=("HeliosPyramidPipeline",),
    unsupported_reason=(
        _CHUNKS
        + ", and runs each chunk as pyramid stages at growing resolutions, each its own loop of steps"
        + _ENGINE
        + " and stage"
    ),
    **_COMMON,
)
