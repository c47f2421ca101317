"""HunyuanImage 2.1 text-to-image (``HunyuanImagePipeline``): double- then single-stream blocks.

Two text encoders (Qwen2.5-VL for the prompt, ByT5 for quoted text to render).
CFG is run by the pipeline's guiders (adaptive projected guidance) as separate
transformer calls; the request's guidance scale becomes the guiders' scale. A
guidance-distilled checkpoint (no guiders) takes it as ``distilled_guidance_scale``.
Sizes are multiples of twice the VAE's compression (32x for the released VAE).

The refiner (``HunyuanImageRefinerPipeline``) redraws an input image after the
prompt: a guidance-distilled transformer (the request's guidance scale is its
``distilled_guidance_scale``, 3.25 by default) over the latents beside the input
image's latents (noised by a fixed 0.25), 4 steps by default, with a 16x refiner
VAE whose two latent frames per image are packed as one frame of twice the
channels (one latent pixel per token).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine_service.models.pipeline_calls import negative_prompts, prompts, with_input_images
from engine_service.models.spec import FamilySpec

if TYPE_CHECKING:
    from collections.abc import Sequence

    import torch
    from diffusers import DiffusionPipeline

    from engine_service.jobs import JobSpec


def _call_kwargs(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
    first = jobs[0]  # the batch key makes size, steps and guidance equal for every job
    guidance = first.guidance_scale
    # The guiders carry the CFG scale in their configuration; every call sets it from its request.
    for name in ("guider", "ocr_guider"):
        guider = getattr(pipe, name, None)
        if guider is not None and guider.guidance_scale != guidance:
            setattr(pipe, name, guider.new(guidance_scale=guidance))
    distilled = guidance if pipe.transformer.config.guidance_embeds else None
    return {
        "prompt": prompts(jobs),
        "negative_prompt": negative_prompts(jobs),
        "width": first.width,
        "height": first.height,
        "num_inference_steps": first.num_inference_steps,
        "distilled_guidance_scale": distilled,
        "num_images_per_prompt": 1,
    }


HUNYUANIMAGE = FamilySpec(
    name="hunyuanimage",
    pipeline_classes=("HunyuanImagePipeline",),
    output_kind="image",
    latent_patch=2,
    default_width=2048,
    default_height=2048,
    default_steps=50,
    default_guidance_scale=3.5,
    block_lists=("transformer_blocks", "single_transformer_blocks"),
    build_call_kwargs=_call_kwargs,
    uses_negative_prompt=True,
)


def _decode_refiner_latents(pipe: DiffusionPipeline, latents: torch.Tensor, job: JobSpec) -> torch.Tensor:
    """Previews for the refiner: unscale, unpack the two latent frames from the channels, decode the image."""
    scaled = latents.to(pipe.vae.dtype) / pipe.vae.config.scaling_factor
    decoded = pipe.vae.decode(pipe._restore_image_tokens_order(scaled), return_dict=False)[0].squeeze(2)
    return (decoded / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1)


HUNYUANIMAGE_REFINER = FamilySpec(
    name="hunyuanimage-refiner",
    pipeline_classes=("HunyuanImageRefinerPipeline",),
    output_kind="image",
    latent_patch=1,
    default_width=1024,
    default_height=1024,
    default_steps=4,
    default_guidance_scale=3.25,
    block_lists=("transformer_blocks", "single_transformer_blocks"),
    build_call_kwargs=with_input_images(_call_kwargs, {"image": "image"}, strength=False),
    decode_latents=_decode_refiner_latents,
    uses_negative_prompt=True,
    input_roles=("image",),
    required_roles=("image",),
)
