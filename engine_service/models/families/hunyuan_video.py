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

HunyuanVideo 1.5 (``HunyuanVideo15Pipeline``, ``HunyuanVideo15ImageToVideoPipeline``) is
a new architecture: one list of blocks over a 16x VAE (4 frames per latent frame), one
latent pixel per token, a Qwen2.5-VL and a ByT5 (for quoted text) text encoder. Its
call takes no ``callback_on_step_end``: the engine follows its steps through the
scheduler's ``step``. CFG is run by the pipeline's guider as separate transformer
calls; the request's guidance scale becomes the guider's scale. The image-to-video
pipeline takes no width or height: it snaps the input image's aspect ratio to the
resolution buckets of the transformer's ``target_size`` and crops the image to that
bucket. The engine crops the input image to the request's size first, and refuses
sizes that are not a bucket, so the video has the size asked for; the default size
is the checkpoint's 16:9 bucket. diffusers 0.42.1's
HunyuanVideo 1.5 VAE cannot decode more than one video at once (its causal attention
mask does not broadcast over the batch), so the engine has it decode one at a time.

FramePack (``HunyuanVideoFramepackPipeline``) animates an input image (and optionally
towards a last image) in sections of ``latent_window_size`` latent frames, each a whole
denoising loop with the scheduler's timesteps set anew, conditioned on the sections
before it and on SigLIP features of the image. The engine follows every loop
(``FamilySpec.denoising_loops``): ``n`` sections make ``4 window n + 1`` frames, and only
those counts are served. It serves no previews: a section is decoded after the image's
latent frame and the sections before it (the causal VAE's context, which the step's
latents do not hold), so no frame of the video can be decoded from them alone.
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING, Any

import torch
from diffusers.models.autoencoders.vae import DecoderOutput

from engine_service.models.inputs import image_of
from engine_service.models.spec import FamilySpec
from engine_service.models.video import first_temporal_tile, scaling_factor, video_call_kwargs, video_preview

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from diffusers import DiffusionPipeline

    from engine_service.jobs import JobSpec
    from engine_service.models.spec import CallKwargsBuilder

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


def guided(build: CallKwargsBuilder) -> CallKwargsBuilder:
    """``build``'s keyword arguments for a pipeline whose guider runs CFG: the request's guidance
    scale goes to the guider (its scale lives in its configuration), not to the call."""

    def with_guider_scale(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
        kwargs = build(pipe, jobs)
        guidance = kwargs.pop("guidance_scale")
        if pipe.guider.guidance_scale != guidance:
            pipe.guider = pipe.guider.new(guidance_scale=guidance)
        return kwargs

    return with_guider_scale


_HUNYUAN_15_I2V_KWARGS = guided(video_call_kwargs(images={"image": "image"}))


def _hunyuan_15_i2v_kwargs(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
    kwargs = _HUNYUAN_15_I2V_KWARGS(pipe, jobs)
    width, height = kwargs.pop("width"), kwargs.pop("height")
    # The pipeline picks the bucket nearest the image's aspect ratio: cropped to the request's size
    # (a bucket, see _hunyuan_15_bucket), the image picks exactly that one.
    kwargs["image"] = pipe.video_processor.resize(image_of(jobs, "image"), height, width, resize_mode="crop")
    return kwargs


def _decode_one_video_at_a_time(pipe: DiffusionPipeline) -> None:
    """Make ``pipe.vae.decode`` decode a batch of latents (N, C, F, h, w) video by video.

    diffusers 0.42.1's ``AutoencoderKLHunyuanVideo15`` builds its causal attention mask as
    (N, L, L) against (N, 1, L, C) queries, which does not broadcast for N > 1. Each video
    decodes independently of the others, so decoding them one by one gives what a working
    batched decode would.
    """
    vae = pipe.vae
    decode = vae.decode

    @functools.wraps(decode)
    def decode_each(z: torch.Tensor, return_dict: bool = True, **kwargs: Any):
        if z.shape[0] == 1:
            return decode(z, return_dict=return_dict, **kwargs)
        videos = torch.cat([decode(z[i : i + 1], return_dict=False, **kwargs)[0] for i in range(z.shape[0])])
        return DecoderOutput(sample=videos) if return_dict else (videos,)

    vae.decode = decode_each


def _hunyuan_15_default_bucket(pipe: DiffusionPipeline) -> tuple[int, int]:
    """The bucket of the 16:9 videos the text-to-video pipeline makes by default, as (width, height):
    848x480 for the 480p checkpoints."""
    height, width = pipe.video_processor.calculate_default_height_width(9, 16, pipe.target_size)
    return width, height


def _hunyuan_15_bucket(pipe: DiffusionPipeline, width: int, height: int) -> str | None:
    bucket_height, bucket_width = pipe.video_processor.calculate_default_height_width(height, width, pipe.target_size)
    if (bucket_width, bucket_height) == (width, height):
        return None
    return (
        f"HunyuanVideo 1.5 image-to-video renders the resolution buckets of its target size {pipe.target_size} "
        f"only; the nearest to {width}x{height} is {bucket_width}x{bucket_height}"
    )


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
    latent_patch=1,
    default_width=848,
    default_height=480,
    default_steps=50,
    default_guidance_scale=6.0,
    block_lists=("transformer_blocks",),
    build_call_kwargs=guided(video_call_kwargs()),
    decode_latents=video_preview(scaling_factor),
    default_frames=121,
    frame_stride=4,
    uses_negative_prompt=True,
    prepare_pipeline=_decode_one_video_at_a_time,
    step_end_callback=False,
)

HUNYUAN_VIDEO_15_I2V = FamilySpec(
    name="hunyuan-video-1.5-i2v",
    pipeline_classes=("HunyuanVideo15ImageToVideoPipeline",),
    output_kind="video",
    latent_patch=1,
    default_width=848,
    default_height=480,
    default_steps=50,
    default_guidance_scale=6.0,
    block_lists=("transformer_blocks",),
    build_call_kwargs=_hunyuan_15_i2v_kwargs,
    decode_latents=video_preview(scaling_factor, frame="last"),
    default_frames=121,
    frame_stride=4,
    uses_negative_prompt=True,
    input_roles=("image",),
    required_roles=("image",),
    default_size=_hunyuan_15_default_bucket,
    check_size=_hunyuan_15_bucket,
    prepare_pipeline=_decode_one_video_at_a_time,
    step_end_callback=False,
)

#: FramePack's temporal compression: ``k`` latent frames decode to ``4 (k - 1) + 1`` frames.
_FRAMEPACK_TEMPORAL = 4
#: ``HunyuanVideoFramepackPipeline.__call__``'s default ``latent_window_size``.
_FRAMEPACK_WINDOW = 9


def framepack_sections(frames: int, call_defaults: Mapping[str, Any]) -> tuple[int, int]:
    """(sections, frames made) for ``frames`` asked for. Each section denoises ``window`` latent frames
    (``latent_window_size``) and adds ``4 window`` frames to the video, which starts with the input image's
    frame: ``n`` sections make ``4 window n + 1`` frames."""
    window = int(call_defaults.get("latent_window_size", _FRAMEPACK_WINDOW))
    sections = max(1, math.ceil((frames - 1) / (_FRAMEPACK_TEMPORAL * window)))
    return sections, _FRAMEPACK_TEMPORAL * window * sections + 1


def _framepack_kwargs(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
    """The pipeline counts sections as ``ceil(num_frames / (4 (window - 1) + 1))``, a window shorter than
    the ``4 window`` frames a section adds, so it is asked for ``n (4 window - 3)`` frames: exactly ``n``
    sections, which make the request's ``4 window n + 1``."""
    kwargs = _framepack_base(pipe, jobs)
    loops = jobs[0].denoising_loops
    kwargs["num_frames"] = jobs[0].num_frames - (_FRAMEPACK_TEMPORAL - 1) * loops - 1
    return kwargs


_framepack_base = video_call_kwargs(images={"image": "image", "last_image": "last_image"})

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
    build_call_kwargs=_framepack_kwargs,
    # What the pipeline's own default (129) makes: 4 sections of 9 latent frames.
    default_frames=145,
    frame_stride=_FRAMEPACK_TEMPORAL,
    input_roles=("image", "last_image"),
    required_roles=("image",),
    denoising_loops=framepack_sections,
)
