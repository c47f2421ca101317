"""Chroma (``ChromaPipeline``): a FLUX.1-schnell derivative with a T5 encoder only and true CFG.

Double-stream then single-stream blocks over 2x2-packed latents, like FLUX;
the timestep modulation comes from a small approximator network instead of
per-block projections. Guidance is true CFG on the negative prompt (a second
transformer call per step).

The transformer's block loop hands each block its own slice of the timestep
modulation, so the cache stands in for each block and lets that loop run
(``PER_BLOCK_LAYOUTS`` in the cache adapter).
"""

from __future__ import annotations

from engine_service.models.pipeline_calls import decode_packed_latents, text_to_image_with_negative
from engine_service.models.spec import FamilySpec

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
