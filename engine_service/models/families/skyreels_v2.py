"""SkyReels-V2 text- and image-to-video: a Wan-style transformer, CFG as a second transformer call.

The Wan VAE compresses 4 frames into one latent frame (frame counts are 4k + 1)
and 8x spatially; the transformer packs 2x2 latent patches into one token.

The diffusion-forcing pipelines (``SkyReelsV2DiffusionForcing*Pipeline``) are
known but not served: they denoise latent frames at different noise levels, each
with its own copy of the scheduler, while the cache counts steps on the
pipeline's scheduler.
"""

from __future__ import annotations

from engine_service.models.spec import FamilySpec
from engine_service.models.video import mean_std, video_call_kwargs, video_preview

_COMMON = {
    "output_kind": "video",
    "latent_patch": 2,
    "default_width": 960,
    "default_height": 544,
    "default_steps": 50,
    "default_guidance_scale": 6.0,
    "block_lists": ("blocks",),
    "default_frames": 97,
    "frame_stride": 4,
    "uses_negative_prompt": True,
    "call_defaults": {"max_sequence_length": 512},
}

SKYREELS_V2 = FamilySpec(
    name="skyreels-v2",
    pipeline_classes=("SkyReelsV2Pipeline",),
    build_call_kwargs=video_call_kwargs(),
    decode_latents=video_preview(mean_std),
    **_COMMON,
)

#: Image-to-video: the input image is the first frame, also embedded with CLIP vision.
SKYREELS_V2_I2V = FamilySpec(
    name="skyreels-v2-i2v",
    pipeline_classes=("SkyReelsV2ImageToVideoPipeline",),
    build_call_kwargs=video_call_kwargs(images={"image": "image"}),
    decode_latents=video_preview(mean_std, frame="last"),
    input_roles=("image",),
    required_roles=("image",),
    **_COMMON,
)

SKYREELS_V2_DF = FamilySpec(
    name="skyreels-v2-df",
    pipeline_classes=(
        "SkyReelsV2DiffusionForcingPipeline",
        "SkyReelsV2DiffusionForcingImageToVideoPipeline",
        "SkyReelsV2DiffusionForcingVideoToVideoPipeline",
    ),
    build_call_kwargs=video_call_kwargs(),
    unsupported_reason=(
        "diffusion forcing denoises latent frames at different noise levels, each with its own copy of the "
        "scheduler; the cache counts steps on the pipeline's scheduler"
    ),
    **_COMMON,
)
