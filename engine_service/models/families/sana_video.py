"""Sana-Video text- and image-to-video (``SanaVideoPipeline``, ``SanaImageToVideoPipeline``).

Linear-attention DiT blocks with cross-attention to a Gemma-2 text encoder, over
the Wan 2.1 VAE (8x spatially, 4 frames per latent frame); the transformer packs
2x2 latent pixels into a token, and the pipeline asks for sizes that are multiples
of 32. Classifier-free guidance batches the negative prompt with the prompt in one
call. The pipeline takes the frame count as ``frames``; it snaps sizes to its
aspect-ratio bins and resizes back, so the output has the requested size. The
image-to-video pipeline keeps the input image's latents as the first latent frame.

Sana-WM (``SanaWMPipeline``) is a camera-controlled world model over the LTX-2 video
VAE: from a first-frame image it renders the video a camera moving along the
request's trajectory would see (``GenerateRequest.camera``: an action string such
as ``"w-80,jw-40,w-40"``, or one camera-to-world pose per frame, with pinhole
intrinsics). Its transformer conditions every block on the trajectory's rays; the
first latent frame stays the input image's. One video per call, with one
generator. diffusers ships its stage-2 refiner (``SanaWMLTX2Refiner``) as a
separate pipeline that the call does not run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from engine_service.errors import excerpt
from engine_service.models.inputs import image_of
from engine_service.models.spec import FamilySpec
from engine_service.models.video import mean_std, video_call_kwargs, video_preview

if TYPE_CHECKING:
    from collections.abc import Sequence

    from diffusers import DiffusionPipeline

    from engine_service.jobs import JobSpec
    from engine_service.models.spec import CallKwargsBuilder

#: The pipeline's own check: width and height are multiples of 32.
_SIZE_MULTIPLE = 32


def _frames_as_frames(build: CallKwargsBuilder) -> CallKwargsBuilder:
    def renamed(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
        kwargs = build(pipe, jobs)
        kwargs["frames"] = kwargs.pop("num_frames")
        return kwargs

    return renamed


def _multiple_of_32(pipe: DiffusionPipeline, width: int, height: int) -> str | None:
    if width % _SIZE_MULTIPLE or height % _SIZE_MULTIPLE:
        return f"Sana-Video renders sizes that are multiples of {_SIZE_MULTIPLE} only, got {width}x{height}"
    return None


def _denormalize(pipe: DiffusionPipeline, latents: torch.Tensor) -> torch.Tensor:
    """The VAE's normalisation undone as the pipeline does: the Wan VAE's per-channel mean and std,
    the LTX-2 VAE's mean and std buffers, none for another VAE."""
    vae = pipe.vae
    if getattr(vae.config, "latents_mean", None) is not None and getattr(vae.config, "z_dim", None):
        return mean_std(pipe, latents)
    if isinstance(getattr(vae, "latents_mean", None), torch.Tensor):
        shape = (1, -1, 1, 1, 1)
        std = vae.latents_std.view(shape).to(latents.device, latents.dtype)
        return latents * std + vae.latents_mean.view(shape).to(latents.device, latents.dtype)
    return latents


def _leading_latent_frames(pipe: DiffusionPipeline, latent_frames: int) -> int:
    """The causal Wan VAE decodes the first frame from the first latent frame; any other VAE from all."""
    return 1 if getattr(pipe.vae.config, "z_dim", None) else latent_frames


_COMMON = {
    "output_kind": "video",
    "latent_patch": 2,
    "default_width": 832,
    "default_height": 480,
    "default_steps": 50,
    "default_guidance_scale": 6.0,
    "block_lists": ("transformer_blocks",),
    "default_frames": 81,
    "frame_stride": 4,
    "uses_negative_prompt": True,
    "check_size": _multiple_of_32,
    "call_defaults": {"max_sequence_length": 300},
}

SANA_VIDEO = FamilySpec(
    name="sana-video",
    pipeline_classes=("SanaVideoPipeline",),
    build_call_kwargs=_frames_as_frames(video_call_kwargs()),
    decode_latents=video_preview(_denormalize, leading_latent_frames=_leading_latent_frames),
    **_COMMON,
)

SANA_VIDEO_I2V = FamilySpec(
    name="sana-video-i2v",
    pipeline_classes=("SanaImageToVideoPipeline",),
    build_call_kwargs=_frames_as_frames(video_call_kwargs(images={"image": "image"})),
    decode_latents=video_preview(_denormalize, frame="last"),
    input_roles=("image",),
    required_roles=("image",),
    **_COMMON,
)

#: The keys an action segment may hold (diffusers' ``cam_utils.ALLOWED_ACTION_KEYS``): w/s forward and
#: back, a/d left and right, i/k pitch up and down, j/l yaw left and right.
ACTION_KEYS = frozenset("wasdijkl")


def action_frames(action: str) -> int:
    """The frames a Sana-WM camera moving along ``action`` covers: the sum of its segments' durations,
    plus the start pose.

    The grammar is diffusers' (``pipelines/sana_wm/cam_utils.py``, ``_parse_action_string``), read
    without rolling the poses out: comma-separated ``<keys>-<frames>`` segments, whitespace dropped and
    a full-width comma taken as a comma; ``<frames>`` is a positive integer, ``<keys>`` any of
    ``wasdijkl`` in any case, ``none`` or nothing. Accepts exactly the strings diffusers accepts.
    Raises ValueError saying what is wrong.
    """
    cleaned = "".join(action.replace("\uff0c", ",").split())
    if not cleaned:
        raise ValueError("is empty; give segments such as 'w-80,jw-40'")
    total = 0
    for segment in cleaned.split(","):
        if not segment or "-" not in segment:
            raise ValueError(f"segment {excerpt(segment)} is not '<keys>-<frames>', e.g. 'w-80'")
        keys, count = segment.rsplit("-", 1)
        try:
            frames = int(count) if count.isdigit() else 0
        except ValueError:  # a digit int() does not read, e.g. a superscript
            frames = 0
        if frames <= 0:
            raise ValueError(f"segment {excerpt(segment)} needs a positive whole number of frames after '-'")
        lowered = keys.lower()
        bad = sorted({key for key in lowered if key not in ACTION_KEYS}) if lowered != "none" else []
        if bad:
            raise ValueError(
                f"segment {excerpt(segment)} holds {excerpt(''.join(bad))}: keys are any of "
                f"{''.join(sorted(ACTION_KEYS))} or 'none'"
            )
        total += frames
    return total + 1


def _wm_call_kwargs(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
    (job,) = jobs  # one job per call (generator_per_output=False), one video (max_outputs=1)
    camera = job.camera
    kwargs: dict[str, Any] = {
        "image": image_of(jobs, "image"),
        "prompt": job.prompt,
        "negative_prompt": job.negative_prompt,
        "width": job.width,
        "height": job.height,
        "num_frames": job.num_frames,
        "fps": job.fps,
        "num_inference_steps": job.num_inference_steps,
        "guidance_scale": job.guidance_scale,
        "intrinsics": list(camera.intrinsics),
    }
    if camera.action:
        kwargs["action"] = camera.action
    else:
        kwargs["c2w"] = np.asarray(camera.c2w, dtype=np.float32).reshape(-1, 4, 4)
    return kwargs


def _wm_decode(pipe: DiffusionPipeline, latents: torch.Tensor) -> torch.Tensor:
    """The pipeline's own decode: the LTX-2 VAE's scaling, mean and std undone, then the VAE."""
    return pipe._decode_latents(latents)


def _read_wm_output(output: Any) -> Any:
    """The pipeline's ``frames`` (F, H, W, 3) as one output: (1, F, H, W, 3)."""
    return output.frames[None]


SANA_WM = FamilySpec(
    name="sana-wm",
    pipeline_classes=("SanaWMPipeline",),
    output_kind="video",
    latent_patch=1,
    default_width=1280,
    default_height=704,
    default_steps=60,
    default_guidance_scale=5.0,
    block_lists=("blocks",),
    build_call_kwargs=_wm_call_kwargs,
    decode_latents=video_preview(lambda pipe, latents: latents, frame="last", decode=_wm_decode),
    default_frames=161,
    frame_stride=8,
    uses_negative_prompt=True,
    input_roles=("image",),
    required_roles=("image",),
    generator_per_output=False,
    max_outputs=1,
    read_output=_read_wm_output,
    camera_actions=action_frames,
    request_call_arguments=("action", "c2w", "intrinsics"),
)
