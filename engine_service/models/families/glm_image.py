"""GLM-Image text-to-image (``GlmImagePipeline``): an autoregressive prior, then a DiT decoder.

A GLM vision-language model first samples the image's prior tokens (a 32 px grid, plus a
16x16 preview grid), then ``transformer_blocks`` denoise 8x VAE latents in 2x2 patches
conditioned on those tokens and on T5 embeddings of the prompt's quoted text (glyphs).
The prior's grid makes sizes multiples of 32. diffusers samples the prior with
``generate(do_sample=True)`` after seeding the process-wide random state from the
request's generator, so the same request and seed give the same image as long as a
call holds one job: the pipeline gets the job's one generator and jobs never share a
call. Classifier-free guidance runs above guidance 1. Image-to-image (condition
images for the prior) is not offered.
"""

from __future__ import annotations

from engine_service.models.pipeline_calls import text_to_image
from engine_service.models.spec import FamilySpec

GLM_IMAGE = FamilySpec(
    name="glm-image",
    pipeline_classes=("GlmImagePipeline",),
    output_kind="image",
    latent_patch=4,  # 8x VAE, and the prior's tokens cover 32 px: sizes are multiples of 32
    default_width=1024,
    default_height=1024,
    default_steps=50,
    default_guidance_scale=1.5,
    block_lists=("transformer_blocks",),
    build_call_kwargs=text_to_image,
    generator_per_output=False,
)
