"""PRX text-to-image (``PRXPipeline``): one list of blocks over image tokens, text as context.

A T5Gemma text encoder; CFG with a negative prompt in the same batch. The VAE is
FLUX's (8x) or a DC-AE (32x) depending on the checkpoint; sizes must be multiples
of the VAE scale x 2 (the larger patch of the released models). Sizes are snapped
to trained aspect ratios and resized back (``use_resolution_binning``). The
pipeline cleans every prompt with ``ftfy`` (an engine dependency for it).
"""

from __future__ import annotations

from engine_service.models.pipeline_calls import text_to_image_with_negative
from engine_service.models.spec import FamilySpec

PRX = FamilySpec(
    name="prx",
    pipeline_classes=("PRXPipeline",),
    output_kind="image",
    latent_patch=2,
    default_width=1024,
    default_height=1024,
    default_steps=28,
    default_guidance_scale=4.0,
    block_lists=("blocks",),
    build_call_kwargs=text_to_image_with_negative,
    uses_negative_prompt=True,
    call_defaults={"use_resolution_binning": True},
)
