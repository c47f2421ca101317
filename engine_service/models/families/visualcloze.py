"""VisualCloze: in-context generation (``VisualClozeGenerationPipeline``) and the same followed by an
upsampling pass (``VisualClozePipeline``).

VisualCloze completes a grid of images on a FLUX-Fill transformer: rows of in-context
examples, then a query row whose missing cell is generated. Its text is two prompts: the
request's ``task_prompt`` (what every row does, e.g. "In each row, [IMAGE2] is a depth map
of [IMAGE1]") and its ``prompt`` (what the target shows); the pipeline adds a layout prompt
from the grid's shape. A request lays out the grid by roles, in order:

* ``image`` (one or more, required): the query row's condition images, left to right; the
  target is the row's last cell, after them (one target per row: the pipeline's grids with
  several targets are not expressed);
* ``reference`` (optional, any whole number of rows): the in-context examples, row by row,
  each row its condition images then its target, as many per row as the query row has cells
  (conditions + 1); a count that leaves a row short is INVALID_ARGUMENT on ``input_images``.

The generation pipeline resizes every row to about ``resolution``² pixels (the pipeline's
config, 384 for the released models) in the aspect of the row's first image, sides floored
to multiples of 16; the target has its query row's size, the request's size
(``size_from_input``). No previews: its latents are the whole grid.

The combined ``VisualClozePipeline`` then upsamples the target in the same call with a FLUX
Fill image-to-image pass over a fully white mask, at the request's size (default 1024x1024,
the pipeline's own default whatever the grid's aspect) and ``strength`` (its
``upsampling_strength``; default 0.4, VisualCloze's own example: at diffusers' default 1.0 the
pass starts from pure noise with the whole picture masked, keeping nothing of the first
pass's image). The engine follows both passes as two denoising loops: the generation pass's
``steps``, then the ``steps - int(steps - strength x steps)`` the strength leaves
(``strength_on_last_loop``); progress counts both, and the cache starts afresh at each.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from engine_service.models.inputs import images_of
from engine_service.models.spec import FamilySpec

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from diffusers import DiffusionPipeline

    from engine_service.jobs import JobSpec


def _grid(jobs: Sequence[JobSpec]) -> list[list[Any]]:
    """The in-context grid: the ``reference`` rows, then the query row (its ``image`` conditions and
    ``None`` for the target)."""
    query = images_of(jobs, "image")
    examples = images_of(jobs, "reference")
    columns = len(query) + 1
    rows = [examples[start : start + columns] for start in range(0, len(examples), columns)]
    return [*rows, [*query, None]]


def _check_grid(roles: Sequence[str]) -> str | None:
    """Example rows must be whole: as many ``reference`` images per row as the query row has cells."""
    columns = roles.count("image") + 1
    examples = roles.count("reference")
    if examples % columns:
        return (
            f"{examples} 'reference' images do not fill whole in-context rows of {columns} (each row: as many "
            f"condition images as the {columns - 1} 'image' inputs, then its target)"
        )
    return None


def _call_kwargs(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
    """One task prompt, content prompt and grid per output; no size (the grid gives it)."""
    grid = _grid(jobs)
    first = jobs[0]
    return {
        "task_prompt": [job.task_prompt for job in jobs for _ in range(job.num_outputs)],
        "content_prompt": [job.prompt for job in jobs for _ in range(job.num_outputs)],
        "image": [grid for job in jobs for _ in range(job.num_outputs)],
        "num_inference_steps": first.num_inference_steps,
        "guidance_scale": first.guidance_scale,
        "num_images_per_prompt": 1,
    }


def _target_size(pipe: DiffusionPipeline, width: int, height: int, call_defaults: Mapping[str, Any]) -> tuple[int, int]:
    """The size ``VisualClozeProcessor.preprocess_image`` gives a row whose first image is ``width`` x
    ``height``: about ``resolution``² pixels in its aspect, sides floored to ``2 x vae_scale_factor``."""
    aspect = width / height
    area = pipe.image_processor.resolution**2
    rows = int((area / aspect) ** 0.5)
    columns = int(rows * aspect)
    step = 2 * pipe.vae_scale_factor
    return max(columns // step, 1) * step, max(rows // step, 1) * step


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
    build_call_kwargs=_call_kwargs,
    input_roles=("image", "reference"),
    required_roles=("image",),
    repeated_roles=("image", "reference"),
    takes_task_prompt=True,
    check_roles=_check_grid,
    size_from_input=_target_size,
    call_defaults={"max_sequence_length": 512},
)


def _two_passes(frames: int, call_defaults: Mapping[str, Any]) -> tuple[int, int]:
    """The combined pipeline's loops: the generation pass, then the upsampling pass."""
    return 2, frames


def _combined_call_kwargs(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
    """The generation pass's arguments, then the upsampling pass's: the request's size and strength."""
    first = jobs[0]
    return {
        **_call_kwargs(pipe, jobs),
        "upsampling_width": first.width,
        "upsampling_height": first.height,
        "upsampling_strength": first.strength,
    }


VISUALCLOZE = dataclasses.replace(
    VISUALCLOZE_GENERATION,
    name="visualcloze",
    pipeline_classes=("VisualClozePipeline",),
    build_call_kwargs=_combined_call_kwargs,
    default_width=1024,
    default_height=1024,
    size_from_input=None,
    # VisualCloze's own example upsamples at 0.4; diffusers' default 1.0 keeps nothing of the first pass.
    default_strength=0.4,
    denoising_loops=_two_passes,
    strength_on_last_loop=True,
)
