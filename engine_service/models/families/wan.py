"""Wan 2.1 / 2.2 video: one list of blocks, CFG as a second transformer call.

The VAE compresses 4 frames into one latent frame (frame counts are 4k + 1) and
8x spatially; the transformer packs 2x2 latent patches into one token.

Wan 2.2 (A14B) uses the same pipeline classes with two experts: ``transformer``
denoises the high-noise steps and ``transformer_2`` the rest (the switch is the
pipeline's ``boundary_ratio``). The cache caches both, each in its own context:
each expert warms up on the first step it runs and compares a step only with its
own previous steps. Wan 2.2 TI2V-5B is one transformer with a 16x VAE (sizes are
multiples of 32, read from the pipeline) and a timestep per token.

Wan-Animate (``WanAnimatePipeline``) is known but not served: it animates a
reference image after a pose video and a face video (and, to replace a person, a
background video and a mask video), generated in segments of
``segment_frame_length`` frames, each a whole denoising loop conditioned on the
last frames of the one before. Wan video-to-video (``WanVideoToVideoPipeline``)
transforms the request's input video (``input_videos``); its output has the
video's frames, as does Lucy Edit (``LucyEditPipeline``, a Wan 2.2 TI2V-5B video
editor that conditions every step on the video's latents).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine_service.models.inputs import video_of
from engine_service.models.spec import FamilySpec
from engine_service.models.video import (
    kept_steps,
    mean_std,
    video_call_kwargs,
    video_preview,
    video_to_video_call_kwargs,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from diffusers import DiffusionPipeline

    from engine_service.jobs import JobSpec

_COMMON = {
    "output_kind": "video",
    "latent_patch": 2,
    "default_width": 832,
    "default_height": 480,
    "default_steps": 50,
    "default_guidance_scale": 5.0,
    "block_lists": ("blocks",),
    "default_frames": 81,
    "frame_stride": 4,
    "uses_negative_prompt": True,
    "call_defaults": {"max_sequence_length": 512},
}

WAN = FamilySpec(
    name="wan",
    pipeline_classes=("WanPipeline",),
    build_call_kwargs=video_call_kwargs(),
    decode_latents=video_preview(mean_std),
    context_parallel=True,
    tensor_parallel=True,
    **_COMMON,
)

#: Image-to-video: the input image is the first frame (Wan 2.1 I2V also embeds it with CLIP vision).
WAN_I2V = FamilySpec(
    name="wan-i2v",
    pipeline_classes=("WanImageToVideoPipeline",),
    build_call_kwargs=video_call_kwargs(images={"image": "image"}),
    decode_latents=video_preview(mean_std, frame="last"),
    input_roles=("image",),
    required_roles=("image",),
    context_parallel=True,
    tensor_parallel=True,
    **_COMMON,
)

_video_call_kwargs = video_call_kwargs()


def _single_prompt_call_kwargs(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
    """VACE takes one prompt per call (not a list): its jobs run alone, their outputs as videos per prompt."""
    (job,) = jobs
    return {
        **_video_call_kwargs(pipe, jobs),
        "prompt": job.prompt,
        "negative_prompt": job.negative_prompt,
        "num_videos_per_prompt": job.num_outputs,
    }


#: VACE: the transformer adds control hints after each of its ``vace_layers``; the cache keeps its
#: loop and places them (``HINTED_LAYOUTS``). Served as text-to-video: without a control video,
#: mask or reference images the pipeline conditions on its empty control video.
WAN_VACE = FamilySpec(
    name="wan-vace",
    pipeline_classes=("WanVACEPipeline",),
    build_call_kwargs=_single_prompt_call_kwargs,
    decode_latents=video_preview(mean_std),
    generator_per_output=False,
    **_COMMON,
)

WAN_ANIMATE = FamilySpec(
    name="wan-animate",
    pipeline_classes=("WanAnimatePipeline",),
    build_call_kwargs=video_call_kwargs(images={"image": "image"}),
    input_roles=("image",),
    required_roles=("image",),
    unsupported_reason=(
        "it animates the reference image after a pose video and a face video (and, to replace a person, "
        "a background video and a mask video), generating segments of segment_frame_length frames, each a "
        "whole denoising loop conditioned on the last frames of the one before; requests carry input videos "
        "and the engine follows several loops (as Helios's chunks), but no family maps these five inputs and "
        "its segment plan, and no tiny case checks them"
    ),
    **{**_COMMON, "default_width": 1280, "default_height": 720, "default_steps": 20, "default_guidance_scale": 1.0},
)

#: Video-to-video: it noises the latents of the request's video by ``strength`` and denoises them. It
#: takes no frame count: it makes one frame per frame of its video (the VAE keeps 4k + 1 of them), so
#: the output's frames follow the video's. Its frames are resized to the request's size. The VAE
#: encodes the video by its mode (no sampling): the output depends on the request's seed alone.
WAN_V2V = FamilySpec(
    name="wan-v2v",
    pipeline_classes=("WanVideoToVideoPipeline",),
    build_call_kwargs=video_to_video_call_kwargs(),
    decode_latents=video_preview(mean_std),
    default_strength=0.8,
    strength_steps=kept_steps,
    video_roles=("video",),
    required_video_roles=("video",),
    frames_from_video="video",
    **_COMMON,
)


def _lucy_call_kwargs(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
    """Lucy Edit: the request's video once per output (its latents, the condition, must have the noise's
    batch: the pipeline compares their shapes). ``num_frames`` is the video's; the pipeline makes the
    video's frames whatever it is told."""
    kwargs = _video_call_kwargs(pipe, jobs)
    kwargs["video"] = [video_of(jobs, "video")] * len(kwargs["prompt"])
    return kwargs


#: Lucy Edit (Decart): a Wan 2.2 TI2V-5B transformer (a timestep per token) that edits an input video
#: after the prompt: the video's latents (the VAE's mode) join the noise's channels at every step, so
#: the output has the video's frames; there is no strength. Previews show the first frame.
LUCY_EDIT = FamilySpec(
    name="lucy-edit",
    pipeline_classes=("LucyEditPipeline",),
    build_call_kwargs=_lucy_call_kwargs,
    decode_latents=video_preview(mean_std),
    video_roles=("video",),
    required_video_roles=("video",),
    frames_from_video="video",
    **_COMMON,
)
