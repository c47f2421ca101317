"""LongCat-Image text-to-image (``LongCatImagePipeline``): FLUX-like double- then single-stream blocks.

A Qwen2.5-VL text encoder (quoted text in a prompt is tokenized character by
character, for rendering); CFG with a negative prompt as a second transformer call,
its result renormalized to the conditional prediction's norm (``enable_cfg_renorm``).
Like FLUX it packs 2x2 latent patches of a 16-channel 8x VAE into one token, and both
block lists cache as one group. The pipeline can first rewrite the prompt with its
text encoder (``enable_prompt_rewrite``, up to 512 generated tokens): off here, so a
request's prompt is used as written; a model may turn it on in its ``ditserve.json``.
The pipeline has no step callback: the engine follows its scheduler's steps.

LongCat-Image Edit (``LongCatImageEditPipeline``) takes no width or height: it renders
about 1024x1024 pixels in its input image's aspect (``calculate_dimensions`` of its
module, sides rounded up to multiples of 16), the size a request gets
(``size_from_input``). Its transformer reads the target's tokens followed by the input
image's; the text encoder also sees the image at half that size.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine_service.models.inputs import area_in_input_aspect, image_of
from engine_service.models.pipeline_calls import text_to_image_with_negative
from engine_service.models.spec import FamilySpec

if TYPE_CHECKING:
    from collections.abc import Sequence

    from diffusers import DiffusionPipeline

    from engine_service.jobs import JobSpec


def _edit_call_kwargs(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
    """The text-to-image arguments without the size (the pipeline derives it from the image), plus the image."""
    kwargs = text_to_image_with_negative(pipe, jobs)
    del kwargs["width"], kwargs["height"]
    return {**kwargs, "image": image_of(jobs, "image")}


_COMMON = {
    "output_kind": "image",
    "latent_patch": 2,
    "default_width": 1024,
    "default_height": 1024,
    "default_steps": 50,
    "default_guidance_scale": 4.5,
    "block_lists": ("transformer_blocks", "single_transformer_blocks"),
    "uses_negative_prompt": True,
    "step_end_callback": False,
}

LONGCAT_IMAGE = FamilySpec(
    name="longcat-image",
    pipeline_classes=("LongCatImagePipeline",),
    build_call_kwargs=text_to_image_with_negative,
    call_defaults={"enable_prompt_rewrite": False},
    **_COMMON,
)

LONGCAT_IMAGE_EDIT = FamilySpec(
    name="longcat-image-edit",
    pipeline_classes=("LongCatImageEditPipeline",),
    build_call_kwargs=_edit_call_kwargs,
    input_roles=("image",),
    required_roles=("image",),
    size_from_input=area_in_input_aspect(1024 * 1024),
    **_COMMON,
)
