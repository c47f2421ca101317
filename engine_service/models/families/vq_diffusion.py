"""VQ-Diffusion (``VQDiffusionPipeline``): discrete diffusion over a VQ-VAE's codebook tokens.

A transformer over the image's token grid (one token per latent pixel) with
cross-attention to CLIP text embeddings predicts the log-probabilities of every
codebook entry; the scheduler samples the next tokens from them (Gumbel noise
from the request's generator). Its blocks form a residual stack over hidden
states, so DBCache applies as for a DiT; threshold 0 is bit-identical to no cache.
Classifier-free guidance batches learned unconditional embeddings (no negative
prompt). The pipeline takes no size (the token grid fixes it), one generator per
call (its jobs run alone) and no step callback (the engine follows the scheduler's
steps). The pipeline is deprecated in diffusers 0.42 (still shipped).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine_service.models.pipeline_calls import prompts
from engine_service.models.spec import FamilySpec

if TYPE_CHECKING:
    from collections.abc import Sequence

    from diffusers import DiffusionPipeline

    from engine_service.jobs import JobSpec


def _native_size(pipe: DiffusionPipeline) -> tuple[int, int]:
    """The token grid times the VQ-VAE's downsampling."""
    scale = 2 ** (len(pipe.vqvae.config.block_out_channels) - 1)
    return pipe.transformer.width * scale, pipe.transformer.height * scale


def _call_kwargs(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
    first = jobs[0]
    return {
        "prompt": prompts(jobs),
        "num_inference_steps": first.num_inference_steps,
        "guidance_scale": first.guidance_scale,
        "num_images_per_prompt": 1,
    }


VQ_DIFFUSION = FamilySpec(
    name="vq-diffusion",
    pipeline_classes=("VQDiffusionPipeline",),
    output_kind="image",
    latent_patch=1,
    default_width=256,
    default_height=256,
    default_steps=100,
    default_guidance_scale=5.0,
    block_lists=("transformer_blocks",),
    build_call_kwargs=_call_kwargs,
    native_size=_native_size,
    generator_per_output=False,
    step_end_callback=False,
)
