"""CogVideoX 1.0 / 1.5 text- and image-to-video: one list of blocks, CFG batched into one call.

The VAE compresses 4 frames into one latent frame (frame counts are 4k + 1) and
8x spatially; the transformer packs 2x2 latent patches into one token. CogVideoX
1.5 also packs 2 latent frames into a token (``patch_size_t``): the pipeline pads
the latent frames and cuts the padding off again, so the same frame rule holds.
Image-to-video checkpoints with learned positional embeddings (CogVideoX-5b-I2V)
only work at their training size, 720x480. Video-to-video and CogVideoX-Fun
Control are known but not served: their input is a video (to transform, or a
control video), and a request's inputs are still images.
"""

from __future__ import annotations

from engine_service.models.spec import FamilySpec
from engine_service.models.video import (
    first_frame_batch,
    frames_first,
    scaling_factor,
    video_call_kwargs,
    video_preview,
)

_COMMON = {
    "output_kind": "video",
    "latent_patch": 2,
    "default_width": 720,
    "default_height": 480,
    "default_steps": 50,
    "default_guidance_scale": 6.0,
    "block_lists": ("transformer_blocks",),
    "default_frames": 49,
    "frame_stride": 4,
    "uses_negative_prompt": True,
    "call_defaults": {"max_sequence_length": 226},
}

COGVIDEOX = FamilySpec(
    name="cogvideox",
    pipeline_classes=("CogVideoXPipeline",),
    build_call_kwargs=video_call_kwargs(),
    decode_latents=video_preview(scaling_factor, latents=frames_first, leading_latent_frames=first_frame_batch),
    **_COMMON,
)

#: Image-to-video: the input image is the first frame.
COGVIDEOX_I2V = FamilySpec(
    name="cogvideox-i2v",
    pipeline_classes=("CogVideoXImageToVideoPipeline",),
    build_call_kwargs=video_call_kwargs(images={"image": "image"}),
    decode_latents=video_preview(scaling_factor, frame="last", latents=frames_first),
    input_roles=("image",),
    required_roles=("image",),
    **_COMMON,
)

_VIDEO_INPUT = "while a request's inputs are still images (PNG or JPEG), never a video"

#: Video-to-video: it noises the latents of an input video by ``strength`` and denoises them.
COGVIDEOX_V2V = FamilySpec(
    name="cogvideox-v2v",
    pipeline_classes=("CogVideoXVideoToVideoPipeline",),
    build_call_kwargs=video_call_kwargs(),
    default_strength=0.8,
    unsupported_reason="it transforms an input video (noised by strength and denoised again), " + _VIDEO_INPUT,
    **_COMMON,
)

#: CogVideoX-Fun Control: the transformer takes a control video's latents beside the noise.
COGVIDEOX_FUN_CONTROL = FamilySpec(
    name="cogvideox-fun-control",
    pipeline_classes=("CogVideoXFunControlPipeline",),
    build_call_kwargs=video_call_kwargs(),
    unsupported_reason="its condition is a control video (per-frame depth, pose or edges), " + _VIDEO_INPUT,
    **_COMMON,
)
