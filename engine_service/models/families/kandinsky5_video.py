"""Kandinsky 5 video: text-to-video (``Kandinsky5T2VPipeline``) and image-to-video (``Kandinsky5I2VPipeline``).

The transformer of Kandinsky 5 image (see ``kandinsky5``): Qwen2.5-VL text tokens refined by
two text blocks, a CLIP pooled embedding, and visual blocks (the ones cached) over
HunyuanVideo VAE latents (8x spatially, 4 frames per latent frame) in 2x2 patches. The
pipelines keep their latents channels last, (N, F, h, w, C), with the image-to-video
condition (the input image's latents and a mask) in further channels. CFG is a second
transformer call on the negative prompt above guidance 1; a request without one gets the
pipeline's default negative prompt.

Image-to-video puts the input image's latents in the first latent frame and denoises the
others. Before decoding, the pipeline renormalises the first four latent frames to the
statistics of the next ones: with fewer than 5 latent frames (17 video frames) nothing
follows them and the video decodes to NaN (one frame fails outright), so the engine
refuses fewer than 17 frames. Previews show the last frame, decoded as the pipeline
decodes, renormalisation included.

The pipeline pads a batch's prompts to the longest and the transformer attends to that
padding (it takes no text mask), so each job runs alone (``generator_per_output=False``).

The 10-second checkpoints (``attention_type="nabla"``) attend through a flex-attention block
mask over 8x8-token tiles: they need the ``flex`` attention backend and sizes that are
multiples of 128, which this entry does not check.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine_service.models.spec import FamilySpec
from engine_service.models.video import first_temporal_tile, scaling_factor, video_call_kwargs, video_preview

if TYPE_CHECKING:
    from collections.abc import Sequence

    import torch
    from diffusers import DiffusionPipeline

    from engine_service.jobs import JobSpec
    from engine_service.models.spec import CallKwargsBuilder


def channels_last(pipe: DiffusionPipeline, latents: torch.Tensor, job: JobSpec) -> torch.Tensor:
    """Kandinsky's (N, F, h, w, C...) step latents as the VAE's (N, C, F, h, w), without the condition channels."""
    return latents[..., : pipe.transformer.config.in_visual_dim].permute(0, 4, 1, 2, 3)


def renormalised_channels_last(pipe: DiffusionPipeline, latents: torch.Tensor, job: JobSpec) -> torch.Tensor:
    """:func:`channels_last` after the image-to-video pipeline's ``normalize_first_frame``, as it decodes them."""
    video = pipe.normalize_first_frame(latents[..., : pipe.transformer.config.in_visual_dim])
    return video.permute(0, 4, 1, 2, 3)


def default_negative(build: CallKwargsBuilder) -> CallKwargsBuilder:
    """``build``, leaving out the negative prompt when no job sends one: the pipeline then uses its own."""

    def call_kwargs(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
        kwargs = build(pipe, jobs)
        if not any(kwargs["negative_prompt"]):
            del kwargs["negative_prompt"]
        return kwargs

    return call_kwargs


_COMMON: dict[str, Any] = {
    "output_kind": "video",
    "latent_patch": 2,
    "default_width": 768,
    "default_height": 512,
    "default_steps": 50,
    "default_guidance_scale": 5.0,
    "block_lists": ("visual_transformer_blocks",),
    "default_frames": 121,
    "frame_stride": 4,
    "uses_negative_prompt": True,
    "generator_per_output": False,
}

KANDINSKY5_VIDEO = FamilySpec(
    name="kandinsky5-video",
    pipeline_classes=("Kandinsky5T2VPipeline",),
    build_call_kwargs=default_negative(video_call_kwargs()),
    decode_latents=video_preview(scaling_factor, latents=channels_last, leading_latent_frames=first_temporal_tile),
    **_COMMON,
)

KANDINSKY5_I2V = FamilySpec(
    name="kandinsky5-i2v",
    pipeline_classes=("Kandinsky5I2VPipeline",),
    build_call_kwargs=default_negative(video_call_kwargs(images={"image": "image"})),
    decode_latents=video_preview(scaling_factor, frame="last", latents=renormalised_channels_last),
    input_roles=("image",),
    required_roles=("image",),
    min_frames=17,
    **_COMMON,
)
