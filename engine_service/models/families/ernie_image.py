"""ERNIE-Image text-to-image (``ErnieImagePipeline``).

A single-stream transformer (``layers``) over image and text tokens with one
shared AdaLN modulation, a Mistral-3 text encoder and the FLUX.2 VAE; the
pipeline patchifies the VAE latents 2x2, so the transformer sees 16x latents,
and CFG stacks both branches in one batch.

The transformer hands its blocks the hidden states sequence-first,
``[tokens, batch, C]``. The cache splits a batch's requests along dim 0 of the
blocks' hidden states, so this family's jobs never join a batch
(``generator_per_output=False``; the pipeline's ``generator`` is typed as one
generator anyway): with one request per batch the whole batch decides, and
dim 0 is never split. The prompt enhancer (``use_pe``, a sampling language
model) is off: a request's prompt is used as sent.
"""

from __future__ import annotations

from engine_service.models.pipeline_calls import text_to_image_with_negative
from engine_service.models.spec import FamilySpec

ERNIE_IMAGE = FamilySpec(
    name="ernie-image",
    pipeline_classes=("ErnieImagePipeline",),
    output_kind="image",
    latent_patch=1,  # vae_scale_factor is 16: it counts the 2x2 patchify
    default_width=1024,
    default_height=1024,
    default_steps=50,
    default_guidance_scale=4.0,
    block_lists=("layers",),
    build_call_kwargs=text_to_image_with_negative,
    uses_negative_prompt=True,
    call_defaults={"use_pe": False},
    generator_per_output=False,
)
