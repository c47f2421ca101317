"""Z-Image (``ZImagePipeline``): a single-stream DiT with a Qwen3 text encoder.

Image tokens (2x2 latent patches over an 8x VAE) and text tokens are first
refined apart (``noise_refiner``, ``context_refiner``), then ``layers`` run over
the joined sequence; each list is its own cache group. Classifier-free guidance
on the negative prompt is batched with the prompt. Z-Image-Turbo is served the
same way with its few-step defaults (about 8 steps, guidance 0 or 1: no CFG).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import torch

from engine_service.models.inputs import control_kwargs, controlnet_count, images_of
from engine_service.models.pipeline_calls import decode_vae_latents, text_to_image_with_negative, with_input_images
from engine_service.models.spec import FamilySpec

if TYPE_CHECKING:
    from collections.abc import Sequence

    from diffusers import DiffusionPipeline

    from engine_service.jobs import JobSpec

Z_IMAGE = FamilySpec(
    name="z-image",
    pipeline_classes=("ZImagePipeline",),
    output_kind="image",
    latent_patch=2,
    default_width=1024,
    default_height=1024,
    default_steps=50,
    default_guidance_scale=5.0,
    block_lists=("noise_refiner", "context_refiner", "layers"),
    build_call_kwargs=text_to_image_with_negative,
    decode_latents=decode_vae_latents,
    uses_negative_prompt=True,
    call_defaults={"max_sequence_length": 512},
    controlnet_pipeline="ZImageControlNetPipeline",
)

#: Image-to-image (strength 0.6 by default) and inpainting (1.0: the masked area is drawn anew).
Z_IMAGE_IMG2IMG = dataclasses.replace(
    Z_IMAGE,
    name="z-image-img2img",
    pipeline_classes=("ZImageImg2ImgPipeline",),
    build_call_kwargs=with_input_images(text_to_image_with_negative, {"image": "image"}),
    input_roles=("image",),
    required_roles=("image",),
    default_strength=0.6,
    controlnet_pipeline=None,
)

Z_IMAGE_INPAINT = dataclasses.replace(
    Z_IMAGE,
    name="z-image-inpaint",
    pipeline_classes=("ZImageInpaintPipeline",),
    build_call_kwargs=with_input_images(text_to_image_with_negative, {"image": "image", "mask": "mask_image"}),
    input_roles=("image", "mask"),
    required_roles=("image", "mask"),
    default_strength=1.0,
    controlnet_pipeline=None,
)


def _controlnet_call_kwargs(pipe, jobs):
    return {**text_to_image_with_negative(pipe, jobs), **control_kwargs(pipe, jobs)}


#: ControlNet (Z-Image Fun ControlNet): its hints are added after the transformer's main layers; the cache
#: stands in for each block and places them once.
Z_IMAGE_CONTROLNET = dataclasses.replace(
    Z_IMAGE,
    name="z-image-controlnet",
    pipeline_classes=("ZImageControlNetPipeline",),
    build_call_kwargs=_controlnet_call_kwargs,
    input_roles=("control",),
    required_roles=("control",),
    control_count=controlnet_count,
    controlnet_pipeline=None,
)

#: ControlNet inpainting (Z-Image Fun ControlNet 2.1): the ControlNet reads the control image's latents, the mask
#: and the masked input image's latents (33 channels); the image is drawn from noise, with no strength.
Z_IMAGE_CONTROLNET_INPAINT = dataclasses.replace(
    Z_IMAGE_CONTROLNET,
    name="z-image-controlnet-inpaint",
    pipeline_classes=("ZImageControlNetInpaintPipeline",),
    build_call_kwargs=with_input_images(
        _controlnet_call_kwargs, {"image": "image", "mask": "mask_image"}, strength=False
    ),
    input_roles=("control", "image", "mask"),
    required_roles=("control", "image", "mask"),
)


def _omni_call_kwargs(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
    """:func:`text_to_image_with_negative` plus the request's ``image`` inputs (none, one or several, in order),
    which the pipeline gives every output as condition images."""
    return {**text_to_image_with_negative(pipe, jobs), "image": images_of(jobs, "image") or None}


def _bfloat16_vae(pipe: DiffusionPipeline) -> None:
    """diffusers 0.42.1's pipeline hands the VAE every condition image in bfloat16 (``image.bfloat16()``),
    which a VAE of any other dtype refuses: keep the VAE in bfloat16 whatever the engine's dtype."""
    pipe.vae.to(torch.bfloat16)


#: Z-Image Omni: text-to-image, or generation conditioned on images (role ``image``, optional, any number):
#: each is encoded by the VAE (its latents join the noise refiner's tokens, unnoised) and by a SigLIP 2
#: vision model (refined in ``siglip_refiner``, a fourth cache group), with the prompt wrapped in vision markers.
Z_IMAGE_OMNI = dataclasses.replace(
    Z_IMAGE,
    name="z-image-omni",
    pipeline_classes=("ZImageOmniPipeline",),
    block_lists=("noise_refiner", "context_refiner", "siglip_refiner", "layers"),
    build_call_kwargs=_omni_call_kwargs,
    input_roles=("image",),
    repeated_roles=("image",),
    min_input_side=64,  # the pipeline refuses smaller condition images
    max_input_aspect=8,  # and more elongated ones
    prepare_pipeline=_bfloat16_vae,
    controlnet_pipeline=None,
)
