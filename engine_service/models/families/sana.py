"""Sana (``SanaPipeline``): linear-attention DiT blocks over a 32x deep-compression autoencoder.

A Gemma-2 text encoder with cross-attention blocks; classifier-free guidance
batches the negative prompt with the prompt in one call. Tokens are latent
pixels (patch size 1), so sizes are multiples of the autoencoder's factor. The
pipeline snaps sizes to its aspect-ratio bins and resizes back, so the output
has the requested size.

Sana Sprint (``SanaSprintPipeline``, ``SanaSprintImg2ImgPipeline``) is the
timestep-distilled Sana (sCM): 1 to 4 steps (2 by default) of the same blocks,
guidance embedded in the transformer (no negative prompt, one transformer call
per step); the image-to-image pipeline takes ``strength`` (0.6 by default).

Perturbed-attention guidance (``SanaPAGPipeline``): the same transformer; each step the
pipeline adds a third batch branch whose self-attention in ``pag_applied_layers``
is replaced by identity, and moves the prediction away from it by ``pag_scale``
(3.0, the pipeline's default; a model may set another in its call defaults).

ControlNet (``SanaControlNetPipeline``) takes one ``control`` image with its
``controlnet_conditioning_scale``; its hints are added after the transformer's blocks,
and the cache stands in for each block and places them once.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from engine_service.models.inputs import control_kwargs, controlnet_count
from engine_service.models.pipeline_calls import (
    decode_vae_latents,
    text_to_image,
    text_to_image_with_negative,
    with_input_images,
)
from engine_service.models.spec import FamilySpec

if TYPE_CHECKING:
    from collections.abc import Sequence

    import torch
    from diffusers import DiffusionPipeline

    from engine_service.jobs import JobSpec

SANA = FamilySpec(
    name="sana",
    pipeline_classes=("SanaPipeline",),
    output_kind="image",
    latent_patch=1,
    default_width=1024,
    default_height=1024,
    default_steps=20,
    default_guidance_scale=4.5,
    block_lists=("transformer_blocks",),
    build_call_kwargs=text_to_image_with_negative,
    decode_latents=decode_vae_latents,
    uses_negative_prompt=True,
    call_defaults={"max_sequence_length": 300},
    controlnet_pipeline="SanaControlNetPipeline",
)


def _controlnet_call_kwargs(pipe, jobs):
    return {**text_to_image_with_negative(pipe, jobs), **control_kwargs(pipe, jobs)}


SANA_CONTROLNET = dataclasses.replace(
    SANA,
    name="sana-controlnet",
    pipeline_classes=("SanaControlNetPipeline",),
    build_call_kwargs=_controlnet_call_kwargs,
    input_roles=("control",),
    required_roles=("control",),
    control_count=controlnet_count,
    controlnet_pipeline=None,
)

SANA_PAG = dataclasses.replace(SANA, name="sana-pag", pipeline_classes=("SanaPAGPipeline",), controlnet_pipeline=None)


def _sprint_kwargs(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
    """Sana Sprint's call: no negative prompt (guidance is embedded, not CFG); its two-step schedule's
    middle timestep (``intermediate_timesteps``) only for 2 steps, where the scheduler accepts it."""
    kwargs = text_to_image(pipe, jobs)
    kwargs["intermediate_timesteps"] = 1.3 if jobs[0].num_inference_steps == 2 else None
    return kwargs


def _decode_sprint_latents(pipe: DiffusionPipeline, latents: torch.Tensor, job: JobSpec) -> torch.Tensor:
    """Sana Sprint's step latents are VAE latents times the scheduler's ``sigma_data``."""
    return decode_vae_latents(pipe, latents / pipe.scheduler.config.sigma_data, job)


_SPRINT = {
    "output_kind": "image",
    "latent_patch": 1,
    "default_width": 1024,
    "default_height": 1024,
    "default_steps": 2,
    "default_guidance_scale": 4.5,
    "block_lists": ("transformer_blocks",),
    "decode_latents": _decode_sprint_latents,
    "call_defaults": {"max_sequence_length": 300},
}

SANA_SPRINT = FamilySpec(
    name="sana-sprint",
    pipeline_classes=("SanaSprintPipeline",),
    build_call_kwargs=_sprint_kwargs,
    **_SPRINT,
)

SANA_SPRINT_IMG2IMG = FamilySpec(
    name="sana-sprint-img2img",
    pipeline_classes=("SanaSprintImg2ImgPipeline",),
    build_call_kwargs=with_input_images(_sprint_kwargs, {"image": "image"}),
    input_roles=("image",),
    required_roles=("image",),
    default_strength=0.6,
    **_SPRINT,
)
