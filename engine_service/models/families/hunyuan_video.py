"""HunyuanVideo text-to-video: dual-stream then single-stream blocks, guidance distilled into an embedding.

The VAE compresses 4 frames into one latent frame (frame counts are 4k + 1) and
8x spatially; the transformer packs 2x2 latent patches into one token. ``guidance_scale``
feeds the distilled guidance embedding; the pipeline's true CFG (``true_cfg_scale``
with a negative prompt) is not exposed, as for FLUX.

SkyReels-V1 image-to-video (``HunyuanSkyreelsImageToVideoPipeline``) is a
HunyuanVideo fine-tune that takes the input image's latents beside the noise and
runs true CFG: the request's guidance scale is ``true_cfg_scale``, with the
negative prompt as a second transformer call per step.

HunyuanVideo-I2V (``HunyuanVideoImageToVideoPipeline``) encodes the prompt with a
Llava (Llama plus a CLIP vision tower that sees the input image). Checkpoints whose
transformer takes the image latents beside the noise (``image_condition_type``
``"latent_concat"``) drop the first 4 frames of the decoded video, so they are asked
for 4 more than the request's count; ``"token_replace"`` checkpoints keep the image
latents as the first latent frame. ``guidance_scale`` feeds the guidance embedding
where the transformer has one (diffusers' default for this pipeline is 1.0); where it
has none, it is the true CFG scale (``true_cfg_scale``): above 1 the negative prompt
runs as a second transformer call per step. A checkpoint with the embedding ignores
the negative prompt.

HunyuanVideo 1.5 (``HunyuanVideo15Pipeline``) is known but not served: its call
takes no ``callback_on_step_end``, which the engine needs for per-step progress,
cancellation and cache statistics.

FramePack (``HunyuanVideoFramepackPipeline``) is known but not served: it samples
the video in sections, each a whole denoising loop with the scheduler's timesteps
set anew, while the engine follows one loop of ``num_inference_steps`` per request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine_service.models.spec import FamilySpec
from engine_service.models.video import first_temporal_tile, scaling_factor, video_call_kwargs, video_preview

if TYPE_CHECKING:
    from collections.abc import Sequence

    from diffusers import DiffusionPipeline

    from engine_service.jobs import JobSpec

_IMAGE_TO_VIDEO_KWARGS = video_call_kwargs(negative_prompt=False, images={"image": "image"})
#: Frames a "latent_concat" HunyuanVideo-I2V checkpoint cuts off the front of its video.
_LATENT_CONCAT_DROPPED_FRAMES = 4


def _image_to_video_kwargs(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
    kwargs = _IMAGE_TO_VIDEO_KWARGS(pipe, jobs)
    if not pipe.transformer.config.guidance_embeds:
        # No embedding would take the scale (the pipeline drops it): it is true CFG's, on the negative prompt.
        kwargs["true_cfg_scale"] = kwargs.pop("guidance_scale")
        kwargs["negative_prompt"] = [job.negative_prompt for job in jobs for _ in range(job.num_outputs)]
    if pipe.transformer.config.image_condition_type == "latent_concat":
        kwargs["num_frames"] += _LATENT_CONCAT_DROPPED_FRAMES
    return kwargs


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

HUNYUAN_VIDEO_I2V = FamilySpec(
    name="hunyuan-video-i2v",
    pipeline_classes=("HunyuanVideoImageToVideoPipeline",),
    output_kind="video",
    latent_patch=2,
    default_width=1280,
    default_height=720,
    default_steps=50,
    default_guidance_scale=1.0,
    block_lists=("transformer_blocks", "single_transformer_blocks"),
    build_call_kwargs=_image_to_video_kwargs,
    decode_latents=video_preview(scaling_factor, frame="last"),
    default_frames=129,
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

HUNYUAN_VIDEO_FRAMEPACK = FamilySpec(
    name="hunyuan-video-framepack",
    pipeline_classes=("HunyuanVideoFramepackPipeline",),
    output_kind="video",
    latent_patch=2,
    default_width=1280,
    default_height=720,
    default_steps=50,
    default_guidance_scale=6.0,
    block_lists=("transformer_blocks", "single_transformer_blocks"),
    build_call_kwargs=video_call_kwargs(images={"image": "image", "last_image": "last_image"}),
    default_frames=129,
    frame_stride=4,
    input_roles=("image", "last_image"),
    required_roles=("image",),
    unsupported_reason=(
        "FramePack samples the video in sections (a latent window each, next to a history of the sections "
        "before it), each a whole denoising loop of num_inference_steps with the scheduler's timesteps set "
        "anew, and decodes every section as it goes; the engine follows one denoising loop per request "
        "(progress, cancellation, the cache's warmup and step counts, previews), which would restart every section"
    ),
)
