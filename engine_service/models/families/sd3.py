"""Stable Diffusion 3 and 3.5 (``StableDiffusion3Pipeline``): one MMDiT block list.

Three text encoders (two CLIP, one T5). True classifier-free guidance: with a
guidance scale above 1 the pipeline runs the negative prompt (empty when the
request has none) and the prompt as one batch of two per transformer call.
Image-to-image and inpainting (``StableDiffusion3Img2ImgPipeline``,
``StableDiffusion3InpaintPipeline``) add an ``image`` (and a ``mask``, white = repaint)
and the request's ``strength``.

SD 3.5 Large Turbo is served the same way with 4 steps and guidance 0 or 1.
"""

from __future__ import annotations

import dataclasses

from engine_service.models.pipeline_calls import decode_vae_latents, text_to_image_with_negative, with_input_images
from engine_service.models.spec import FamilySpec

SD3 = FamilySpec(
    name="sd3",
    pipeline_classes=("StableDiffusion3Pipeline",),
    output_kind="image",
    latent_patch=2,
    default_width=1024,
    default_height=1024,
    default_steps=28,
    default_guidance_scale=7.0,
    block_lists=("transformer_blocks",),
    build_call_kwargs=text_to_image_with_negative,
    decode_latents=decode_vae_latents,
    uses_negative_prompt=True,
    call_defaults={"max_sequence_length": 256},
)

SD3_IMG2IMG = dataclasses.replace(
    SD3,
    name="sd3-img2img",
    pipeline_classes=("StableDiffusion3Img2ImgPipeline",),
    build_call_kwargs=with_input_images(text_to_image_with_negative, {"image": "image"}),
    input_roles=("image",),
    required_roles=("image",),
    default_strength=0.6,
)

SD3_INPAINT = dataclasses.replace(
    SD3,
    name="sd3-inpaint",
    pipeline_classes=("StableDiffusion3InpaintPipeline",),
    build_call_kwargs=with_input_images(text_to_image_with_negative, {"image": "image", "mask": "mask_image"}),
    input_roles=("image", "mask"),
    required_roles=("image", "mask"),
    default_strength=0.6,
)
