"""EasyAnimate text-to-video and image-to-video (``EasyAnimatePipeline``, ``EasyAnimateInpaintPipeline``).

A MMDiT-style transformer over the MagVIT VAE (8x spatially, 4 frames per latent
frame) with 2x2 latent patches per token; a Qwen2-VL (or, for older checkpoints,
a BERT) text encoder; classifier-free guidance batched into one call.

The inpainting pipeline is how EasyAnimate does image-to-video: it takes a video
and a per-frame mask (255 = generate, 0 = keep). The engine sends the input image
as the first frame of a still video and a mask that keeps that frame only, as
EasyAnimate's own image-to-video helper does. The noise the pipeline adds to the kept
frame draws from one generator, so these requests run alone. Inpainting a whole input video, the
pipeline's ``strength`` and ControlNet-like control videos
(``EasyAnimateControlPipeline``) are not exposed: the engine's inputs are images (and
diffusers 0.42.1's control pipeline fails on every call).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from engine_service.models.inputs import image_of
from engine_service.models.spec import FamilySpec
from engine_service.models.video import scaling_factor, video_call_kwargs, video_preview

if TYPE_CHECKING:
    from collections.abc import Sequence

    from diffusers import DiffusionPipeline

    from engine_service.jobs import JobSpec

_TEXT_TO_VIDEO_KWARGS = video_call_kwargs()
#: The inpainting mask's values: regenerate the pixel, keep it.
_GENERATE, _KEEP = 255.0, 0.0


def _text_to_video_kwargs(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
    kwargs = _TEXT_TO_VIDEO_KWARGS(pipe, jobs)
    kwargs["num_images_per_prompt"] = kwargs.pop("num_videos_per_prompt")  # EasyAnimate's name for it
    return kwargs


def _image_to_video_kwargs(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
    """The image as every frame of a still video in [0, 1] (N, 3, F, H, W), and a mask
    (N, 1, F, H, W) that keeps the first frame and generates the others; N = one per output
    (the pipeline takes its batch size from the video)."""
    kwargs = _text_to_video_kwargs(pipe, jobs)
    width, height, frames = kwargs["width"], kwargs["height"], kwargs["num_frames"]
    outputs = len(kwargs["prompt"])
    image = image_of(jobs, "image").convert("RGB").resize((width, height))
    still = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
    kwargs["video"] = still[None, :, None].expand(outputs, 3, frames, height, width).contiguous()
    mask = torch.full((outputs, 1, frames, height, width), _GENERATE)
    mask[:, :, 0] = _KEEP
    kwargs["mask_video"] = mask
    return kwargs


_COMMON = {
    "output_kind": "video",
    "latent_patch": 2,
    "default_width": 512,
    "default_height": 512,
    "default_steps": 50,
    "default_guidance_scale": 5.0,
    "block_lists": ("transformer_blocks",),
    "default_frames": 49,
    "frame_stride": 4,
    "uses_negative_prompt": True,
}

EASYANIMATE = FamilySpec(
    name="easyanimate",
    pipeline_classes=("EasyAnimatePipeline",),
    build_call_kwargs=_text_to_video_kwargs,
    decode_latents=video_preview(scaling_factor),
    **_COMMON,
)

EASYANIMATE_I2V = FamilySpec(
    name="easyanimate-i2v",
    pipeline_classes=("EasyAnimateInpaintPipeline",),
    build_call_kwargs=_image_to_video_kwargs,
    decode_latents=video_preview(scaling_factor, frame="last"),
    input_roles=("image",),
    required_roles=("image",),
    # The noise it adds to the kept frame's latents draws from one generator, not one per output.
    generator_per_output=False,
    **_COMMON,
)

EASYANIMATE_CONTROL = FamilySpec(
    name="easyanimate-control",
    pipeline_classes=("EasyAnimateControlPipeline",),
    build_call_kwargs=_text_to_video_kwargs,
    unsupported_reason=(
        "diffusers 0.42.1's pipeline fails on every call (its __call__ passes encode_prompt a "
        "text_encoder_index argument it does not take)"
    ),
    **_COMMON,
)
