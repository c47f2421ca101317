"""FLUX.1 (``FluxPipeline``: dev and schnell; ``FluxFillPipeline``; ``FluxKontextPipeline``).

All three run the same transformer class: double-stream then single-stream
blocks. Flux packs 2x2 latent patches into one token, so sizes must be
multiples of twice the VAE scale factor. ``guidance_scale`` feeds the distilled
guidance embedding; the pipelines' true CFG (negative prompts) is not exposed.
FLUX.1-schnell is a ``FluxPipeline`` without a guidance embedding: serve it
like dev and ask for 4 steps (``guidance_scale`` has no effect on it).

Image-to-image (``FluxImg2ImgPipeline``) re-noises the input image by the request's
``strength`` and denoises from there: it runs about ``strength x steps`` steps.
Inpainting (``FluxInpaintPipeline``) does the same inside a mask (white = repaint)
and keeps the image's latents outside it; unlike Fill it runs the plain FLUX.1
transformer.

ControlNet (``FluxControlNetPipeline``: a FLUX.1 directory with a ``controlnet``
component, one ControlNet or several) takes one ``control`` image per ControlNet,
each with its ``controlnet_conditioning_scale``; the ControlNet's residuals are
added after the transformer's blocks, so the cache places them per block.

Kontext inpainting (``FluxKontextInpaintPipeline``) repaints the masked part of the
``image`` (strength 1.0 by default). ControlNet image-to-image and inpainting
(``FluxControlNetImg2ImgPipeline``, ``FluxControlNetInpaintPipeline``) take the
control images and the image (and mask) with a strength.

FLUX.1 Control (``FluxControlPipeline`` and its image-to-image and inpainting
variants: Canny / Depth dev) is no ControlNet: its transformer takes the control
image's latents as extra input channels. It needs one ``control`` image and takes no
conditioning scale.

Fill (inpainting/outpainting) takes an image and a mask (white = repaint);
its transformer sees the masked image and the mask as extra channels. Kontext
edits an image given in context (its latents join the token sequence); without
one it draws from text alone.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from engine_service.models.inputs import control_kwargs, controlnet_count, image_of
from engine_service.models.pipeline_calls import with_input_images
from engine_service.models.spec import FamilySpec

if TYPE_CHECKING:
    from collections.abc import Sequence

    import torch
    from diffusers import DiffusionPipeline

    from engine_service.jobs import JobSpec


def _call_kwargs(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
    first = jobs[0]  # the batch key makes size, steps and guidance equal for every job
    return {
        "prompt": [job.prompt for job in jobs for _ in range(job.num_outputs)],
        "width": first.width,
        "height": first.height,
        "num_inference_steps": first.num_inference_steps,
        "guidance_scale": first.guidance_scale,
        "num_images_per_prompt": 1,
    }


def _fill_call_kwargs(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
    return {**_call_kwargs(pipe, jobs), "image": image_of(jobs, "image"), "mask_image": image_of(jobs, "mask")}


def _img2img_call_kwargs(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
    return {**_call_kwargs(pipe, jobs), "image": image_of(jobs, "image"), "strength": jobs[0].strength}


def _inpaint_call_kwargs(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
    return {**_img2img_call_kwargs(pipe, jobs), "mask_image": image_of(jobs, "mask")}


def _controlnet_call_kwargs(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
    return {**_call_kwargs(pipe, jobs), **control_kwargs(pipe, jobs)}


def _kontext_call_kwargs(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
    kwargs = _call_kwargs(pipe, jobs)
    # Kontext rescales the output to max_area pixels (keeping the aspect ratio); the request's size is the area.
    return {**kwargs, "image": image_of(jobs, "image"), "max_area": kwargs["width"] * kwargs["height"]}


def _decode_latents(pipe: DiffusionPipeline, latents: torch.Tensor, job: JobSpec) -> torch.Tensor:
    unpacked = pipe._unpack_latents(latents, job.height, job.width, pipe.vae_scale_factor)
    unpacked = unpacked / pipe.vae.config.scaling_factor + pipe.vae.config.shift_factor
    decoded = pipe.vae.decode(unpacked.to(pipe.vae.dtype), return_dict=False)[0]
    return (decoded / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1)


_BLOCKS = ("transformer_blocks", "single_transformer_blocks")

FLUX = FamilySpec(
    name="flux",
    pipeline_classes=("FluxPipeline",),
    output_kind="image",
    latent_patch=2,
    default_width=1024,
    default_height=1024,
    default_steps=28,
    default_guidance_scale=3.5,
    block_lists=_BLOCKS,
    build_call_kwargs=_call_kwargs,
    decode_latents=_decode_latents,
    call_defaults={"max_sequence_length": 512},
    context_parallel=True,
    tensor_parallel=True,
    controlnet_pipeline="FluxControlNetPipeline",
)

FLUX_FILL = FamilySpec(
    name="flux-fill",
    pipeline_classes=("FluxFillPipeline",),
    output_kind="image",
    latent_patch=2,
    default_width=1024,
    default_height=1024,
    default_steps=50,
    default_guidance_scale=30.0,
    block_lists=_BLOCKS,
    build_call_kwargs=_fill_call_kwargs,
    decode_latents=_decode_latents,
    input_roles=("image", "mask"),
    required_roles=("image", "mask"),
    call_defaults={"max_sequence_length": 512},
    context_parallel=True,
    tensor_parallel=True,
)

FLUX_KONTEXT = FamilySpec(
    name="flux-kontext",
    pipeline_classes=("FluxKontextPipeline",),
    output_kind="image",
    latent_patch=2,
    default_width=1024,
    default_height=1024,
    default_steps=28,
    default_guidance_scale=2.5,
    block_lists=_BLOCKS,
    build_call_kwargs=_kontext_call_kwargs,
    decode_latents=_decode_latents,
    input_roles=("image",),
    call_defaults={"max_sequence_length": 512},
    context_parallel=True,
    tensor_parallel=True,
)

FLUX_IMG2IMG = FamilySpec(
    name="flux-img2img",
    pipeline_classes=("FluxImg2ImgPipeline",),
    output_kind="image",
    latent_patch=2,
    default_width=1024,
    default_height=1024,
    default_steps=28,
    default_guidance_scale=3.5,
    block_lists=_BLOCKS,
    build_call_kwargs=_img2img_call_kwargs,
    decode_latents=_decode_latents,
    input_roles=("image",),
    required_roles=("image",),
    default_strength=0.6,
    controlnet_pipeline="FluxControlNetImg2ImgPipeline",
    call_defaults={"max_sequence_length": 512},
    # context_parallel and tensor_parallel stay off: split runs of this variant are not tested yet
)

FLUX_INPAINT = FamilySpec(
    name="flux-inpaint",
    pipeline_classes=("FluxInpaintPipeline",),
    output_kind="image",
    latent_patch=2,
    default_width=1024,
    default_height=1024,
    default_steps=28,
    default_guidance_scale=3.5,
    block_lists=_BLOCKS,
    build_call_kwargs=_inpaint_call_kwargs,
    decode_latents=_decode_latents,
    input_roles=("image", "mask"),
    required_roles=("image", "mask"),
    default_strength=0.6,
    controlnet_pipeline="FluxControlNetInpaintPipeline",
    call_defaults={"max_sequence_length": 512},
    # context_parallel and tensor_parallel stay off: split runs of this variant are not tested yet
)

FLUX_CONTROLNET = FamilySpec(
    name="flux-controlnet",
    pipeline_classes=("FluxControlNetPipeline",),
    output_kind="image",
    latent_patch=2,
    default_width=1024,
    default_height=1024,
    default_steps=28,
    default_guidance_scale=3.5,
    block_lists=_BLOCKS,
    build_call_kwargs=_controlnet_call_kwargs,
    decode_latents=_decode_latents,
    input_roles=("control",),
    required_roles=("control",),
    control_count=controlnet_count,
    call_defaults={"max_sequence_length": 512},
)

_IMAGE = {"image": "image"}
_IMAGE_AND_MASK = {"image": "image", "mask": "mask_image"}

FLUX_KONTEXT_INPAINT = dataclasses.replace(
    FLUX_KONTEXT,
    name="flux-kontext-inpaint",
    context_parallel=False,  # split runs of this variant are not tested yet
    tensor_parallel=False,
    pipeline_classes=("FluxKontextInpaintPipeline",),
    build_call_kwargs=with_input_images(_kontext_call_kwargs, _IMAGE_AND_MASK),
    input_roles=("image", "mask"),
    required_roles=("image", "mask"),
    default_strength=1.0,
)

FLUX_CONTROLNET_IMG2IMG = dataclasses.replace(
    FLUX_CONTROLNET,
    name="flux-controlnet-img2img",
    pipeline_classes=("FluxControlNetImg2ImgPipeline",),
    build_call_kwargs=with_input_images(_controlnet_call_kwargs, _IMAGE),
    input_roles=("image", "control"),
    required_roles=("image", "control"),
    default_strength=0.6,
)

FLUX_CONTROLNET_INPAINT = dataclasses.replace(
    FLUX_CONTROLNET,
    name="flux-controlnet-inpaint",
    pipeline_classes=("FluxControlNetInpaintPipeline",),
    build_call_kwargs=with_input_images(_controlnet_call_kwargs, _IMAGE_AND_MASK),
    input_roles=("image", "mask", "control"),
    required_roles=("image", "mask", "control"),
    default_strength=0.6,
)


def _control_call_kwargs(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
    return {**_call_kwargs(pipe, jobs), "control_image": image_of(jobs, "control")}


FLUX_CONTROL = dataclasses.replace(
    FLUX,
    name="flux-control",
    context_parallel=False,  # split runs of this variant are not tested yet
    tensor_parallel=False,
    pipeline_classes=("FluxControlPipeline",),
    controlnet_pipeline=None,
    build_call_kwargs=_control_call_kwargs,
    input_roles=("control",),
    required_roles=("control",),
    default_guidance_scale=10.0,
)

FLUX_CONTROL_IMG2IMG = dataclasses.replace(
    FLUX_CONTROL,
    name="flux-control-img2img",
    context_parallel=False,  # split runs of this variant are not tested yet
    tensor_parallel=False,
    pipeline_classes=("FluxControlImg2ImgPipeline",),
    build_call_kwargs=with_input_images(_control_call_kwargs, _IMAGE),
    input_roles=("image", "control"),
    required_roles=("image", "control"),
    default_strength=0.6,
)

FLUX_CONTROL_INPAINT = dataclasses.replace(
    FLUX_CONTROL,
    name="flux-control-inpaint",
    context_parallel=False,  # split runs of this variant are not tested yet
    tensor_parallel=False,
    pipeline_classes=("FluxControlInpaintPipeline",),
    build_call_kwargs=with_input_images(_control_call_kwargs, _IMAGE_AND_MASK),
    input_roles=("image", "mask", "control"),
    required_roles=("image", "mask", "control"),
    default_strength=0.6,
)
