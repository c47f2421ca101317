"""JoyImage Edit (``JoyImageEditPipeline``) and JoyImage Edit Plus (``JoyImageEditPlusPipeline``).

JoyImage Edit is an instruction editor: a Qwen3-VL encoder reads the prompt with the input image,
and double-stream blocks denoise Wan-VAE latents beside the input image's
latents. It renders only the ~1 MP sizes of its bucket table: the request's size
is snapped to the bucket of the nearest aspect ratio (so the engine refuses any
other size, naming that bucket), and the input image is resized and center-cropped
to the output's size. diffusers 0.42.1's pipeline encodes that image by sampling
the VAE's latent distribution from torch's process-wide random state, not the
request's generator: the engine seeds that state from the request's seed
(``seeds_process_rng``) and runs each of its jobs alone.
Edit Plus takes one or more reference images and encodes them with the VAE's
latent mode (no sampling). Like Qwen-Image 2.1, its processor
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


def _bucket_size(pipe: DiffusionPipeline) -> tuple[int, int]:
    """The bucket a request without a size would get, as (width, height): 1024x1024 in diffusers 0.42.1."""
    height, width = pipe.vae_image_processor.get_default_height_width(None)
    return width, height


def _bucketed(pipe: DiffusionPipeline, width: int, height: int) -> str | None:
    """Why ``width`` x ``height`` is not rendered as asked: the pipeline's ``vae_image_processor`` snaps
    every size to the bucket of its table with the nearest aspect ratio; ``None`` for a bucket's size."""
    snapped_height, snapped_width = pipe.vae_image_processor.get_default_height_width(None, height, width)
    if (snapped_width, snapped_height) == (width, height):
        return None
    return (
        "JoyImage Edit renders only the sizes of its bucket table (about 1 MP each in diffusers 0.42.1); "
        f"{width}x{height} would be rendered as {snapped_width}x{snapped_height}"
    )


def _decode_edit_latents(pipe: DiffusionPipeline, latents: torch.Tensor, job: JobSpec) -> torch.Tensor:
    """Previews: the step latents are (N, 2, C, 1, h, w), the input image's slot first and the output's
    last; denormalize and decode the output's as the pipeline's final decode does."""
    target = mean_std(pipe, latents[:, -1])
    decoded = pipe.vae.decode(target.to(pipe.vae.dtype), return_dict=False)[0][:, :, 0]
    return (decoded.float() / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1)


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
    decode_latents=_decode_edit_latents,
    uses_negative_prompt=True,
    input_roles=("image",),
    required_roles=("image",),
    default_size=_bucket_size,
    check_size=_bucketed,
    seeds_process_rng=True,
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
    repeated_roles=("image",),
    required_roles=("image",),
)
