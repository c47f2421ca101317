"""SkyReels-V2 text- and image-to-video: a Wan-style transformer, CFG as a second transformer call.

The Wan VAE compresses 4 frames into one latent frame (frame counts are 4k + 1)
and 8x spatially; the transformer packs 2x2 latent patches into one token.

The diffusion-forcing pipelines (``SkyReelsV2DiffusionForcingPipeline`` and its
image-to-video sibling) give each latent frame its own timestep and its own deep
copy of the scheduler. The engine serves their synchronous mode (``ar_step`` 0, no
``overlap_history`` windows), which it always asks for: every frame then runs the
scheduler's timesteps together, one transformer call (two with CFG) per step, so a
request runs ``num_inference_steps`` steps. The cache counts a step when the copies
step (the pipeline never steps its own scheduler), and progress reports the noisiest
frame's timestep. The asynchronous mode (``ar_step`` > 0: later blocks of frames lag
behind earlier ones, over more iterations than steps, on a window of frames that
moves) and long videos in windows (``overlap_history``: each window a denoising loop
without ``set_timesteps`` between them) are not offered. The video-to-video pipeline
stays refused: it continues an input video.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from engine_service.models.spec import CallKwargsBuilder, FamilySpec
from engine_service.models.video import mean_std, video_call_kwargs, video_preview

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline

    from engine_service.jobs import JobSpec

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


def _synchronous(builder: CallKwargsBuilder) -> CallKwargsBuilder:
    """``builder``'s arguments in diffusion forcing's synchronous mode, whatever the model's call
    defaults say: every latent frame at the same timestep, the whole video in one window."""

    def build(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
        return {**builder(pipe, jobs), "ar_step": 0, "overlap_history": None}

    return build


SKYREELS_V2_DF = FamilySpec(
    name="skyreels-v2-df",
    pipeline_classes=("SkyReelsV2DiffusionForcingPipeline",),
    # The pipeline conditions on the frame rate (16 or another): the request's.
    build_call_kwargs=_synchronous(video_call_kwargs(fps="fps")),
    decode_latents=video_preview(mean_std),
    **_COMMON,
)

#: Image-to-video: the input image's latent frame is kept as the first frame (ready, never denoised).
SKYREELS_V2_DF_I2V = FamilySpec(
    name="skyreels-v2-df-i2v",
    pipeline_classes=("SkyReelsV2DiffusionForcingImageToVideoPipeline",),
    build_call_kwargs=_synchronous(video_call_kwargs(images={"image": "image"}, fps="fps")),
    decode_latents=video_preview(mean_std, frame="last"),
    input_roles=("image",),
    required_roles=("image",),
    **{**_COMMON, "default_guidance_scale": 5.0},
)

SKYREELS_V2_DF_V2V = FamilySpec(
    name="skyreels-v2-df-v2v",
    pipeline_classes=("SkyReelsV2DiffusionForcingVideoToVideoPipeline",),
    build_call_kwargs=video_call_kwargs(),
    unsupported_reason=(
        "it continues an input video: the output is the input video's frames followed by num_frames new ones, "
        "sampled in iterations of base_num_frames, each a whole denoising loop that starts from the last "
        "overlap_history frames (which it requires); requests carry input videos, but no family maps these "
        "loops and the prepended frames, and no tiny case runs it"
    ),
    **_COMMON,
)
