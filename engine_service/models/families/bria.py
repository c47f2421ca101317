"""Bria 3.2 (``BriaPipeline``): FLUX-style double- and single-stream blocks with a T5 encoder and true CFG.

Latents are 2x2-packed like FLUX; the pipeline's ``vae_scale_factor`` already
counts the packing (16 for an 8x VAE), so the family's latent patch is 1.
Guidance is true CFG on the negative prompt.
"""

from __future__ import annotations

from engine_service.models.pipeline_calls import decode_packed_latents, text_to_image_with_negative
from engine_service.models.spec import FamilySpec

BRIA = FamilySpec(
    name="bria",
    pipeline_classes=("BriaPipeline",),
    output_kind="image",
    latent_patch=1,
    default_width=1024,
    default_height=1024,
    default_steps=30,
    default_guidance_scale=5.0,
    block_lists=("transformer_blocks", "single_transformer_blocks"),
    build_call_kwargs=text_to_image_with_negative,
    decode_latents=decode_packed_latents,
    uses_negative_prompt=True,
    call_defaults={"max_sequence_length": 128},
)
