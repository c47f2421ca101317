"""VisualCloze (``VisualClozeGenerationPipeline``, ``VisualClozePipeline``): known, not served.

VisualCloze completes a grid of images on a FLUX-Fill transformer: rows of
in-context examples (each row complete: its condition images and its target), then
a query row whose missing cells are generated. What keeps it out of the engine, as of
diffusers 0.42.1:

* The text is two prompts, a *task* prompt (what every row does) and a *content*
  prompt (what the target shows), besides the layout prompt the pipeline writes from
  the grid's shape; a request carries one prompt and has no field for the other.
* The grid has rows, columns and target cells at any column of the query row (each
  target is one output); input roles in request order do not lay it out, so mapping a
  request to it needs a contract of its own (which images are examples, which row they
  belong to, where the targets are).
* The combined pipeline (``VisualClozePipeline``) then upsamples each target with a
  FLUX Fill image-to-image pass in the same call. That pass runs
  ``steps - int(steps - upsampling_strength x steps)`` steps (equal to the first pass only
  at strength 1, while ``FamilySpec.denoising_loops`` counts equal loops) and renders
  ``upsampling_width`` x ``upsampling_height``, by default FLUX Fill's 1024 x 1024 whatever
  the grid's aspect (its docstring says three times the base resolution).

The generation pass alone would fit ``size_from_input`` for a single target (the query
row's first image at about ``resolution``² pixels in its aspect); the two points above do
not.
"""

from __future__ import annotations

import dataclasses

from engine_service.models.pipeline_calls import text_to_image
from engine_service.models.spec import FamilySpec

_GRID = (
    "its text is two prompts, a task prompt (what every row of the grid does) and a content prompt (what the "
    "target shows), where a request carries one; and its images form a grid (rows of in-context examples, then a "
    "query row whose missing cells, at any column, are the targets) that input roles in request order do not lay "
    "out, so a request cannot say which images are examples, which row each belongs to, or where the targets are"
)

VISUALCLOZE_GENERATION = FamilySpec(
    name="visualcloze-generation",
    pipeline_classes=("VisualClozeGenerationPipeline",),
    output_kind="image",
    latent_patch=2,
    default_width=384,
    default_height=384,
    default_steps=30,
    default_guidance_scale=30.0,
    block_lists=("transformer_blocks", "single_transformer_blocks"),
    build_call_kwargs=text_to_image,
    input_roles=("image", "reference"),
    required_roles=("image",),
    unsupported_reason=_GRID,
)

VISUALCLOZE = dataclasses.replace(
    VISUALCLOZE_GENERATION,
    name="visualcloze",
    pipeline_classes=("VisualClozePipeline",),
    default_width=1024,
    default_height=1024,
    unsupported_reason=(
        f"as visualcloze-generation, {_GRID}; besides, its second (upsampling) pass, a FLUX Fill image-to-image "
        "pass in the same call, runs steps - int(steps - upsampling_strength x steps) steps, equal to the first "
        "pass only at strength 1, and renders upsampling_width x upsampling_height, by default 1024x1024 whatever "
        "the grid's aspect"
    ),
)
