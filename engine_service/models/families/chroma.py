"""Chroma (``ChromaPipeline``): a FLUX.1-schnell derivative with a T5 encoder only and true CFG.

Double-stream then single-stream blocks over 2x2-packed latents, like FLUX;
the timestep modulation comes from a small approximator network instead of
per-block projections. Guidance is true CFG on the negative prompt (a second
transformer call per step).

Image-to-image (``ChromaImg2ImgPipeline``, strength 0.9 by default) and inpainting
(``ChromaInpaintPipeline``, 0.6) add an ``image`` (and a ``mask``) and the strength.

The transformer's block loop hands each block its own slice of the timestep
modulation, so the cache stands in for each block and lets that loop run
(``PER_BLOCK_LAYOUTS`` in the cache adapter).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from engine_service.models.pipeline_calls import decode_packed_latents, text_to_image_with_negative, with_input_images
from engine_service.models.spec import FamilySpec

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline

CHROMA = FamilySpec(
    name="chroma",
    pipeline_classes=("ChromaPipeline",),
    output_kind="image",
    latent_patch=2,
    default_width=1024,
    default_height=1024,
    default_steps=35,
    default_guidance_scale=5.0,
    block_lists=("transformer_blocks", "single_transformer_blocks"),
    build_call_kwargs=text_to_image_with_negative,
    decode_latents=decode_packed_latents,
    uses_negative_prompt=True,
    call_defaults={"max_sequence_length": 512},
)

CHROMA_IMG2IMG = dataclasses.replace(
    CHROMA,
    name="chroma-img2img",
    pipeline_classes=("ChromaImg2ImgPipeline",),
    build_call_kwargs=with_input_images(text_to_image_with_negative, {"image": "image"}),
    input_roles=("image",),
    required_roles=("image",),
    default_strength=0.9,
)


def _no_guidance_embedding(pipe: DiffusionPipeline) -> None:
    """diffusers 0.42.1's ``ChromaInpaintPipeline`` reads ``transformer.config.guidance_embeds``,
    which Chroma's transformer config lacks (it has no guidance embedding): state it as false."""
    if "guidance_embeds" not in pipe.transformer.config:
        pipe.transformer.register_to_config(guidance_embeds=False)


CHROMA_INPAINT = dataclasses.replace(
    CHROMA,
    prepare_pipeline=_no_guidance_embedding,
    name="chroma-inpaint",
    pipeline_classes=("ChromaInpaintPipeline",),
    build_call_kwargs=with_input_images(text_to_image_with_negative, {"image": "image", "mask": "mask_image"}),
    input_roles=("image", "mask"),
    required_roles=("image", "mask"),
    default_strength=0.6,
)
