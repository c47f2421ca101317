"""JoyImage Edit (``JoyImageEditPipeline``): known, not served; JoyImage Edit Plus (``JoyImageEditPlusPipeline``).

JoyImage Edit is an instruction editor: a Qwen3-VL encoder reads the prompt with the input image,
and double-stream blocks denoise Wan-VAE latents beside the input image's
latents. diffusers 0.42.1's pipeline encodes that image by sampling the VAE's
latent distribution from the process-wide random state, not the request's
generator, so the same request and seed would give a different image each time.
Edit Plus takes one or more reference images and encodes them with the VAE's
latent mode (no sampling), so it is served. Like Qwen-Image 2.1, its processor
(``Qwen3VLProcessor``) comes with a video processor that transformers builds only
with torchvision installed; without it the processor loads image-only
(``vl_processors``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine_service.models.inputs import images_of
from engine_service.models.pipeline_calls import (
    negative_prompts,
    text_to_image,
    text_to_image_with_negative,
    with_input_images,
)
from engine_service.models.spec import FamilySpec
from engine_service.models.video import mean_std

if TYPE_CHECKING:
    from collections.abc import Sequence

    import torch
    from diffusers import DiffusionPipeline

    from engine_service.jobs import JobSpec

JOYIMAGE_EDIT = FamilySpec(
    name="joyimage-edit",
    pipeline_classes=("JoyImageEditPipeline",),
    output_kind="image",
    latent_patch=2,
    default_width=1024,
    default_height=1024,
    default_steps=40,
    default_guidance_scale=4.0,
    block_lists=("double_blocks",),
    build_call_kwargs=with_input_images(text_to_image_with_negative, {"image": "image"}, strength=False),
    uses_negative_prompt=True,
    input_roles=("image",),
    required_roles=("image",),
    unsupported_reason=(
        "diffusers 0.42.1's pipeline encodes the input image by sampling the VAE's latent distribution from the "
        "process-wide random state, not the request's generator: the same request and seed give a different image "
        "each time"
    ),
)


def _edit_plus_call_kwargs(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
    """Prompt, size, steps and guidance with the request's ``image`` inputs as every output's references.

    The pipeline takes one reference list per prompt and no ``num_images_per_prompt``; without a negative
    prompt it guides against a blank one (``" "``), as it does itself."""
    kwargs = text_to_image(pipe, jobs)
    del kwargs["num_images_per_prompt"]
    references = images_of(jobs, "image")
    return {
        **kwargs,
        "negative_prompt": [negative or " " for negative in negative_prompts(jobs)],
        "images": [references] * len(kwargs["prompt"]),
    }


def _decode_edit_plus_latents(pipe: DiffusionPipeline, latents: torch.Tensor, job: JobSpec) -> torch.Tensor:
    """Previews: the step latents are (N, patches, C, pt, ph, pw) with the output's patches first and the
    references' after them; unpatchify the output's as the pipeline does before its VAE decode."""
    pt, ph, pw = pipe.transformer.config.patch_size
    scale = pipe.vae_scale_factor_spatial
    rows, columns = job.height // scale // ph, job.width // scale // pw
    channels = latents.shape[2]
    target = latents[:, : rows * columns].reshape(-1, rows, columns, channels, pt, ph, pw)
    video = target.permute(0, 3, 4, 1, 5, 2, 6).reshape(-1, channels, pt, rows * ph, columns * pw)
    decoded = pipe.vae.decode(mean_std(pipe, video).to(pipe.vae.dtype), return_dict=False)[0][:, :, 0]
    return (decoded.float() / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1)


#: JoyImage Edit Plus: one or more reference images (role ``image``, in order). The pipeline resizes each to the
#: ~1 MP bucket of its aspect and encodes it with the VAE's latent mode (no sampling: the same request and seed
#: give the same image); the output is drawn at the request's size beside the references' latents.
JOYIMAGE_EDIT_PLUS = FamilySpec(
    name="joyimage-edit-plus",
    pipeline_classes=("JoyImageEditPlusPipeline",),
    output_kind="image",
    latent_patch=2,
    default_width=1024,
    default_height=1024,
    default_steps=30,
    default_guidance_scale=4.0,
    block_lists=("double_blocks",),
    build_call_kwargs=_edit_plus_call_kwargs,
    decode_latents=_decode_edit_plus_latents,
    uses_negative_prompt=True,
    input_roles=("image",),
    required_roles=("image",),
)
