"""Sana-Video text- and image-to-video (``SanaVideoPipeline``, ``SanaImageToVideoPipeline``).

Linear-attention DiT blocks with cross-attention to a Gemma-2 text encoder, over
the Wan 2.1 VAE (8x spatially, 4 frames per latent frame); the transformer packs
2x2 latent pixels into a token, and the pipeline asks for sizes that are multiples
of 32. Classifier-free guidance batches the negative prompt with the prompt in one
call. The pipeline takes the frame count as ``frames``; it snaps sizes to its
aspect-ratio bins and resizes back, so the output has the requested size. The
image-to-video pipeline keeps the input image's latents as the first latent frame.

Sana-WM (``SanaWMPipeline``, a world model over the LTX-2 video VAE) is known but
not served: it follows a camera trajectory (camera-to-world poses and intrinsics,
or action strings) besides the first-frame image, and a request cannot carry one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from engine_service.models.spec import FamilySpec
from engine_service.models.video import mean_std, video_call_kwargs, video_preview

if TYPE_CHECKING:
    from collections.abc import Sequence

    from diffusers import DiffusionPipeline

    from engine_service.jobs import JobSpec
    from engine_service.models.spec import CallKwargsBuilder

#: The pipeline's own check: width and height are multiples of 32.
_SIZE_MULTIPLE = 32


def _frames_as_frames(build: CallKwargsBuilder) -> CallKwargsBuilder:
    def renamed(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
        kwargs = build(pipe, jobs)
        kwargs["frames"] = kwargs.pop("num_frames")
        return kwargs

    return renamed


def _multiple_of_32(pipe: DiffusionPipeline, width: int, height: int) -> str | None:
    if width % _SIZE_MULTIPLE or height % _SIZE_MULTIPLE:
        return f"Sana-Video renders sizes that are multiples of {_SIZE_MULTIPLE} only, got {width}x{height}"
    return None


def _denormalize(pipe: DiffusionPipeline, latents: torch.Tensor) -> torch.Tensor:
    """The VAE's normalisation undone as the pipeline does: the Wan VAE's per-channel mean and std,
    the LTX-2 VAE's mean and std buffers, none for another VAE."""
    vae = pipe.vae
    if getattr(vae.config, "latents_mean", None) is not None and getattr(vae.config, "z_dim", None):
        return mean_std(pipe, latents)
    if isinstance(getattr(vae, "latents_mean", None), torch.Tensor):
        shape = (1, -1, 1, 1, 1)
        std = vae.latents_std.view(shape).to(latents.device, latents.dtype)
        return latents * std + vae.latents_mean.view(shape).to(latents.device, latents.dtype)
    return latents


def _leading_latent_frames(pipe: DiffusionPipeline, latent_frames: int) -> int:
    """The causal Wan VAE decodes the first frame from the first latent frame; any other VAE from all."""
    return 1 if getattr(pipe.vae.config, "z_dim", None) else latent_frames


_COMMON = {
    "output_kind": "video",
    "latent_patch": 2,
    "default_width": 832,
    "default_height": 480,
    "default_steps": 50,
    "default_guidance_scale": 6.0,
    "block_lists": ("transformer_blocks",),
    "default_frames": 81,
    "frame_stride": 4,
    "uses_negative_prompt": True,
    "check_size": _multiple_of_32,
    "call_defaults": {"max_sequence_length": 300},
}

SANA_VIDEO = FamilySpec(
    name="sana-video",
    pipeline_classes=("SanaVideoPipeline",),
    build_call_kwargs=_frames_as_frames(video_call_kwargs()),
    decode_latents=video_preview(_denormalize, leading_latent_frames=_leading_latent_frames),
    **_COMMON,
)

SANA_VIDEO_I2V = FamilySpec(
    name="sana-video-i2v",
    pipeline_classes=("SanaImageToVideoPipeline",),
    build_call_kwargs=_frames_as_frames(video_call_kwargs(images={"image": "image"})),
    decode_latents=video_preview(_denormalize, frame="last"),
    input_roles=("image",),
    required_roles=("image",),
    **_COMMON,
)

SANA_WM = FamilySpec(
    name="sana-wm",
    pipeline_classes=("SanaWMPipeline",),
    output_kind="video",
    latent_patch=1,
    default_width=1280,
    default_height=704,
    default_steps=60,
    default_guidance_scale=5.0,
    block_lists=("blocks",),
    build_call_kwargs=video_call_kwargs(images={"image": "image"}, fps="fps"),
    default_frames=161,
    frame_stride=8,
    uses_negative_prompt=True,
    input_roles=("image",),
    required_roles=("image",),
    unsupported_reason=(
        "it moves the camera along a trajectory that every call must give (camera-to-world poses with "
        "intrinsics, or action strings, per frame) besides the first-frame image, and a request cannot carry one"
    ),
)
