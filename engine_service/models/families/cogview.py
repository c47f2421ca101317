"""CogView3-Plus and CogView4 text-to-image: one list of dual-stream blocks, in-batch CFG.

Both pack 2x2 latent patches into one token over an 8x VAE. CogView3-Plus encodes
the prompt with T5, CogView4 with GLM-4 (padded to a multiple of 16 tokens).

CogView4 Control (``CogView4ControlPipeline``: the control image's latents as
extra input channels) is known but not served: diffusers 0.42.1 samples those
latents from the process-wide random state, not the request's generator.
"""

from __future__ import annotations

import dataclasses

from engine_service.models.pipeline_calls import text_to_image_with_negative
from engine_service.models.spec import FamilySpec

COGVIEW3PLUS = FamilySpec(
    name="cogview3plus",
    pipeline_classes=("CogView3PlusPipeline",),
    output_kind="image",
    latent_patch=2,
    default_width=1024,
    default_height=1024,
    default_steps=50,
    default_guidance_scale=5.0,
    block_lists=("transformer_blocks",),
    build_call_kwargs=text_to_image_with_negative,
    uses_negative_prompt=True,
    call_defaults={"max_sequence_length": 224},
)

COGVIEW4 = FamilySpec(
    name="cogview4",
    pipeline_classes=("CogView4Pipeline",),
    output_kind="image",
    latent_patch=2,
    default_width=1024,
    default_height=1024,
    default_steps=50,
    default_guidance_scale=5.0,
    block_lists=("transformer_blocks",),
    build_call_kwargs=text_to_image_with_negative,
    uses_negative_prompt=True,
    call_defaults={"max_sequence_length": 1024},
)

COGVIEW4_CONTROL = dataclasses.replace(
    COGVIEW4,
    name="cogview4-control",
    pipeline_classes=("CogView4ControlPipeline",),
    input_roles=("control",),
    required_roles=("control",),
    unsupported_reason=(
        "diffusers 0.42.1's pipeline encodes the control image by sampling the VAE's latent distribution "
        "from the process-wide random state, not the request's generator: the same request and seed give a "
        "different image each time"
    ),
)
