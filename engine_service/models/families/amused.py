"""aMUSEd (``AmusedPipeline``): a masked-token image model with a UViT, not a latent diffusion DiT.

Each step the UViT predicts logits for every image token of a VQ-GAN and the
scheduler unmasks a share of them. Its transformer layers (between the UViT's
convolutional down and up stages) still form a residual stack over hidden states,
so DBCache applies as for a DiT: a cached step runs the first Fn layers on the
current tokens and adds the middle layers' residual of the last computed step.
Threshold 0 is bit-identical to no cache. CFG with a negative prompt in the same
batch. The pipeline takes a single random generator and no step callback: its
jobs run alone and the engine follows the scheduler's steps. The pipeline is
deprecated in diffusers 0.42 (still shipped).

Its image-to-image and inpainting pipelines are known but not served: they run
``int(steps x strength)`` steps, where the other diffusers image-to-image
pipelines, and the engine's step counts, run ``steps - int(steps - steps x strength)``.
"""

from __future__ import annotations

import dataclasses

from engine_service.models.pipeline_calls import text_to_image_with_negative
from engine_service.models.spec import FamilySpec

AMUSED = FamilySpec(
    name="amused",
    pipeline_classes=("AmusedPipeline",),
    output_kind="image",
    latent_patch=2,
    default_width=512,
    default_height=512,
    default_steps=12,
    default_guidance_scale=10.0,
    block_lists=("transformer_layers",),
    build_call_kwargs=text_to_image_with_negative,
    uses_negative_prompt=True,
    generator_per_output=False,
    step_end_callback=False,
)

AMUSED_IMG2IMG = dataclasses.replace(
    AMUSED,
    name="amused-img2img",
    pipeline_classes=("AmusedImg2ImgPipeline", "AmusedInpaintPipeline"),
    input_roles=("image", "mask"),
    required_roles=("image",),
    default_strength=0.5,
    unsupported_reason=(
        "its pipelines run int(steps x strength) denoising steps, while the other diffusers image-to-image "
        "pipelines, and the engine's step counts (progress, previews, the cache's step mask), run "
        "steps - int(steps - steps x strength): the two differ for most strengths"
    ),
)
