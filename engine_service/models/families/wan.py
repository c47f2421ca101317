"""Wan 2.1 / 2.2 video: one list of blocks, CFG as a second transformer call.

The VAE compresses 4 frames into one latent frame (frame counts are 4k + 1) and
8x spatially; the transformer packs 2x2 latent patches into one token.

Wan 2.2 (A14B) uses the same pipeline classes with two experts: ``transformer``
denoises the high-noise steps and ``transformer_2`` the rest (the switch is the
pipeline's ``boundary_ratio``). The cache caches both, each in its own context:
each expert warms up on the first step it runs and compares a step only with its
own previous steps. Wan 2.2 TI2V-5B is one transformer with a 16x VAE (sizes are
multiples of 32, read from the pipeline) and a timestep per token.

Wan-Animate (``WanAnimatePipeline``) animates a reference image after a pose
video and a face video (and, to replace a person, a background video and a mask
video), generated in segments of ``segment_frame_length`` frames, each a whole
denoising loop conditioned on the last frames of the one before. Wan video-to-video (``WanVideoToVideoPipeline``)
transforms the request's input video (``input_videos``); its output has the
video's frames, as does Lucy Edit (``LucyEditPipeline``, a Wan 2.2 TI2V-5B video
editor that conditions every step on the video's latents).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from engine_service.models.inputs import image_of, video_of
from engine_service.models.spec import FamilySpec
from engine_service.models.video import (
    kept_steps,
    mean_std,
    video_call_kwargs,
    video_preview,
    video_to_video_call_kwargs,
)

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import torch
    from diffusers import DiffusionPipeline

    from engine_service.jobs import JobSpec

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

_video_call_kwargs = video_call_kwargs()


def _single_prompt_call_kwargs(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
    """VACE takes one prompt per call (not a list): its jobs run alone, their outputs as videos per prompt."""
    (job,) = jobs
    return {
        **_video_call_kwargs(pipe, jobs),
        "prompt": job.prompt,
        "negative_prompt": job.negative_prompt,
        "num_videos_per_prompt": job.num_outputs,
    }


#: VACE: the transformer adds control hints after each of its ``vace_layers``; the cache keeps its
#: loop and places them (``HINTED_LAYOUTS``). Served as text-to-video: without a control video,
#: mask or reference images the pipeline conditions on its empty control video.
WAN_VACE = FamilySpec(
    name="wan-vace",
    pipeline_classes=("WanVACEPipeline",),
    build_call_kwargs=_single_prompt_call_kwargs,
    decode_latents=video_preview(mean_std),
    generator_per_output=False,
    **_COMMON,
)

#: ``WanAnimatePipeline.__call__``'s defaults: frames per segment, and frames of the previous segment
#: each segment after the first is conditioned on.
_SEGMENT_FRAMES, _PREV_SEGMENT_FRAMES = 77, 1
#: The Wan VAE's temporal compression.
_TEMPORAL = 4


def animate_segments(frames: int, call_defaults: Mapping[str, Any]) -> tuple[int, int]:
    """(segments, frames made) for a pose video of ``frames`` frames, as ``WanAnimatePipeline.__call__``
    plans them: segments of ``segment_frame_length`` frames (made ``4 k + 1`` as the pipeline does:
    ``length // 4 x 4 + 1``), each after the
    first starting on the last ``prev_segment_conditioning_frames`` frames of the one before, as many
    as cover the video (the last one padded by reflecting the videos), cut to the pose video's frames.
    The video needs more frames than the conditioning frames (fewer make no segment): the fewest it
    makes is then that count plus one. Segments of no more new frames than conditioning frames make no
    video the pipeline can finish (it counts one segment too many): 0 frames."""
    segment = int(call_defaults.get("segment_frame_length", _SEGMENT_FRAMES))
    if segment % _TEMPORAL != 1:
        segment = segment // _TEMPORAL * _TEMPORAL + 1
    prev = int(call_defaults.get("prev_segment_conditioning_frames", _PREV_SEGMENT_FRAMES))
    step = segment - prev  # new frames per segment
    if step <= prev:
        return 1, 0
    if frames <= prev:
        return 1, prev + 1
    return math.ceil((frames - prev) / step), frames


def _animate_call_kwargs(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
    """Wan-Animate: the reference image, the pose and face videos and, to replace the person of a
    background video, that video and its mask video (``mode="replace"``). The server cut every video to
    the pose video's ``num_frames``; the pipeline makes as many frames as its pose video has."""
    kwargs = _video_call_kwargs(pipe, jobs)
    del kwargs["num_frames"]
    kwargs["image"] = image_of(jobs, "image")
    kwargs["pose_video"] = video_of(jobs, "pose")
    kwargs["face_video"] = video_of(jobs, "face")
    background, mask = video_of(jobs, "background"), video_of(jobs, "mask")
    kwargs["mode"] = "replace" if background is not None else "animate"
    if background is not None:
        kwargs["background_video"], kwargs["mask_video"] = background, mask
    return kwargs


def _segment_latents(pipe: DiffusionPipeline, latents: torch.Tensor, job: JobSpec) -> torch.Tensor:
    """A segment's step latents (N, C, 1 + F, h, w) without their first latent frame, the reference image's
    slot, which the pipeline drops before decoding."""
    return latents[:, :, 1:]


def _animate_video_roles(roles: Sequence[str]) -> str | None:
    """Replace mode needs the background video and its mask video together."""
    if ("background" in roles) != ("mask" in roles):
        given, missing = ("background", "mask") if "background" in roles else ("mask", "background")
        return (
            f"a {given} video needs a {missing} video: wan-animate replaces the person masked in the mask video "
            "of the background video (send both), or animates the reference image alone (send neither)"
        )
    return None


#: Wan-Animate: the reference image (``image``) moves as the person of the ``pose`` video (its body pose,
#: e.g. rendered skeletons) with the expressions of the ``face`` video (face crops, read by the
#: transformer's motion encoder); with a ``background`` video and a ``mask`` video (white where the person
#: is) it replaces that person in the background video instead. The output has the pose video's frames,
#: made in segments of ``segment_frame_length`` frames, each a whole denoising loop of the request's
#: steps conditioned on the last ``prev_segment_conditioning_frames`` frames of the one before: progress
#: counts steps x segments, and each segment is a run of the cache. The face adapter adds its output after
#: every ``inject_face_latents_blocks``-th block (a hint the cache places). A preview shows the last frame of
#: the segment being sampled.
WAN_ANIMATE = FamilySpec(
    name="wan-animate",
    pipeline_classes=("WanAnimatePipeline",),
    build_call_kwargs=_animate_call_kwargs,
    decode_latents=video_preview(mean_std, frame="last", latents=_segment_latents),
    input_roles=("image",),
    required_roles=("image",),
    video_roles=("pose", "face", "background", "mask"),
    required_video_roles=("pose", "face"),
    frames_from_video="pose",
    aligned_video_roles=("face", "background", "mask"),
    check_video_roles=_animate_video_roles,
    denoising_loops=animate_segments,
    request_call_arguments=("pose_video", "face_video", "background_video", "mask_video", "mode"),
    **{
        **_COMMON,
        "default_width": 1280,
        "default_height": 720,
        "default_steps": 20,
        "default_guidance_scale": 1.0,
        # Any count above the conditioning frames: the segments are cut to the pose video's frames.
        "default_frames": _SEGMENT_FRAMES,
        "frame_stride": 1,
        "min_frames": _PREV_SEGMENT_FRAMES + 1,
    },
)

#: Video-to-video: it noises the latents of the request's video by ``strength`` and denoises them. It
#: takes no frame count: it makes one frame per frame of its video (the VAE keeps 4k + 1 of them), so
#: the output's frames follow the video's. Its frames are resized to the request's size. The VAE
#: encodes the video by its mode (no sampling): the output depends on the request's seed alone.
WAN_V2V = FamilySpec(
    name="wan-v2v",
    pipeline_classes=("WanVideoToVideoPipeline",),
    build_call_kwargs=video_to_video_call_kwargs(),
    decode_latents=video_preview(mean_std),
    default_strength=0.8,
    strength_steps=kept_steps,
    video_roles=("video",),
    required_video_roles=("video",),
    frames_from_video="video",
    **_COMMON,
)


def _lucy_call_kwargs(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
    """Lucy Edit: the request's video once per output (its latents, the condition, must have the noise's
    batch: the pipeline compares their shapes). ``num_frames`` is the video's; the pipeline makes the
    video's frames whatever it is told."""
    kwargs = _video_call_kwargs(pipe, jobs)
    kwargs["video"] = [video_of(jobs, "video")] * len(kwargs["prompt"])
    return kwargs


#: Lucy Edit (Decart): a Wan 2.2 TI2V-5B transformer (a timestep per token) that edits an input video
#: after the prompt: the video's latents (the VAE's mode) join the noise's channels at every step, so
#: the output has the video's frames; there is no strength. Previews show the first frame.
LUCY_EDIT = FamilySpec(
    name="lucy-edit",
    pipeline_classes=("LucyEditPipeline",),
    build_call_kwargs=_lucy_call_kwargs,
    decode_latents=video_preview(mean_std),
    video_roles=("video",),
    required_video_roles=("video",),
    frames_from_video="video",
    **_COMMON,
)
