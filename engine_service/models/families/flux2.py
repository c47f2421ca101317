"""FLUX.2 (``Flux2Pipeline``, dev) and FLUX.2 Klein (``Flux2KleinPipeline``).

Double-stream blocks, then single-stream blocks over the joined sequence (each
list is its own cache group); modulation is computed once per step and shared
by all blocks. FLUX.2 dev encodes prompts with Mistral Small 3.1 and feeds
``guidance_scale`` to a distilled guidance embedding; Klein encodes with Qwen3,
and its base models run CFG as a second call, while its distilled models (the
defaults here: 4 steps) ignore guidance. Both take optional reference images
(role ``image``, any number, in order) for multi-reference editing.

Klein inpainting (``Flux2KleinInpaintPipeline``) takes a required ``image`` and ``mask``
(white = repaint) and the request's ``strength`` (about ``strength x steps`` steps run);
the pipeline renders at its input image's size, so the engine hands it the image and mask
resized to the request's width and height. An optional ``reference`` image (the first
sent) conditions the inpainting beside the image. It runs CFG (an empty negative prompt)
only for base models with guidance above 1.

Klein KV (``Flux2KleinKVPipeline``, distilled, no guidance: a request's
``guidance_scale`` is refused) keeps the attention keys and
values of its reference images after the first step; later steps run without the
reference tokens. Each block then reads its own key-value layer, so the cache stands in
for each block, and it computes the step where the block input shrank.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PIL import Image

from engine_service.models.inputs import image_of, images_of
from engine_service.models.pipeline_calls import text_to_image
from engine_service.models.spec import FamilySpec

if TYPE_CHECKING:
    from collections.abc import Sequence

    from diffusers import DiffusionPipeline

    from engine_service.jobs import JobSpec


def _call_kwargs(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
    references = images_of(jobs, "image")
    return {**text_to_image(pipe, jobs), "image": references or None}


def _kv_call_kwargs(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
    kwargs = _call_kwargs(pipe, jobs)
    del kwargs["guidance_scale"]  # a distilled model: the pipeline takes none
    return kwargs


def _inpaint_call_kwargs(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
    first = jobs[0]
    size = (first.width, first.height)
    image, mask = image_of(jobs, "image"), image_of(jobs, "mask")
    return {
        **text_to_image(pipe, jobs),
        "image": image.resize(size, Image.Resampling.BICUBIC),
        "mask_image": mask.resize(size, Image.Resampling.NEAREST),
        "image_reference": image_of(jobs, "reference"),
        "strength": first.strength,
    }


_COMMON: dict[str, Any] = {
    "output_kind": "image",
    "latent_patch": 2,
    "default_width": 1024,
    "default_height": 1024,
    "block_lists": ("transformer_blocks", "single_transformer_blocks"),
    "build_call_kwargs": _call_kwargs,
    "input_roles": ("image",),
    "repeated_roles": ("image",),  # reference images, in order
    "min_input_side": 64,  # the pipeline refuses smaller reference images
    "max_input_aspect": 8,  # and more elongated ones
    "call_defaults": {"max_sequence_length": 512},
    "context_parallel": True,
}

FLUX2 = FamilySpec(
    name="flux2", pipeline_classes=("Flux2Pipeline",), default_steps=50, default_guidance_scale=4.0, **_COMMON
)

FLUX2_KLEIN = FamilySpec(
    name="flux2-klein",
    pipeline_classes=("Flux2KleinPipeline",),
    default_steps=4,
    default_guidance_scale=1.0,
    **_COMMON,
)

FLUX2_KLEIN_INPAINT = FamilySpec(
    name="flux2-klein-inpaint",
    pipeline_classes=("Flux2KleinInpaintPipeline",),
    default_steps=4,
    default_guidance_scale=1.0,
    default_strength=0.8,
    **{
        **_COMMON,
        "build_call_kwargs": _inpaint_call_kwargs,
        "input_roles": ("image", "mask", "reference"),
        "required_roles": ("image", "mask"),
        "repeated_roles": (),
        "context_parallel": False,  # split runs of this variant are not tested yet
    },
)

FLUX2_KLEIN_KV = FamilySpec(
    name="flux2-klein-kv",
    pipeline_classes=("Flux2KleinKVPipeline",),
    default_steps=4,
    default_guidance_scale=1.0,
    takes_guidance=False,
    **{**_COMMON, "build_call_kwargs": _kv_call_kwargs, "context_parallel": False},
)
