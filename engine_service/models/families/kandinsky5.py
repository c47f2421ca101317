"""Kandinsky 5 image: text-to-image (``Kandinsky5T2IPipeline``) and image editing (``Kandinsky5I2IPipeline``).

A Qwen2.5-VL encodes the prompt into text tokens (the editor shows it the input image too,
at half its size) and CLIP into a pooled embedding. The transformer's two text blocks refine
the text tokens once per step, then its visual blocks (self-attention over the image tokens,
cross-attention to the text) denoise 8x latents in 2x2 patches; only the visual blocks cache.
CFG is a second transformer call on the negative prompt above guidance 1.

Both pipelines render only the sizes of their ``resolutions`` list (seven of about one
megapixel): any other size is snapped to the listed one of the nearest aspect ratio, so the
engine refuses it and names that size. The editor takes no ``strength``: its transformer is
conditioned on the input image's latents (``visual_cond``) and denoises from pure noise.

The pipeline pads a batch's prompts to the longest and the transformer attends to that
padding (it takes no text mask), so an output would depend on the other prompts of its
call: each job runs alone (``generator_per_output=False``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine_service.models.inputs import image_of
from engine_service.models.pipeline_calls import text_to_image_with_negative
from engine_service.models.spec import FamilySpec

if TYPE_CHECKING:
    from collections.abc import Sequence

    import torch
    from diffusers import DiffusionPipeline

    from engine_service.jobs import JobSpec


def first_resolution(pipe: DiffusionPipeline) -> tuple[int, int]:
    """The first of the pipeline's resolutions, as (width, height): 1024x1024 for the released models."""
    return tuple(pipe.resolutions[0])


def listed_resolution(pipe: DiffusionPipeline, width: int, height: int) -> str | None:
    """Why ``width`` x ``height`` is not rendered as asked (it is not one of ``pipe.resolutions``), or ``None``."""
    listed = [tuple(size) for size in pipe.resolutions]
    if (width, height) in listed:
        return None
    # The pipeline's own rule: the listed size whose aspect ratio is nearest.
    snapped = min(listed, key=lambda size: abs(size[0] / size[1] - width / height))
    sizes = ", ".join(f"{w}x{h}" for w, h in listed)
    return (
        f"Kandinsky 5 image pipelines render only the sizes {sizes}; "
        f"{width}x{height} would be rendered as {snapped[0]}x{snapped[1]}"
    )


def decode_channels_last(pipe: DiffusionPipeline, latents: torch.Tensor, job: JobSpec) -> torch.Tensor:
    """Previews from Kandinsky 5 image latents (N, 1, h, w, C), or (N, 1, h, w, 2C + 1) for the editor
    (its input image's latents and mask ride along): the first C channels, unscaled and decoded as the
    pipeline's final decode does. Images in [0, 1], (N, H, W, 3)."""
    channels = pipe.transformer.config.in_visual_dim
    vae_latents = latents[:, 0, :, :, :channels].permute(0, 3, 1, 2) / pipe.vae.config.scaling_factor
    decoded = pipe.vae.decode(vae_latents.to(pipe.vae.dtype), return_dict=False)[0]
    return (decoded / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1)


def read_image(output: Any) -> Any:
    """The pipelines return their images as ``image`` (diffusers' ``KandinskyImagePipelineOutput``), not ``images``."""
    return output.image


def _edit_call_kwargs(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
    """The editor encodes one input image per prompt (and per negative prompt): one copy each."""
    kwargs = text_to_image_with_negative(pipe, jobs)
    kwargs["image"] = [image_of(jobs, "image")] * len(kwargs["prompt"])
    return kwargs


_COMMON: dict[str, Any] = {
    "output_kind": "image",
    "latent_patch": 2,
    "default_width": 1024,
    "default_height": 1024,
    "default_steps": 50,
    "default_guidance_scale": 3.5,
    "block_lists": ("visual_transformer_blocks",),
    "decode_latents": decode_channels_last,
    "uses_negative_prompt": True,
    "default_size": first_resolution,
    "check_size": listed_resolution,
    "generator_per_output": False,
    "read_output": read_image,
}

KANDINSKY5_IMAGE = FamilySpec(
    name="kandinsky5-image",
    pipeline_classes=("Kandinsky5T2IPipeline",),
    build_call_kwargs=text_to_image_with_negative,
    **_COMMON,
)

KANDINSKY5_I2I = FamilySpec(
    name="kandinsky5-i2i",
    pipeline_classes=("Kandinsky5I2IPipeline",),
    build_call_kwargs=_edit_call_kwargs,
    input_roles=("image",),
    required_roles=("image",),
    **_COMMON,
)
