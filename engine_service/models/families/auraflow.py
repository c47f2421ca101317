"""AuraFlow (``AuraFlowPipeline``): MMDiT joint blocks, then single DiT blocks over the joined sequence.

A UMT5 text encoder; classifier-free guidance batches the negative prompt with
the prompt in one transformer call. The two block lists are called differently
(joint blocks take text and image, single blocks the joined sequence), so each
is its own cache group.
"""

from __future__ import annotations

from engine_service.models.pipeline_calls import decode_vae_latents, text_to_image_with_negative
from engine_service.models.spec import FamilySpec

AURAFLOW = FamilySpec(
    name="auraflow",
    pipeline_classes=("AuraFlowPipeline",),
    output_kind="image",
    latent_patch=2,
    default_width=1024,
    default_height=1024,
    default_steps=50,
    default_guidance_scale=3.5,
    block_lists=("joint_transformer_blocks", "single_transformer_blocks"),
    build_call_kwargs=text_to_image_with_negative,
    decode_latents=decode_vae_latents,
    uses_negative_prompt=True,
    call_defaults={"max_sequence_length": 256},
)
