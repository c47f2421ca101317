"""Sana (``SanaPipeline``): linear-attention DiT blocks over a 32x deep-compression autoencoder.

A Gemma-2 text encoder with cross-attention blocks; classifier-free guidance
batches the negative prompt with the prompt in one call. Tokens are latent
pixels (patch size 1), so sizes are multiples of the autoencoder's factor. The
pipeline snaps sizes to its aspect-ratio bins and resizes back, so the output
has the requested size.

ControlNet (``SanaControlNetPipeline``) takes one ``control`` image with its
``controlnet_conditioning_scale``; its hints are added after the transformer's blocks,
and the cache stands in for each block and places them once.
"""

from __future__ import annotations

import dataclasses

from engine_service.models.inputs import control_kwargs, controlnet_count
from engine_service.models.pipeline_calls import decode_vae_latents, text_to_image_with_negative
from engine_service.models.spec import FamilySpec

SANA = FamilySpec(
    name="sana",
    pipeline_classes=("SanaPipeline",),
    output_kind="image",
    latent_patch=1,
    default_width=1024,
    default_height=1024,
    default_steps=20,
    default_guidance_scale=4.5,
    block_lists=("transformer_blocks",),
    build_call_kwargs=text_to_image_with_negative,
    decode_latents=decode_vae_latents,
    uses_negative_prompt=True,
    call_defaults={"max_sequence_length": 300},
    controlnet_pipeline="SanaControlNetPipeline",
)


def _controlnet_call_kwargs(pipe, jobs):
    return {**text_to_image_with_negative(pipe, jobs), **control_kwargs(pipe, jobs)}


SANA_CONTROLNET = dataclasses.replace(
    SANA,
    name="sana-controlnet",
    pipeline_classes=("SanaControlNetPipeline",),
    build_call_kwargs=_controlnet_call_kwargs,
    input_roles=("control",),
    required_roles=("control",),
    control_count=controlnet_count,
    controlnet_pipeline=None,
)
