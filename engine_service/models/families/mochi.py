"""Mochi 1 text-to-video: one list of blocks, CFG batched into one call.

The VAE compresses 6 frames into one latent frame (frame counts are 6k + 1) and
8x spatially; the transformer packs 2x2 latent patches into one token.
"""

from __future__ import annotations

from engine_service.models.spec import FamilySpec
from engine_service.models.video import mochi_mean_std, video_call_kwargs, video_preview

MOCHI = FamilySpec(
    name="mochi",
    pipeline_classes=("MochiPipeline",),
    output_kind="video",
    latent_patch=2,
    default_width=848,
    default_height=480,
    default_steps=64,
    default_guidance_scale=4.5,
    block_lists=("transformer_blocks",),
    build_call_kwargs=video_call_kwargs(),
    decode_latents=video_preview(mochi_mean_std),
    default_frames=19,
    frame_stride=6,
    uses_negative_prompt=True,
    call_defaults={"max_sequence_length": 256},
)
