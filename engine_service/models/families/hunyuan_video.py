"""HunyuanVideo text-to-video: dual-stream then single-stream blocks, guidance distilled into an embedding.

The VAE compresses 4 frames into one latent frame (frame counts are 4k + 1) and
8x spatially; the transformer packs 2x2 latent patches into one token. ``guidance_scale``
feeds the distilled guidance embedding; the pipeline's true CFG (``true_cfg_scale``
with a negative prompt) is not exposed, as for FLUX.

SkyReels-V1 image-to-video (``HunyuanSkyreelsImageToVideoPipeline``) is a
HunyuanVideo fine-tune that takes the input image's latents beside the noise and
runs true CFG: the request's guidance scale is ``true_cfg_scale``, with the
negative prompt as a second transformer call per step.

HunyuanVideo 1.5 (``HunyuanVideo15Pipeline``) is known but not served: its call
takes no ``callback_on_step_end``, which the engine needs for per-step progress,
cancellation and cache statistics.
"""

from __future__ import annotations

from engine_service.models.spec import FamilySpec
from engine_service.models.video import first_temporal_tile, scaling_factor, video_call_kwargs, video_preview

HUNYUAN_VIDEO = FamilySpec(
    name="hunyuan-video",
    pipeline_classes=("HunyuanVideoPipeline",),
    output_kind="video",
    latent_patch=2,
    default_width=1280,
    default_height=720,
    default_steps=50,
    default_guidance_scale=6.0,
    block_lists=("transformer_blocks", "single_transformer_blocks"),
    build_call_kwargs=video_call_kwargs(negative_prompt=False),
    decode_latents=video_preview(scaling_factor, leading_latent_frames=first_temporal_tile),
    default_frames=129,
    frame_stride=4,
)

HUNYUAN_SKYREELS_I2V = FamilySpec(
    name="hunyuan-skyreels-i2v",
    pipeline_classes=("HunyuanSkyreelsImageToVideoPipeline",),
    output_kind="video",
    latent_patch=2,
    default_width=960,
    default_height=544,
    default_steps=30,
    default_guidance_scale=6.0,
    block_lists=("transformer_blocks", "single_transformer_blocks"),
    build_call_kwargs=video_call_kwargs(images={"image": "image"}, guidance="true_cfg_scale"),
    decode_latents=video_preview(scaling_factor, frame="last"),
    default_frames=97,
    frame_stride=4,
    uses_negative_prompt=True,
    input_roles=("image",),
    required_roles=("image",),
)

HUNYUAN_VIDEO_15 = FamilySpec(
    name="hunyuan-video-1.5",
    pipeline_classes=("HunyuanVideo15Pipeline",),
    output_kind="video",
    latent_patch=2,
    default_width=1280,
    default_height=720,
    default_steps=50,
    default_guidance_scale=6.0,
    block_lists=("transformer_blocks",),
    build_call_kwargs=video_call_kwargs(),
    default_frames=121,
    frame_stride=4,
    uses_negative_prompt=True,
    unsupported_reason=(
        "diffusers 0.42.1's HunyuanVideo15Pipeline takes no callback_on_step_end, which the engine needs "
        "for per-step progress, cancellation and cache statistics"
    ),
)
