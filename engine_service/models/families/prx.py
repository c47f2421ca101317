"""PRX text-to-image (``PRXPipeline``): one list of blocks over image tokens, text as context.

A T5Gemma text encoder; CFG with a negative prompt in the same batch. The VAE is
FLUX's (8x) or a DC-AE (32x) depending on the checkpoint; sizes must be multiples
of the VAE scale x 2 (the larger patch of the released models). Sizes are snapped
to trained aspect ratios and resized back (``use_resolution_binning``). The
pipeline cleans every prompt with ``ftfy`` (an engine dependency for it).

PRXPixel (``PRXPixelPipeline``) runs the same transformer over RGB pixels (no
VAE; it predicts the clean image, which the pipeline turns into a flow velocity):
tokens are pixel patches, so sizes are multiples of 32 (a multiple of the pixel
patch of the released model). A Qwen3-VL text backbone, light prompt cleaning;
a preview shows the step's noisy pixels.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from engine_service.models.pipeline_calls import text_to_image_with_negative
from engine_service.models.spec import FamilySpec

if TYPE_CHECKING:
    import torch
    from diffusers import DiffusionPipeline

    from engine_service.jobs import JobSpec

PRX = FamilySpec(
    name="prx",
    pipeline_classes=("PRXPipeline",),
    output_kind="image",
    latent_patch=2,
    default_width=1024,
    default_height=1024,
    default_steps=28,
    default_guidance_scale=4.0,
    block_lists=("blocks",),
    build_call_kwargs=text_to_image_with_negative,
    uses_negative_prompt=True,
    call_defaults={"use_resolution_binning": True},
)


def _decode_pixels(pipe: DiffusionPipeline, latents: torch.Tensor, job: JobSpec) -> torch.Tensor:
    """PRXPixel's step latents are the image itself, in [-1, 1], as (N, 3, H, W)."""
    return (latents / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1)


PRX_PIXEL = dataclasses.replace(
    PRX,
    name="prx-pixel",
    pipeline_classes=("PRXPixelPipeline",),
    latent_patch=32,
    decode_latents=_decode_pixels,
)
