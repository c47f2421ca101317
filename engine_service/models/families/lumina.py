"""Lumina-Next (``LuminaPipeline``) and Lumina-Image 2.0 (``Lumina2Pipeline``).

Both use a Gemma text encoder and classifier-free guidance on the negative
prompt, batched with the prompt in one call; tokens are 2x2 latent patches over
an 8x VAE. Lumina-Next runs one list of blocks (``layers``) with cross-attention
to the text. Lumina 2 first refines the text tokens (``context_refiner``) and the
image tokens (``noise_refiner``) apart, then runs ``layers`` over the joined
sequence; each list is its own cache group.
"""

from __future__ import annotations

from engine_service.models.pipeline_calls import decode_vae_latents, text_to_image_with_negative
from engine_service.models.spec import FamilySpec

LUMINA = FamilySpec(
    name="lumina",
    pipeline_classes=("LuminaPipeline",),
    output_kind="image",
    latent_patch=2,
    default_width=1024,
    default_height=1024,
    default_steps=30,
    default_guidance_scale=4.0,
    block_lists=("layers",),
    build_call_kwargs=text_to_image_with_negative,
    decode_latents=decode_vae_latents,
    uses_negative_prompt=True,
    call_defaults={"clean_caption": False, "max_sequence_length": 256},
)

LUMINA2 = FamilySpec(
    name="lumina2",
    pipeline_classes=("Lumina2Pipeline",),
    output_kind="image",
    latent_patch=2,
    default_width=1024,
    default_height=1024,
    default_steps=30,
    default_guidance_scale=4.0,
    block_lists=("context_refiner", "noise_refiner", "layers"),
    build_call_kwargs=text_to_image_with_negative,
    decode_latents=decode_vae_latents,
    uses_negative_prompt=True,
    call_defaults={"max_sequence_length": 256},
)
