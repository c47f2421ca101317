"""Qwen-Image (``QwenImagePipeline``) and its editors (``QwenImageEditPipeline``, ``QwenImageEditPlusPipeline``).

One MMDiT block list (``transformer_blocks``) over text and 2x2-packed image
tokens. The request's ``guidance_scale`` is Qwen-Image's *true* CFG scale
(``true_cfg_scale``): above 1 every step runs a second transformer call for the
negative prompt (an empty request negative prompt becomes ``" "``, as Qwen-Image
is meant to be run); at 1 there is no CFG. Edit takes one image; Edit-Plus one or
more (all sent with role ``image``, in order). The edit pipelines encode the
input image at about 1024x1024 whatever the output size. Their processor
(``Qwen2VLProcessor``) comes with a video processor that transformers builds only with
torchvision installed; without it the processor loads image-only (``vl_processors``).

Image-to-image (``QwenImageImg2ImgPipeline``) and inpainting
(``QwenImageInpaintPipeline``, mask white = repaint) re-noise the input image by
the request's ``strength`` and run about ``strength x steps`` steps.

ControlNet (``QwenImageControlNetPipeline``: a Qwen-Image directory with a
``controlnet`` component) takes one ``control`` image, with its
``controlnet_conditioning_scale``; the residuals are added after the transformer's
blocks, and the cache places them per block. One ControlNet only: diffusers 0.42.1's
``QwenImageMultiControlNetModel`` refuses several at the first step.

ControlNet inpainting (``QwenImageControlNetInpaintPipeline``: one inpainting
ControlNet) takes one ``control`` image and a ``mask`` of its size (white =
repaint); the ControlNet reads the masked control image's latents with the mask,
and the image is drawn from noise (no strength). The pipeline samples those
latents from torch's process-wide random state, not the request's generator, so the
engine seeds that state from the request's seed (``seeds_process_rng``) and runs each
of its jobs alone.

Edit inpainting (``QwenImageEditInpaintPipeline``) takes an ``image``, a ``mask``
(white = repaint) and a ``strength``, and no size: it renders about 1024x1024 pixels in
the image's aspect (its module's ``calculate_dimensions``: sides rounded to multiples
of 32), the size a request gets (``size_from_input``); the mask is resized to it.

Layered (``QwenImageLayeredPipeline``) splits an ``image`` into the request's ``layers``
RGBA images (4 by default, 1 to 8): each output is that many images, in the pipeline's
order, with their alpha channel (PNG or WebP; JPEG is refused), and the input image is
read with its alpha (an opaque one without). It takes no size: it renders about
``resolution`` x ``resolution`` pixels in the image's aspect (its call argument: 640 by
default, or 1024 from the model's ``call_defaults``; sides rounded to multiples of 32),
the size a request gets (``size_from_input``). The request's prompt describes the image:
the pipeline captions the image itself only for an empty prompt, which the engine refuses.
Its latents pack the input image re-made and the layers into one token sequence, so the
cache decides on all of them at once; a preview shows the first layer over white.

Qwen-Image-Lightning is Qwen-Image with a distillation LoRA fused in and a
few-step schedule: serve the fused directory like any Qwen-Image model, with a
``ditserve.json`` of ``{"steps": 8, "guidance_scale": 1.0}`` (no CFG) in it; see
README "Models".
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from engine_service.errors import ModelLoadError
from engine_service.models.inputs import (
    area_in_input_aspect,
    control_kwargs,
    controlnet_count,
    image_of,
    images_of,
    resolution_in_input_aspect,
)
from engine_service.models.spec import FamilySpec

if TYPE_CHECKING:
    from collections.abc import Sequence

    from diffusers import DiffusionPipeline

    from engine_service.jobs import JobSpec


def _call_kwargs(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
    first = jobs[0]  # the batch key makes size, steps and guidance equal for every job
    # Without a negative prompt the pipeline skips CFG whatever the scale; Qwen-Image's own default is " ".
    negatives = [job.negative_prompt or " " for job in jobs for _ in range(job.num_outputs)]
    return {
        "prompt": [job.prompt for job in jobs for _ in range(job.num_outputs)],
        "negative_prompt": negatives if first.guidance_scale > 1.0 else None,
        "true_cfg_scale": first.guidance_scale,
        "width": first.width,
        "height": first.height,
        "num_inference_steps": first.num_inference_steps,
        "num_images_per_prompt": 1,
    }


def _edit_call_kwargs(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
    return {**_call_kwargs(pipe, jobs), "image": image_of(jobs, "image")}


def _edit_plus_call_kwargs(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
    return {**_call_kwargs(pipe, jobs), "image": images_of(jobs, "image")}


def _img2img_call_kwargs(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
    return {**_call_kwargs(pipe, jobs), "image": image_of(jobs, "image"), "strength": jobs[0].strength}


def _inpaint_call_kwargs(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
    return {**_img2img_call_kwargs(pipe, jobs), "mask_image": image_of(jobs, "mask")}


def _controlnet_call_kwargs(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
    return {**_call_kwargs(pipe, jobs), **control_kwargs(pipe, jobs)}


def _decode_latents(pipe: DiffusionPipeline, latents: torch.Tensor, job: JobSpec) -> torch.Tensor:
    unpacked = pipe._unpack_latents(latents, job.height, job.width, pipe.vae_scale_factor).to(pipe.vae.dtype)
    config = pipe.vae.config
    shape = (1, config.z_dim, 1, 1, 1)
    mean = torch.tensor(config.latents_mean).view(shape).to(unpacked)
    std = torch.tensor(config.latents_std).view(shape).to(unpacked)
    decoded = pipe.vae.decode(unpacked * std + mean, return_dict=False)[0][:, :, 0]
    return (decoded / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1)


_COMMON: dict[str, Any] = {
    "output_kind": "image",
    "latent_patch": 2,
    "default_width": 1024,
    "default_height": 1024,
    "default_steps": 50,
    "default_guidance_scale": 4.0,
    "block_lists": ("transformer_blocks",),
    "decode_latents": _decode_latents,
    "uses_negative_prompt": True,
    "call_defaults": {"max_sequence_length": 512},
    "context_parallel": True,
}

QWEN_IMAGE = FamilySpec(
    name="qwen-image",
    pipeline_classes=("QwenImagePipeline",),
    build_call_kwargs=_call_kwargs,
    controlnet_pipeline="QwenImageControlNetPipeline",
    **_COMMON,
)

QWEN_IMAGE_EDIT = FamilySpec(
    name="qwen-image-edit",
    pipeline_classes=("QwenImageEditPipeline",),
    build_call_kwargs=_edit_call_kwargs,
    input_roles=("image",),
    required_roles=("image",),
    **_COMMON,
)

QWEN_IMAGE_EDIT_PLUS = FamilySpec(
    name="qwen-image-edit-plus",
    pipeline_classes=("QwenImageEditPlusPipeline",),
    build_call_kwargs=_edit_plus_call_kwargs,
    input_roles=("image",),
    repeated_roles=("image",),
    required_roles=("image",),
    **_COMMON,
)

QWEN_IMAGE_IMG2IMG = FamilySpec(
    name="qwen-image-img2img",
    pipeline_classes=("QwenImageImg2ImgPipeline",),
    build_call_kwargs=_img2img_call_kwargs,
    input_roles=("image",),
    required_roles=("image",),
    default_strength=0.6,
    **{**_COMMON, "context_parallel": False},  # split runs of this variant are not tested yet
)

QWEN_IMAGE_INPAINT = FamilySpec(
    name="qwen-image-inpaint",
    pipeline_classes=("QwenImageInpaintPipeline",),
    build_call_kwargs=_inpaint_call_kwargs,
    input_roles=("image", "mask"),
    required_roles=("image", "mask"),
    default_strength=0.6,
    **{**_COMMON, "context_parallel": False},  # split runs of this variant are not tested yet
)

QWEN_IMAGE_CONTROLNET = FamilySpec(
    name="qwen-image-controlnet",
    pipeline_classes=("QwenImageControlNetPipeline",),
    build_call_kwargs=_controlnet_call_kwargs,
    input_roles=("control",),
    required_roles=("control",),
    control_count=controlnet_count,
    # diffusers 0.42.1's QwenImageMultiControlNetModel runs a single ControlNet (a ControlNet-Union) and
    # raises at the first step for more.
    max_controlnets=1,
    **{**_COMMON, "context_parallel": False},
)


def _controlnet_inpaint_call_kwargs(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
    return {**_controlnet_call_kwargs(pipe, jobs), "control_mask": image_of(jobs, "mask")}


def _one_inpainting_controlnet(pipe: DiffusionPipeline) -> None:
    """diffusers 0.42.1's pipeline prepares the masked control image for one ControlNet only: refuse a
    multi-ControlNet model (ModelLoadError) rather than fail every request."""
    if getattr(pipe.controlnet, "nets", None) is not None:
        raise ModelLoadError(
            "QwenImageControlNetInpaintPipeline takes one ControlNet; this model's controlnet is a multi-ControlNet "
            f"of {len(pipe.controlnet.nets)} nets"
        )


QWEN_IMAGE_CONTROLNET_INPAINT = dataclasses.replace(
    QWEN_IMAGE_CONTROLNET,
    name="qwen-image-controlnet-inpaint",
    pipeline_classes=("QwenImageControlNetInpaintPipeline",),
    build_call_kwargs=_controlnet_inpaint_call_kwargs,
    input_roles=("control", "mask"),
    required_roles=("control", "mask"),
    prepare_pipeline=_one_inpainting_controlnet,
    seeds_process_rng=True,
)


def _layered_call_kwargs(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
    """Layered arguments: the image and its layer count, without a size (``size_from_input``)."""
    kwargs = _edit_call_kwargs(pipe, jobs)
    del kwargs["width"], kwargs["height"]
    return {**kwargs, "layers": jobs[0].layers}


def _layered_images(output: Any) -> np.ndarray:
    """The call's layers, (N x layers, H, W, 4), output by output. diffusers 0.42.1 returns one list per
    output but cuts its flat list of N x layers images every layers + 1, so beyond one output the lists
    are mis-split: joined back in order they are right."""
    return np.concatenate([np.asarray(images) for images in output.images])


def _decode_first_layer(pipe: DiffusionPipeline, latents: torch.Tensor, job: JobSpec) -> torch.Tensor:
    """A preview of the first layer (the first output), its alpha composited over white. The packed
    latents hold layers + 1 images: the input image re-made (which the pipeline drops), then the layers."""
    unpacked = pipe._unpack_latents(latents, job.height, job.width, job.layers, pipe.vae_scale_factor)
    first = unpacked[:, :, 1:2].to(pipe.vae.dtype)
    config = pipe.vae.config
    shape = (1, config.z_dim, 1, 1, 1)
    mean = torch.tensor(config.latents_mean).view(shape).to(first)
    std = torch.tensor(config.latents_std).view(shape).to(first)
    decoded = pipe.vae.decode(first * std + mean, return_dict=False)[0][:, :, 0]
    rgba = (decoded / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1)
    alpha = rgba[..., 3:]
    return rgba[..., :3] * alpha + (1.0 - alpha)


QWEN_IMAGE_LAYERED = dataclasses.replace(
    QWEN_IMAGE_EDIT,
    name="qwen-image-layered",
    pipeline_classes=("QwenImageLayeredPipeline",),
    build_call_kwargs=_layered_call_kwargs,
    decode_latents=_decode_first_layer,
    context_parallel=False,  # split runs of this variant are not tested yet
    tensor_parallel=False,
    size_from_input=resolution_in_input_aspect,
    default_layers=4,
    max_layers=8,
    outputs_alpha=True,
    read_output=_layered_images,
)


def _edit_inpaint_call_kwargs(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
    """Inpainting arguments without the size: the pipeline derives it from the image (``size_from_input``)."""
    kwargs = _inpaint_call_kwargs(pipe, jobs)
    del kwargs["width"], kwargs["height"]
    return kwargs


QWEN_IMAGE_EDIT_INPAINT = dataclasses.replace(
    QWEN_IMAGE_EDIT,
    name="qwen-image-edit-inpaint",
    context_parallel=False,  # split runs of this variant are not tested yet
    tensor_parallel=False,
    pipeline_classes=("QwenImageEditInpaintPipeline",),
    build_call_kwargs=_edit_inpaint_call_kwargs,
    input_roles=("image", "mask"),
    required_roles=("image", "mask"),
    default_strength=0.6,
    size_from_input=area_in_input_aspect(1024 * 1024),
)
