"""Helios long-video generation: ``HeliosPipeline`` and ``HeliosPyramidPipeline``.

Helios samples a video in chunks of ``num_latent_frames_per_chunk`` latent frames
(9 by default: 33 frames), each a whole denoising loop of ``num_inference_steps``
with the scheduler's timesteps set anew, conditioned on a compressed history of
the chunks before it. The engine follows every loop (``FamilySpec.denoising_loops``):
progress counts the steps of all chunks, and the cache starts a fresh run at each
chunk. The pipeline decodes whole chunks and cuts the joined video to a multiple of
the VAE's 4x temporal compression plus 1, so only the frame counts whole chunks make
are served (its default 132 makes 129).

The pyramid pipeline (Helios-Mid, Helios-Distilled) runs each chunk as stages at growing
resolutions: the chunk's noise is downsampled by 2 per stage after the first (a quarter and a
half of the video's latent size, then the full size, with the scheduler's 3 stages), and each
stage is a denoising loop of its own timesteps (``pyramid_num_inference_steps_list``), upsampled
and renoised into the next. The request's ``num_inference_steps`` is the steps of each stage, so a
request runs chunks x stages loops of that many steps (a distilled model's first chunk, amplified
with the DMD scheduler, runs twice as many). Each stage is a fresh run of the cache: the stage's
token count differs from the one before, and its first step computes. A preview of a lower stage
decodes its smaller latents and scales the picture up to the video's size.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch

from engine_service.models.spec import FamilySpec
from engine_service.models.video import mean_std, video_call_kwargs, video_preview

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline

    from engine_service.jobs import JobSpec

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


def _stages(pipe: DiffusionPipeline) -> int:
    """The pyramid stages of a chunk: the scheduler's (``HeliosScheduler(stages=3)``)."""
    return int(pipe.scheduler.config.stages)


def pyramid_steps(
    pipe: DiffusionPipeline, steps: int, chunks: int, call_defaults: Mapping[str, Any]
) -> tuple[int, ...]:
    """The steps of each stage of each chunk: ``steps`` per stage, or twice as many in the first
    chunk of a distilled model whose defaults set ``is_amplify_first_chunk`` (``HeliosDMDScheduler``'s
    ``set_timesteps`` doubles them; ``HeliosScheduler`` ignores the flag)."""
    amplified = type(pipe.scheduler).__name__ == "HeliosDMDScheduler" and call_defaults.get("is_amplify_first_chunk")
    first = 2 * steps if amplified else steps
    stages = _stages(pipe)
    return (first,) * stages + (steps,) * (stages * (chunks - 1))


_chunk_call_kwargs = _COMMON["build_call_kwargs"]


def _pyramid_call_kwargs(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
    """Helios's keyword arguments, with the request's steps for every stage instead of
    ``num_inference_steps`` (which the pyramid pipeline does not take)."""
    kwargs = _chunk_call_kwargs(pipe, jobs)
    steps = kwargs.pop("num_inference_steps")
    kwargs["pyramid_num_inference_steps_list"] = [steps] * _stages(pipe)
    return kwargs


def _pyramid_size(pipe: DiffusionPipeline, width: int, height: int) -> str | None:
    """Refuses a size whose lowest stage does not patch: the pipeline halves the latent sides (floor) once per
    stage after the first, then doubles them back, so each latent side must be a multiple of the patch x
    2^(stages - 1), i.e. each side of vae scale x patch x 2^(stages - 1) pixels (64 with 3 stages)."""
    multiple = int(pipe.vae_scale_factor_spatial) * _COMMON["latent_patch"] * 2 ** (_stages(pipe) - 1)
    if width % multiple or height % multiple:
        return (
            f"helios-pyramid renders sides that are multiples of {multiple} only (its lowest pyramid stage is "
            f"1/{2 ** (_stages(pipe) - 1)} of the size); got {width}x{height}"
        )
    return None


_chunk_preview = video_preview(mean_std)


def _stage_preview(pipe: DiffusionPipeline, latents: torch.Tensor, job: JobSpec) -> torch.Tensor:
    """The first frame of the chunk being sampled, at the stage's resolution scaled up to the video's."""
    picture = _chunk_preview(pipe, latents, job)
    if picture.shape[1:3] != (job.height, job.width):
        picture = torch.nn.functional.interpolate(
            picture.permute(0, 3, 1, 2), size=(job.height, job.width), mode="bilinear", align_corners=False
        ).permute(0, 2, 3, 1)
    return picture


HELIOS_PYRAMID = FamilySpec(
    name="helios-pyramid",
    pipeline_classes=("HeliosPyramidPipeline",),
    decode_latents=_stage_preview,
    denoising_loops=chunks,
    loop_steps=pyramid_steps,
    check_size=_pyramid_size,
    generator_per_output=False,
    **{**_COMMON, "build_call_kwargs": _pyramid_call_kwargs, "default_steps": 10},
)
