"""PixArt-Alpha and PixArt-Sigma (``PixArtAlphaPipeline``, ``PixArtSigmaPipeline``): one DiT block list.

A T5 text encoder with cross-attention blocks; classifier-free guidance batches
the negative prompt with the prompt in one transformer call. The pipelines snap
sizes to their trained aspect-ratio bins and resize back, so the output has the
requested size. Captions are used as given (``clean_caption`` needs extra
packages and changes prompts).

Perturbed-attention guidance (``PixArtSigmaPAGPipeline``): the same transformer; each step the
pipeline adds a third batch branch whose self-attention in ``pag_applied_layers``
is replaced by identity, and moves the prediction away from it by ``pag_scale``
(3.0, the pipeline's default; a model may set another in its call defaults).
"""

from __future__ import annotations

import dataclasses

from engine_service.models.pipeline_calls import decode_vae_latents, text_to_image_with_negative
from engine_service.models.spec import FamilySpec

PIXART = FamilySpec(
    name="pixart",
    pipeline_classes=("PixArtAlphaPipeline", "PixArtSigmaPipeline"),
    output_kind="image",
    latent_patch=2,
    default_width=1024,
    default_height=1024,
    default_steps=20,
    default_guidance_scale=4.5,
    block_lists=("transformer_blocks",),
    build_call_kwargs=text_to_image_with_negative,
    decode_latents=decode_vae_latents,
    uses_negative_prompt=True,
    call_defaults={"clean_caption": False, "max_sequence_length": 300},
    step_end_callback=False,  # only the older callback(step, timestep, latents)
)

PIXART_SIGMA_PAG = dataclasses.replace(PIXART, name="pixart-sigma-pag", pipeline_classes=("PixArtSigmaPAGPipeline",))
