"""LongCat-Video: known, not served: diffusers 0.42.1 has no LongCat-Video pipeline."""

from __future__ import annotations

from engine_service.models.spec import FamilySpec
from engine_service.models.video import video_call_kwargs

LONGCAT_VIDEO = FamilySpec(
    name="longcat-video",
    pipeline_classes=("LongCatVideoPipeline",),
    output_kind="video",
    latent_patch=2,
    default_width=832,
    default_height=480,
    default_steps=50,
    default_guidance_scale=4.0,
    block_lists=("blocks",),
    build_call_kwargs=video_call_kwargs(),
    default_frames=93,
    frame_stride=4,
    uses_negative_prompt=True,
    unsupported_reason="diffusers 0.42.1 has no LongCat-Video pipeline (only LongCat-Image and LongCat-AudioDiT)",
)
