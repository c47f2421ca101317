"""Bria Fibo (``BriaFiboPipeline``): FLUX-style double- then single-stream blocks fed a different
text-encoder layer each.

A SmolLM3 text encoder; every block replaces half of the text states with its own
projected encoder layer, in the transformer's loop, so the cache stands in for each
block (two groups: the double-stream and the single-stream list). Fibo is trained on
structured (JSON) captions; any prompt text is accepted. Latents are 16x Wan 2.2 VAE
latents, one token each (sizes multiples of 16). CFG runs in one batch with the
negative prompt (an empty one is the encoder's begin-of-text token) above guidance 1.
"""

from __future__ import annotations

from engine_service.models.pipeline_calls import text_to_image_with_negative
from engine_service.models.spec import FamilySpec

BRIA_FIBO = FamilySpec(
    name="bria-fibo",
    pipeline_classes=("BriaFiboPipeline",),
    output_kind="image",
    latent_patch=1,
    default_width=1024,
    default_height=1024,
    default_steps=50,
    default_guidance_scale=5.0,
    block_lists=("transformer_blocks", "single_transformer_blocks"),
    build_call_kwargs=text_to_image_with_negative,
    uses_negative_prompt=True,
)
