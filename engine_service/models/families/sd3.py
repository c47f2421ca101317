"""Stable Diffusion 3 and 3.5 (``StableDiffusion3Pipeline``): one MMDiT block list.

Three text encoders (two CLIP, one T5). True classifier-free guidance: with a
guidance scale above 1 the pipeline runs the negative prompt (empty when the
request has none) and the prompt as one batch of two per transformer call.
Image-to-image and inpainting (``StableDiffusion3Img2ImgPipeline``,
``StableDiffusion3InpaintPipeline``) add an ``image`` (and a ``mask``, white = repaint)
and the request's ``strength``.

ControlNet (``StableDiffusion3ControlNetPipeline``: an SD3 directory with a
``controlnet`` component, or ``serve --controlnet`` on an SD3 model) takes one
``control`` image per ControlNet, each with its ``controlnet_conditioning_scale``;
the ControlNet's residuals are added to the hidden states after the transformer's
blocks. The pipeline encodes the control image by sampling the VAE's latent
distribution from torch's process-wide random state, so the engine seeds that state
from the request's seed for the call (``seeds_process_rng``) and runs its jobs alone.

ControlNet inpainting (``StableDiffusion3ControlNetInpaintingPipeline``: an SD3 directory
with an inpainting ControlNet) takes the picture to repaint as its ``control`` image and a
``mask`` of its size (white = repaint): the ControlNet reads the masked picture's latents
with the mask, and the image is drawn from noise (no strength). Its latents are sampled from
the process-wide random state too, seeded the same way.

SD 3.5 Large Turbo is served the same way with 4 steps and guidance 0 or 1.

Perturbed-attention guidance (``StableDiffusion3PAGPipeline``,
``StableDiffusion3PAGImg2ImgPipeline``): the same transformer; each step the
pipeline adds a third batch branch whose self-attention in ``pag_applied_layers``
is replaced by identity, and moves the prediction away from it by ``pag_scale``
(3.0, the pipeline's default; a model may set another in its call defaults).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from engine_service.errors import ModelLoadError
from engine_service.models.inputs import control_kwargs, controlnet_count, image_of
from engine_service.models.pipeline_calls import decode_vae_latents, text_to_image_with_negative, with_input_images
from engine_service.models.spec import FamilySpec

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from diffusers import DiffusionPipeline

    from engine_service.jobs import JobSpec

SD3 = FamilySpec(
    name="sd3",
    pipeline_classes=("StableDiffusion3Pipeline",),
    output_kind="image",
    latent_patch=2,
    default_width=1024,
    default_height=1024,
    default_steps=28,
    default_guidance_scale=7.0,
    block_lists=("transformer_blocks",),
    build_call_kwargs=text_to_image_with_negative,
    decode_latents=decode_vae_latents,
    uses_negative_prompt=True,
    call_defaults={"max_sequence_length": 256},
    controlnet_pipeline="StableDiffusion3ControlNetPipeline",
)

SD3_IMG2IMG = dataclasses.replace(
    SD3,
    name="sd3-img2img",
    pipeline_classes=("StableDiffusion3Img2ImgPipeline",),
    build_call_kwargs=with_input_images(text_to_image_with_negative, {"image": "image"}),
    input_roles=("image",),
    required_roles=("image",),
    default_strength=0.6,
    controlnet_pipeline=None,
)

SD3_INPAINT = dataclasses.replace(
    SD3,
    name="sd3-inpaint",
    pipeline_classes=("StableDiffusion3InpaintPipeline",),
    build_call_kwargs=with_input_images(text_to_image_with_negative, {"image": "image", "mask": "mask_image"}),
    input_roles=("image", "mask"),
    required_roles=("image", "mask"),
    default_strength=0.6,
    controlnet_pipeline=None,
)


def _controlnets_with_mask_channels(channels: int) -> Callable[[DiffusionPipeline], None]:
    """Refuses (ModelLoadError) a model whose ControlNets do not read ``channels`` mask channels beside
    the control image's latents (``extra_conditioning_channels``: 1 for an inpainting ControlNet, 0
    otherwise): the pipeline would fail every request on the shape."""

    def check(pipe: DiffusionPipeline) -> None:
        nets = getattr(pipe.controlnet, "nets", None) or [pipe.controlnet]
        for net in nets:
            extra = net.config.get("extra_conditioning_channels", 0)
            if extra != channels:
                kind = "an inpainting ControlNet" if channels else "a ControlNet without a mask input"
                raise ModelLoadError(
                    f"{type(pipe).__name__} takes {kind} (extra_conditioning_channels={channels}); "
                    f"this {type(net).__name__} has extra_conditioning_channels={extra}"
                )

    return check


def _controlnet_call_kwargs(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
    return {**text_to_image_with_negative(pipe, jobs), **control_kwargs(pipe, jobs)}


SD3_CONTROLNET = dataclasses.replace(
    SD3,
    name="sd3-controlnet",
    pipeline_classes=("StableDiffusion3ControlNetPipeline",),
    build_call_kwargs=_controlnet_call_kwargs,
    input_roles=("control",),
    required_roles=("control",),
    control_count=controlnet_count,
    controlnet_pipeline=None,
    prepare_pipeline=_controlnets_with_mask_channels(0),
    seeds_process_rng=True,
)


def _controlnet_inpaint_call_kwargs(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
    return {**_controlnet_call_kwargs(pipe, jobs), "control_mask": image_of(jobs, "mask")}


SD3_CONTROLNET_INPAINT = dataclasses.replace(
    SD3_CONTROLNET,
    name="sd3-controlnet-inpaint",
    pipeline_classes=("StableDiffusion3ControlNetInpaintingPipeline",),
    build_call_kwargs=_controlnet_inpaint_call_kwargs,
    input_roles=("control", "mask"),
    required_roles=("control", "mask"),
    prepare_pipeline=_controlnets_with_mask_channels(1),
)

SD3_PAG = dataclasses.replace(
    SD3, name="sd3-pag", pipeline_classes=("StableDiffusion3PAGPipeline",), controlnet_pipeline=None
)
SD3_PAG_IMG2IMG = dataclasses.replace(
    SD3_IMG2IMG, name="sd3-pag-img2img", pipeline_classes=("StableDiffusion3PAGImg2ImgPipeline",)
)
