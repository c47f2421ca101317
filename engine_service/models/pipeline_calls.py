"""Call-kwargs builders and preview decoders shared by families whose pipelines work alike.

Most diffusers image pipelines take ``prompt`` (a list: one per output, in job
order), ``width``, ``height``, ``num_inference_steps``, ``guidance_scale`` and
``num_images_per_prompt``; those with classifier-free guidance on a negative
prompt also take ``negative_prompt``. A family whose pipeline differs writes its
own builder. Previews decode the latents a step leaves: plain (N, C, h, w) VAE
latents, or FLUX-style 2x2-packed token sequences.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine_service.models.inputs import image_of

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import torch
    from diffusers import DiffusionPipeline

    from engine_service.jobs import JobSpec
    from engine_service.models.spec import CallKwargsBuilder


def prompts(jobs: Sequence[JobSpec]) -> list[str]:
    """One prompt per output, in job order."""
    return [job.prompt for job in jobs for _ in range(job.num_outputs)]


def negative_prompts(jobs: Sequence[JobSpec]) -> list[str]:
    """One negative prompt per output (empty when the request has none), in job order."""
    return [job.negative_prompt for job in jobs for _ in range(job.num_outputs)]


def text_to_image(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
    """Prompt, size, steps and guidance; the batch key makes all but the prompt equal for every job."""
    first = jobs[0]
    return {
        "prompt": prompts(jobs),
        "width": first.width,
        "height": first.height,
        "num_inference_steps": first.num_inference_steps,
        "guidance_scale": first.guidance_scale,
        "num_images_per_prompt": 1,
    }


def text_to_image_with_negative(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
    """:func:`text_to_image` plus ``negative_prompt``."""
    return {**text_to_image(pipe, jobs), "negative_prompt": negative_prompts(jobs)}


def with_input_images(
    builder: CallKwargsBuilder, images: Mapping[str, str], *, strength: bool = True
) -> CallKwargsBuilder:
    """``builder`` plus the request's input images (role -> pipeline keyword, e.g. ``{"image": "image",
    "mask": "mask_image"}``) and, for image-to-image and inpainting pipelines, its ``strength``."""

    def build(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
        kwargs = builder(pipe, jobs)
        for role, keyword in images.items():
            kwargs[keyword] = image_of(jobs, role)
        if strength:
            kwargs["strength"] = jobs[0].strength
        return kwargs

    return build


def decode_vae_latents(pipe: DiffusionPipeline, latents: torch.Tensor, job: JobSpec) -> torch.Tensor:
    """Previews for pipelines whose step latents are plain (N, C, h, w) VAE latents: undo the VAE's
    scaling (and shift, where it has one), decode, and map to images in [0, 1] as (N, H, W, 3)."""
    config = pipe.vae.config
    scaled = latents / config.scaling_factor + (getattr(config, "shift_factor", None) or 0.0)
    decoded = pipe.vae.decode(scaled.to(pipe.vae.dtype), return_dict=False)[0]
    return (decoded / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1)


def decode_packed_latents(pipe: DiffusionPipeline, latents: torch.Tensor, job: JobSpec) -> torch.Tensor:
    """Previews for FLUX-style pipelines, whose step latents are 2x2-packed tokens (the pipeline's
    ``_unpack_latents`` restores the VAE latents)."""
    unpacked = pipe._unpack_latents(latents, job.height, job.width, pipe.vae_scale_factor)
    return decode_vae_latents(pipe, unpacked, job)


__all__ = [
    "decode_packed_latents",
    "decode_vae_latents",
    "negative_prompts",
    "prompts",
    "text_to_image",
    "text_to_image_with_negative",
    "with_input_images",
]
