"""Call-kwargs builders shared by the text-to-image families: one prompt per output, one size."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

    from diffusers import DiffusionPipeline

    from engine_service.runtime.job import JobSpec


def prompts(jobs: Sequence[JobSpec]) -> list[str]:
    """One prompt per output, in job order."""
    return [job.prompt for job in jobs for _ in range(job.num_outputs)]


def negative_prompts(jobs: Sequence[JobSpec]) -> list[str]:
    """One negative prompt per output, in job order."""
    return [job.negative_prompt for job in jobs for _ in range(job.num_outputs)]


def text_to_image(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
    """``prompt``, size, steps, guidance: pipelines whose CFG has no negative prompt, or none at all."""
    first = jobs[0]  # the batch key makes size, steps and guidance equal for every job
    return {
        "prompt": prompts(jobs),
        "width": first.width,
        "height": first.height,
        "num_inference_steps": first.num_inference_steps,
        "guidance_scale": first.guidance_scale,
        "num_images_per_prompt": 1,
    }


def text_to_image_with_negative(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
    """:func:`text_to_image` plus ``negative_prompt`` for the pipeline's CFG."""
    return {**text_to_image(pipe, jobs), "negative_prompt": negative_prompts(jobs)}
