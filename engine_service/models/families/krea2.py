"""Krea 2 text-to-image (``Krea2Pipeline``): one list of single-stream blocks over text and image tokens.

The text conditioning is a stack of hidden states tapped from several layers of a
Qwen3-VL encoder, fused by the transformer's own text blocks before its main list
(``transformer_blocks``, the one the cache works on). Latents are Qwen-Image VAE
latents (8x, 16 channels) packed into 2x2 patches: sizes are multiples of 16. CFG
runs the negative prompt as a second transformer call for any guidance scale above
0 (0 runs none). The distilled (turbo) checkpoints take few steps without guidance:
serve them with a ``ditserve.json`` such as ``{"steps": 8, "guidance_scale": 0.0}``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from engine_service.models.pipeline_calls import text_to_image_with_negative
from engine_service.models.spec import FamilySpec

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline

    from engine_service.jobs import JobSpec


def _decode_latents(pipe: DiffusionPipeline, latents: torch.Tensor, job: JobSpec) -> torch.Tensor:
    unpacked = pipe._unpack_latents(latents, job.height, job.width).to(pipe.vae.dtype)
    config = pipe.vae.config
    shape = (1, config.z_dim, 1, 1, 1)
    mean = torch.tensor(config.latents_mean).view(shape).to(unpacked)
    std = torch.tensor(config.latents_std).view(shape).to(unpacked)
    decoded = pipe.vae.decode(unpacked * std + mean, return_dict=False)[0][:, :, 0]
    return (decoded / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1)


KREA2 = FamilySpec(
    name="krea2",
    pipeline_classes=("Krea2Pipeline",),
    output_kind="image",
    latent_patch=2,
    default_width=1024,
    default_height=1024,
    default_steps=28,
    default_guidance_scale=4.5,
    block_lists=("transformer_blocks",),
    build_call_kwargs=text_to_image_with_negative,
    decode_latents=_decode_latents,
    uses_negative_prompt=True,
    call_defaults={"max_sequence_length": 512},
)
