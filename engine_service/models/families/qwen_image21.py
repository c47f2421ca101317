"""Qwen-Image 2.1 (``QwenImage21Pipeline``): text-to-image and image-conditioned generation.

One list of single-stream blocks (``transformer_blocks``) over one joint sequence:
the Qwen3-VL encoder's text tokens, the condition images' latent tokens in the
vision slots the encoder reserved for them, then the target image's tokens
(unpatched 16x VAE latents, sizes in multiples of 32 pixels). Attention is
block-causal and text and condition tokens are modulated at ``t = 0``, so the
pipeline keeps their keys and values after the first step and every later step
runs the target image's tokens only (``use_kv_cache``, on by default): the block
input shrinks after step 0, and the cache computes that step and stores again
rather than reuse a residual of the old shape.

The request's ``guidance_scale`` is the true CFG scale (``true_cfg_scale``): above 1
a second transformer call per step runs the negative prompt (an empty one becomes
``" "``); the model is meant to be sampled without (1.0, the default). Condition
images are optional (role ``image``, any number, in order); the pipeline resizes
each to about ``output_resolution``² pixels (1024² by default) for the encoder and
the VAE. The released VAE decodes RGBA; the engine returns the image composited
over white. Like the Qwen-Image editors, its processor (``Qwen3VLProcessor``) comes with a
video processor that transformers builds only with torchvision installed; without it
the processor loads image-only (``vl_processors``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from engine_service.models.inputs import images_of
from engine_service.models.pipeline_calls import prompts
from engine_service.models.spec import FamilySpec

if TYPE_CHECKING:
    from collections.abc import Sequence

    from diffusers import DiffusionPipeline

    from engine_service.jobs import JobSpec


def _call_kwargs(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
    first = jobs[0]  # the batch key makes size, steps and guidance equal for every job
    # Without a negative prompt the pipeline skips CFG whatever the scale.
    negatives = [job.negative_prompt or " " for job in jobs for _ in range(job.num_outputs)]
    return {
        "prompt": prompts(jobs),
        "negative_prompt": negatives if first.guidance_scale > 1.0 else None,
        "true_cfg_scale": first.guidance_scale,
        "image": images_of(jobs, "image") or None,
        "width": first.width,
        "height": first.height,
        "num_inference_steps": first.num_inference_steps,
        "num_images_per_prompt": 1,
    }


def _decode_latents(pipe: DiffusionPipeline, latents: torch.Tensor, job: JobSpec) -> torch.Tensor:
    unpacked = pipe._unpack_latents(latents, job.height, job.width, pipe.vae_scale_factor).to(pipe.vae.dtype)
    config = pipe.vae.config
    shape = (1, config.z_dim, 1, 1, 1)
    mean = torch.tensor(config.latents_mean).view(shape).to(unpacked)
    std = torch.tensor(config.latents_std).view(shape).to(unpacked)
    decoded = pipe.vae.decode(unpacked * std + mean, return_dict=False)[0][:, :, 0]
    pixels = (decoded / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1)
    if pixels.shape[-1] == 4:  # RGBA: over white, as the engine returns the final image
        rgb, alpha = pixels[..., :3], pixels[..., 3:]
        pixels = rgb * alpha + (1.0 - alpha)
    return pixels


QWEN_IMAGE_21 = FamilySpec(
    name="qwen-image-2.1",
    pipeline_classes=("QwenImage21Pipeline",),
    output_kind="image",
    latent_patch=2,  # one token is 16x16 pixels, and sizes are multiples of two tokens
    default_width=1024,
    default_height=1024,
    default_steps=40,
    default_guidance_scale=1.0,
    block_lists=("transformer_blocks",),
    build_call_kwargs=_call_kwargs,
    decode_latents=_decode_latents,
    uses_negative_prompt=True,
    input_roles=("image",),
    repeated_roles=("image",),
)
