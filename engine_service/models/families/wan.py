"""Wan 2.1 / 2.2 video: one list of blocks, CFG as a second transformer call.

The VAE compresses 4 frames into one latent frame (frame counts are 4k + 1) and
8x spatially; the transformer packs 2x2 latent patches into one token.

Wan 2.2 (A14B) uses the same pipeline classes with two experts: ``transformer``
denoises the high-noise steps and ``transformer_2`` the rest (the switch is the
pipeline's ``boundary_ratio``). The cache caches both, each in its own context:
each expert warms up on the first step it runs and compares a step only with its
own previous steps. Wan 2.2 TI2V-5B is one transformer with a 16x VAE (sizes are
multiples of 32, read from the pipeline) and a timestep per token.
"""

from __future__ import annotations

from engine_service.models.spec import FamilySpec
from engine_service.models.video import mean_std, video_call_kwargs, video_preview

_COMMON = {
    "output_kind": "video",
    "latent_patch": 2,
    "default_width": 832,
    "default_height": 480,
    "default_steps": 50,
    "default_guidance_scale": 5.0,
    "block_lists": ("blocks",),
    "default_frames": 81,
    "frame_stride": 4,
    "uses_negative_prompt": True,
    "call_defaults": {"max_sequence_length": 512},
}

WAN = FamilySpec(
    name="wan",
    pipeline_classes=("WanPipeline",),
    build_call_kwargs=video_call_kwargs(),
    decode_latents=video_preview(mean_std),
    context_parallel=True,
    tensor_parallel=True,
    **_COMMON,
)

#: Image-to-video: the input image is the first frame (Wan 2.1 I2V also embeds it with CLIP vision).
WAN_I2V = FamilySpec(
    name="wan-i2v",
    pipeline_classes=("WanImageToVideoPipeline",),
    build_call_kwargs=video_call_kwargs(images={"image": "image"}),
    decode_latents=video_preview(mean_std, frame="last"),
    input_roles=("image",),
    required_roles=("image",),
    context_parallel=True,
    tensor_parallel=True,
    **_COMMON,
)

WAN_VACE = FamilySpec(
    name="wan-vace",
    pipeline_classes=("WanVACEPipeline",),
    build_call_kwargs=video_call_kwargs(),
    unsupported_reason=(
        "the VACE transformer adds control hints to the hidden states between its blocks (after each "
        "of its vace_layers); the block cache stands in for the whole block list and cannot place them"
    ),
    **_COMMON,
)
