"""CogView3-Plus and CogView4 text-to-image: one list of dual-stream blocks, in-batch CFG.

Both pack 2x2 latent patches into one token over an 8x VAE. CogView3-Plus encodes
the prompt with T5, CogView4 with GLM-4 (padded to a multiple of 16 tokens).

CogView4 Control (``CogView4ControlPipeline``) is no ControlNet: its transformer
takes the control image's latents as extra input channels. It needs one ``control``
image and takes no conditioning scale. diffusers 0.42.1 encodes that image by
sampling the VAE's latent distribution from torch's process-wide random state, not
the request's generator, so the engine seeds that state from the request's seed
(``seeds_process_rng``) and runs each of its jobs alone.
"""

from __future__ import annotations

import dataclasses

from engine_service.models.pipeline_calls import text_to_image_with_negative, with_input_images
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
    build_call_kwargs=with_input_images(text_to_image_with_negative, {"control": "control_image"}, strength=False),
    input_roles=("control",),
    required_roles=("control",),
    seeds_process_rng=True,
)
