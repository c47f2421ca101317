"""Wan 2.1 text-to-video (``WanPipeline``): one list of blocks, CFG as a second transformer call.

The VAE compresses 4 frames into one latent frame (frame counts are 4k + 1) and
8x spatially; the transformer packs 2x2 latent patches into one token.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine_service.models.spec import FamilySpec

if TYPE_CHECKING:
    from collections.abc import Sequence

    from diffusers import DiffusionPipeline

    from engine_service.runtime.job import JobSpec


def _call_kwargs(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
    first = jobs[0]  # the batch key makes size, frames, steps and guidance equal for every job
    return {
        "prompt": [job.prompt for job in jobs for _ in range(job.num_outputs)],
        "negative_prompt": [job.negative_prompt for job in jobs for _ in range(job.num_outputs)],
        "width": first.width,
        "height": first.height,
        "num_frames": first.num_frames,
        "num_inference_steps": first.num_inference_steps,
        "guidance_scale": first.guidance_scale,
        "num_videos_per_prompt": 1,
    }


WAN = FamilySpec(
    name="wan",
    pipeline_classes=("WanPipeline",),
    output_kind="video",
    latent_patch=2,
    default_width=832,
    default_height=480,
    default_steps=50,
    default_guidance_scale=5.0,
    block_lists=("blocks",),
    build_call_kwargs=_call_kwargs,
    default_frames=81,
    frame_stride=4,
    uses_negative_prompt=True,
    call_defaults={"max_sequence_length": 512},
    context_parallel=True,
    tensor_parallel=True,
)
