"""Kandinsky 6 (``Kandinsky6TI2VAPipeline``, ``Kandinsky6SRPipeline``).

The text/image-to-video-and-audio pipeline denoises a video and its audio track together:
each of its fused visual blocks updates the video and the audio tokens (self-attention,
cross-attention to the prompt, then cross-attention between the two tracks). The cache
carries the audio tokens as the blocks' second stream (``LAYOUT_STREAMS``) and caches
their residual with the video's; the text blocks (one list for each track, refining the
Qwen2.5-VL prompt tokens before the visual blocks) are no part of the stack. As for LTX-2,
the engine returns the video only: the audio track the pipeline decodes (its audio VAE
and vocoder) is dropped. A checkpoint without an audio VAE and vocoder makes the video
alone (``sample_audio=False``), as the pipeline requires.

The prompt template is padded to ``max_sequence_length`` tokens with a text mask, so
a batch's prompts do not change each other's outputs. CFG is a second transformer call on
the negative prompt above guidance 1; a request without one gets the pipeline's default
negative prompt. An optional ``image`` conditions the first frame: the pipeline appends its
latents as an extra, masked latent frame and cuts it off before decoding. The request's
``fps`` is the pipeline's ``frame_rate`` (it sets the audio's length). Previews show the last
frame of the video (decoded from all its latent frames, without the image's).

The super-resolution pipeline upscales an input video without a prompt, tile by tile (see its reason).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine_service.models.families.kandinsky5_video import default_negative
from engine_service.models.spec import FamilySpec
from engine_service.models.video import scaling_factor, video_call_kwargs, video_preview

if TYPE_CHECKING:
    from collections.abc import Sequence

    import torch
    from diffusers import DiffusionPipeline

    from engine_service.jobs import JobSpec

_video_call_kwargs = default_negative(video_call_kwargs(images={"image": "image"}, fps="frame_rate"))


def _ti2va_call_kwargs(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
    """The video call, with the audio track where the pipeline can make it, and the input image once
    per output (the pipeline appends one image latent frame to each video)."""
    kwargs = _video_call_kwargs(pipe, jobs)
    kwargs["sample_audio"] = pipe.audio_vae is not None and pipe.vocoder is not None
    if "image" in kwargs:
        kwargs["image"] = [kwargs["image"]] * len(kwargs["prompt"])
    return kwargs


def _video_latents(pipe: DiffusionPipeline, latents: torch.Tensor, job: JobSpec) -> torch.Tensor:
    """Kandinsky 6's (N, F, h, w, C) step latents as the VAE's (N, C, F, h, w), without the input image's
    latent frame the pipeline appends after the video's."""
    if any(role == "image" for role, _ in job.input_images):
        latents = latents[:, :-1]
    return latents.permute(0, 4, 1, 2, 3)


_COMMON = {
    "output_kind": "video",
    "latent_patch": 2,
    "default_width": 768,
    "default_height": 512,
    "default_guidance_scale": 5.0,
    "block_lists": ("visual_transformer_blocks",),
    "default_frames": 121,
    "frame_stride": 4,
}

KANDINSKY6 = FamilySpec(
    name="kandinsky6",
    pipeline_classes=("Kandinsky6TI2VAPipeline",),
    build_call_kwargs=_ti2va_call_kwargs,
    decode_latents=video_preview(scaling_factor, frame="last", latents=_video_latents),
    default_steps=50,
    uses_negative_prompt=True,
    input_roles=("image",),
    **_COMMON,
)

KANDINSKY6_SR = FamilySpec(
    name="kandinsky6-sr",
    pipeline_classes=("Kandinsky6SRPipeline",),
    build_call_kwargs=video_call_kwargs(negative_prompt=False),
    default_steps=4,
    unsupported_reason=(
        "it upscales an input video without a prompt or guidance scale (its output is the input's size x "
        "resolution_scale, not a requested size), denoising each sample tile by tile: every batch of tiles is a "
        "whole denoising loop with the scheduler's timesteps set anew, a count that follows the input video's "
        "size, and the pipeline takes no callback_on_step_end"
    ),
    **_COMMON,
)
