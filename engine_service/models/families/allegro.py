"""Allegro text-to-video: one list of blocks, CFG batched into one call.

The VAE compresses 4 frames into one latent frame and 8x spatially; the
transformer packs 2x2 latent patches into one token. Any frame count works: the
pipeline rounds the latent frames up and cuts the decoded video to the count
asked for. The VAE decodes only in tiles, so loading switches tiling on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine_service.models.spec import FamilySpec
from engine_service.models.video import frames_second_decode, scaling_factor, video_call_kwargs, video_preview

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline


def _tiled_vae(pipe: DiffusionPipeline) -> None:
    pipe.vae.enable_tiling()


ALLEGRO = FamilySpec(
    name="allegro",
    pipeline_classes=("AllegroPipeline",),
    output_kind="video",
    latent_patch=2,
    default_width=1280,
    default_height=720,
    default_steps=100,
    default_guidance_scale=7.5,
    block_lists=("transformer_blocks",),
    build_call_kwargs=video_call_kwargs(),
    decode_latents=video_preview(scaling_factor, decode=frames_second_decode, leading_latent_frames=None),
    default_frames=88,
    frame_stride=1,
    uses_negative_prompt=True,
    call_defaults={"max_sequence_length": 512, "clean_caption": False},
    prepare_pipeline=_tiled_vae,
)
