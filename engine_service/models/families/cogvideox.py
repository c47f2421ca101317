"""CogVideoX 1.0 / 1.5 text- and image-to-video: one list of blocks, CFG batched into one call.

The VAE compresses 4 frames into one latent frame and 8x spatially; the
transformer packs 2x2 latent patches into one token. The VAE decodes its latent
frames in batches of two after a first odd one: an odd count of latent frames
gives 4k + 1 frames, an even count 4k (13 frames asked, 16 made), so frame counts
are 8k + 1. CogVideoX 1.5 also packs 2 latent frames into a token
(``patch_size_t``): its text- and image-to-video pipelines pad the latent frames
and cut the padding off again, so the same rule holds. Image-to-video checkpoints
with learned positional embeddings (CogVideoX-5b-I2V) only work at their training
size, 720x480. Video-to-video transforms the request's input video
(``input_videos``, CogVideoX 1.0 checkpoints only); CogVideoX-Fun Control follows a
control video (``input_videos`` role ``control``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine_service.errors import ModelLoadError
from engine_service.models.inputs import video_of
from engine_service.models.spec import FamilySpec
from engine_service.models.video import (
    first_frame_batch,
    frames_first,
    kept_steps,
    scaling_factor,
    video_call_kwargs,
    video_preview,
    video_to_video_call_kwargs,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from diffusers import DiffusionPipeline

    from engine_service.jobs import JobSpec

_COMMON = {
    "output_kind": "video",
    "latent_patch": 2,
    "default_width": 720,
    "default_height": 480,
    "default_steps": 50,
    "default_guidance_scale": 6.0,
    "block_lists": ("transformer_blocks",),
    "default_frames": 49,
    "frame_stride": 8,
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


def _no_temporal_patches(pipe: DiffusionPipeline) -> None:
    """Refuses a CogVideoX 1.5 checkpoint for video-to-video and Fun-Control (ModelLoadError): its transformer packs
    ``patch_size_t`` latent frames into a token, and this pipeline, unlike text-to-video, pads none, so
    its latent frames must be even; the VAE decodes an even count of latent frames into 4 frames each
    (85 frames in, 88 out), never the video's frames."""
    patch = pipe.transformer.config.patch_size_t
    if patch is not None and patch > 1:
        raise ModelLoadError(
            f"{type(pipe).__name__} with a CogVideoX 1.5 transformer (patch_size_t={patch}) is not served: it "
            "pads no latent frames, so it needs an even count of them, which the VAE decodes to 3 frames more "
            "than its input video has"
        )


#: Video-to-video: it noises the latents of the request's video by ``strength`` and denoises them. It
#: takes no frame count: it makes one frame per frame of its video, so the output's frames follow the
#: video's, 8k + 1 of them (an even count of latent frames would decode to 3 frames more). Its frames
#: are resized to the request's size. With a list of generators it would encode one video per output
#: (``video[i]``) and fail for a second; with the job's one generator it samples the video's latents
#: once and the noise of every output.
COGVIDEOX_V2V = FamilySpec(
    name="cogvideox-v2v",
    pipeline_classes=("CogVideoXVideoToVideoPipeline",),
    build_call_kwargs=video_to_video_call_kwargs(),
    decode_latents=video_preview(scaling_factor, latents=frames_first, leading_latent_frames=first_frame_batch),
    default_strength=0.8,
    strength_steps=kept_steps,
    video_roles=("video",),
    required_video_roles=("video",),
    frames_from_video="video",
    generator_per_output=False,
    prepare_pipeline=_no_temporal_patches,
    **_COMMON,
)

_video_call_kwargs = video_call_kwargs()


def _fun_control_call_kwargs(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
    """CogVideoX-Fun Control: the request's control video once per output (its latents join each output's
    noise, and with CFG each copy of it); no ``num_frames`` (the control video's frames set it)."""
    kwargs = _video_call_kwargs(pipe, jobs)
    del kwargs["num_frames"]
    kwargs["control_video"] = [video_of(jobs, "control")] * len(kwargs["prompt"])
    return kwargs


#: CogVideoX-Fun Control: the transformer takes a control video's latents (per-frame depth, pose or
#: edges, the VAE's mode) beside the noise's channels, so the output has the control video's frames:
#: 8k + 1 of them, as video-to-video (same VAE), and CogVideoX 1.5 checkpoints fail to load as there.
COGVIDEOX_FUN_CONTROL = FamilySpec(
    name="cogvideox-fun-control",
    pipeline_classes=("CogVideoXFunControlPipeline",),
    build_call_kwargs=_fun_control_call_kwargs,
    decode_latents=video_preview(scaling_factor, latents=frames_first, leading_latent_frames=first_frame_batch),
    video_roles=("control",),
    required_video_roles=("control",),
    frames_from_video="control",
    prepare_pipeline=_no_temporal_patches,
    **_COMMON,
)
