"""Ovis-Image text-to-image (``OvisImagePipeline``): FLUX-like double- then single-stream blocks.

A Qwen3 text encoder; CFG with a negative prompt as a second transformer call.
Like FLUX it packs 2x2 latent patches into one token over an 8x VAE, and both
block lists run back to back with the same arguments, so they cache as one group.
"""

from __future__ import annotations

from engine_service.models.pipeline_calls import text_to_image_with_negative
from engine_service.models.spec import FamilySpec

OVIS_IMAGE = FamilySpec(
    name="ovis-image",
    pipeline_classes=("OvisImagePipeline",),
    output_kind="image",
    latent_patch=2,
    default_width=1024,
    default_height=1024,
    default_steps=50,
    default_guidance_scale=5.0,
    block_lists=("transformer_blocks", "single_transformer_blocks"),
    build_call_kwargs=text_to_image_with_negative,
    uses_negative_prompt=True,
    call_defaults={"max_sequence_length": 256},
)
