"""Nucleus-MoE Image (``NucleusMoEImagePipeline``): one list of single-stream blocks, some with
expert-choice Mixture-of-Experts feed-forwards.

Image tokens attend to themselves and to the prompt's tokens (a Qwen3-VL text
backbone's hidden states, ``return_index`` layers from the top). The Qwen-Image
VAE (8x) with 2x2 latent patches per token. Classifier-free guidance runs the
negative prompt as a second transformer call and rescales the guided prediction
to the norm of the conditional one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from engine_service.models.pipeline_calls import text_to_image_with_negative
from engine_service.models.spec import FamilySpec

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline

    from engine_service.jobs import JobSpec

#: Latent pixels per token side.
_PATCH = 2


def _decode_latents(pipe: DiffusionPipeline, latents: torch.Tensor, job: JobSpec) -> torch.Tensor:
    """Previews: unpack the 2x2-packed tokens, undo the VAE's per-channel normalisation, decode the one frame."""
    unpacked = pipe._unpack_latents(latents, job.height, job.width, _PATCH, pipe.vae_scale_factor).to(pipe.vae.dtype)
    config = pipe.vae.config
    shape = (1, config.z_dim, 1, 1, 1)
    mean = torch.tensor(config.latents_mean, dtype=unpacked.dtype).view(shape)
    std = torch.tensor(config.latents_std, dtype=unpacked.dtype).view(shape)
    decoded = pipe.vae.decode(unpacked * std + mean, return_dict=False)[0][:, :, 0]
    return (decoded / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1)


NUCLEUSMOE_IMAGE = FamilySpec(
    name="nucleusmoe-image",
    pipeline_classes=("NucleusMoEImagePipeline",),
    output_kind="image",
    latent_patch=_PATCH,
    default_width=1024,
    default_height=1024,
    default_steps=50,
    default_guidance_scale=4.0,
    block_lists=("transformer_blocks",),
    build_call_kwargs=text_to_image_with_negative,
    decode_latents=_decode_latents,
    uses_negative_prompt=True,
)
