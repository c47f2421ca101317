"""aMUSEd (``AmusedPipeline``): a masked-token image model with a UViT, not a latent diffusion DiT.

Each step the UViT predicts logits for every image token of a VQ-GAN and the
scheduler unmasks a share of them. Its transformer layers (between the UViT's
convolutional down and up stages) still form a residual stack over hidden states,
so DBCache applies as for a DiT: a cached step runs the first Fn layers on the
current tokens and adds the middle layers' residual of the last computed step.
Threshold 0 is bit-identical to no cache. CFG with a negative prompt in the same
batch. The pipeline takes a single random generator and no step callback: its
jobs run alone and the engine follows the scheduler's steps. The pipeline is
deprecated in diffusers 0.42 (still shipped).

Its image-to-image and inpainting pipelines (``AmusedImg2ImgPipeline``, ``AmusedInpaintPipeline``)
take a required ``image`` (and ``mask``: white = repaint) and the request's ``strength``
(default 0.5). They render at the input image's size, so the engine hands them the image and mask
resized to the request's width and height, one copy per output. They run ``int(steps x strength)``
steps, where diffusers' other image-to-image pipelines run ``steps - int(steps - steps x strength)``
(12 steps at 0.3: 3, not 4): the family's ``strength_steps`` gives the engine that count (progress,
previews, the cache's step mask). A strength that runs no step (``steps x strength < 1``) is
INVALID_ARGUMENT. So is strength 1: the pipeline then noises the image for the timestep at index
``-1`` of its schedule (``start - 1`` with ``start`` 0), its last, which masks no token, so the whole
schedule would run on the unmasked input instead of regenerating it.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from PIL import Image

from engine_service.models.inputs import image_of
from engine_service.models.pipeline_calls import negative_prompts, prompts, text_to_image_with_negative
from engine_service.models.spec import FamilySpec

if TYPE_CHECKING:
    from collections.abc import Sequence

    from diffusers import DiffusionPipeline

    from engine_service.jobs import JobSpec


def _strength_steps(num_inference_steps: int, strength: float) -> int:
    """Steps aMUSEd's image-to-image and inpainting pipelines run: ``int(steps x strength)``."""
    return int(num_inference_steps * strength)


def _image_call_kwargs(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
    """Prompt, negative prompt, steps, guidance and strength, with the ``image`` (and ``mask``) resized to
    the request's size: one copy per output, as the pipeline encodes one image per prompt."""
    first = jobs[0]
    size = (first.width, first.height)
    outputs = prompts(jobs)
    kwargs = {
        "prompt": outputs,
        "negative_prompt": negative_prompts(jobs),
        "num_inference_steps": first.num_inference_steps,
        "guidance_scale": first.guidance_scale,
        "num_images_per_prompt": 1,
        "strength": first.strength,
        "image": [image_of(jobs, "image").resize(size, Image.Resampling.BICUBIC)] * len(outputs),
    }
    mask = image_of(jobs, "mask")
    if mask is not None:
        kwargs["mask_image"] = [mask.resize(size, Image.Resampling.NEAREST)] * len(outputs)
    return kwargs


AMUSED = FamilySpec(
    name="amused",
    pipeline_classes=("AmusedPipeline",),
    output_kind="image",
    latent_patch=2,
    default_width=512,
    default_height=512,
    default_steps=12,
    default_guidance_scale=10.0,
    block_lists=("transformer_layers",),
    build_call_kwargs=text_to_image_with_negative,
    uses_negative_prompt=True,
    generator_per_output=False,
    step_end_callback=False,
)

AMUSED_IMG2IMG = dataclasses.replace(
    AMUSED,
    name="amused-img2img",
    pipeline_classes=("AmusedImg2ImgPipeline",),
    build_call_kwargs=_image_call_kwargs,
    input_roles=("image",),
    required_roles=("image",),
    default_strength=0.5,
    strength_steps=_strength_steps,
    full_strength_problem=(
        "at strength 1 the pipeline noises the image for the last timestep of its schedule (index -1), "
        "which masks no token, so nothing of the image would be regenerated"
    ),
)

AMUSED_INPAINT = dataclasses.replace(
    AMUSED_IMG2IMG,
    name="amused-inpaint",
    pipeline_classes=("AmusedInpaintPipeline",),
    input_roles=("image", "mask"),
    required_roles=("image", "mask"),
)
