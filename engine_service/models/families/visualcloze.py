"""VisualCloze (``VisualClozePipeline``, ``VisualClozeGenerationPipeline``): known, not served yet.

VisualCloze completes a grid of images: rows of in-context examples (conditions
and target) and a query row whose target is generated, guided by a task prompt
and a content prompt, on a FLUX-Fill transformer. Two things do not fit the
engine's request model: the generation pipeline's output size follows the input
images and its ``resolution``, not the request's width and height; the combined
pipeline runs a second denoising pass (upsampling) inside the same call, so one
request would report and cache two step sequences.
"""

from __future__ import annotations

from engine_service.models.pipeline_calls import text_to_image
from engine_service.models.spec import FamilySpec

VISUALCLOZE = FamilySpec(
    name="visualcloze",
    pipeline_classes=("VisualClozePipeline", "VisualClozeGenerationPipeline"),
    output_kind="image",
    latent_patch=2,
    default_width=768,
    default_height=768,
    default_steps=30,
    default_guidance_scale=30.0,
    block_lists=("transformer_blocks", "single_transformer_blocks"),
    build_call_kwargs=text_to_image,
    input_roles=("image", "reference"),
    required_roles=("image",),
    unsupported_reason=(
        "its output size follows the input image grid and the pipeline's resolution, not the request's "
        "width and height, and the combined pipeline runs a second (upsampling) denoising pass in the same "
        "call; the engine's one-run-per-request model does not express either yet"
    ),
)
