"""Kandinsky 6 (``Kandinsky6TI2VAPipeline``, ``Kandinsky6SRPipeline``).

The text/image-to-video-and-audio pipeline denoises a video and its audio track together:
each of its fused visual blocks updates the video and the audio tokens (self-attention,
cross-attention to the prompt, then cross-attention between the two tracks). The cache
carries the audio tokens as the blocks' second stream (``LAYOUT_STREAMS``) and caches
their residual with the video's; the text blocks (one list for each track, refining the
Qwen2.5-VL prompt tokens before the visual blocks) are no part of the stack. As for LTX-2,
the engine returns the video only: the audio track the pipeline decodes (its audio VAE
and vocoder) is dropped. A checkpoint without an audio VAE and vocoder makes the video
alone (``sample_audio=False``), as the pipeline requires.

The prompt template is padded to ``max_sequence_length`` tokens with a text mask, so
a batch's prompts do not change each other's outputs. CFG is a second transformer call on
the negative prompt above guidance 1; a request without one gets the pipeline's default
negative prompt. An optional ``image`` conditions the first frame: the pipeline appends its
latents as an extra, masked latent frame and cuts it off before decoding. The request's
``fps`` is the pipeline's ``frame_rate`` (it sets the audio's length). Previews show the last
frame of the video (decoded from all its latent frames, without the image's).

The super-resolution pipeline (``Kandinsky6SRPipeline``) upscales an input video (role ``video``) by
``resolution_scale`` (2, 2.25 or 4; a model call default, 2.25 by default) without a prompt or guidance
scale: a request must leave both unset, and its size follows the video (``FamilySpec.size_from_video``).
It refines overlapping spatial tiles of the video, each batch of ``tiles_batch_size`` tiles of each output
a whole denoising loop with the scheduler's timesteps set anew, so the loop count follows the video's size
and is known once the video decodes. It takes no ``callback_on_step_end``: the engine follows its steps
through the scheduler's ``step``, counted from 0 again at each ``set_timesteps``. No previews (a step's
latents are one batch of tiles).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from diffusers.pipelines.kandinsky6.pipeline_kandinsky6_sr import _tile_positions

from engine_service.models.families.kandinsky5_video import default_negative
from engine_service.models.inputs import video_of
from engine_service.models.spec import FamilySpec
from engine_service.models.video import scaling_factor, video_call_kwargs, video_preview

if TYPE_CHECKING:
    from collections.abc import Sequence

    import torch
    from diffusers import DiffusionPipeline

    from engine_service.jobs import JobSpec

_video_call_kwargs = default_negative(video_call_kwargs(images={"image": "image"}, fps="frame_rate"))


def _ti2va_call_kwargs(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
    """The video call, with the audio track where the pipeline can make it, and the input image once
    per output (the pipeline appends one image latent frame to each video)."""
    kwargs = _video_call_kwargs(pipe, jobs)
    kwargs["sample_audio"] = pipe.audio_vae is not None and pipe.vocoder is not None
    if "image" in kwargs:
        kwargs["image"] = [kwargs["image"]] * len(kwargs["prompt"])
    return kwargs


def _video_latents(pipe: DiffusionPipeline, latents: torch.Tensor, job: JobSpec) -> torch.Tensor:
    """Kandinsky 6's (N, F, h, w, C) step latents as the VAE's (N, C, F, h, w), without the input image's
    latent frame the pipeline appends after the video's."""
    if any(role == "image" for role, _ in job.input_images):
        latents = latents[:, :-1]
    return latents.permute(0, 4, 1, 2, 3)


_COMMON = {
    "output_kind": "video",
    "latent_patch": 2,
    "default_width": 768,
    "default_height": 512,
    "default_guidance_scale": 5.0,
    "block_lists": ("visual_transformer_blocks",),
    "default_frames": 121,
    "frame_stride": 4,
}

KANDINSKY6 = FamilySpec(
    name="kandinsky6",
    pipeline_classes=("Kandinsky6TI2VAPipeline",),
    build_call_kwargs=_ti2va_call_kwargs,
    decode_latents=video_preview(scaling_factor, frame="last", latents=_video_latents),
    default_steps=50,
    uses_negative_prompt=True,
    input_roles=("image",),
    **_COMMON,
)

#: The upscales the super-resolution pipeline makes (its ``check_inputs``).
SR_SCALES = (2, 2.25, 4)


def _upscale_plan(pipe: DiffusionPipeline, width: int, height: int, defaults: Mapping[str, Any]) -> tuple | str:
    """(width, height, denoising loops per output) the super-resolution pipeline runs for a ``width`` x
    ``height`` video, or why it cannot take that video; its ``__call__`` step by step.

    The video processor resizes the video down to multiples of the VAE's spatial factor; the 2.25x route
    first scales that by 1.125 (rounded to the factor) and then runs the 2x one. Tiles of the trained tile
    size closest to the video's aspect (``transformer.config.tile_sizes``), divided by the tiling scale,
    cover the video with at least ``min_overlap`` of a tile between neighbours (diffusers'
    ``_tile_positions``); each batch of ``tiles_batch_size`` of them is one loop. The output is the tiled
    size times the tiling scale.
    """
    scale, overlap, per_call = defaults["resolution_scale"], defaults["min_overlap"], defaults["tiles_batch_size"]
    if isinstance(scale, bool) or not isinstance(scale, int | float) or scale not in SR_SCALES:
        return f"the model's resolution_scale {scale!r} is none of {', '.join(map(str, SR_SCALES))}"
    if isinstance(per_call, bool) or not isinstance(per_call, int) or per_call < 1:
        return f"the model's tiles_batch_size {per_call!r} is no positive whole number"
    if isinstance(overlap, bool) or not isinstance(overlap, int | float) or not 0 <= overlap < 1:
        return f"the model's min_overlap {overlap!r} is no fraction of a tile in [0, 1)"
    snap = pipe.vae_scale_factor_spatial
    tiling, grow = (2, 1.125) if scale == 2.25 else (int(scale), 1.0)
    rows, cols = height - height % snap, width - width % snap
    if grow != 1.0:
        rows, cols = round(rows * grow / snap) * snap, round(cols * grow / snap) * snap
    sizes = pipe.transformer_tile_sizes
    if rows and cols:
        sizes = [min(sizes, key=lambda hw: abs(hw[1] / hw[0] - cols / rows))]
    (tile_rows, tile_cols), *_ = sorted(sizes, key=lambda hw: hw[0] * hw[1])
    if tile_rows % (snap * tiling) or tile_cols % (snap * tiling):
        return (
            f"the model's {tile_cols}x{tile_rows} tiles do not align with its latent grid at resolution_scale {scale}"
        )
    tile_rows, tile_cols = tile_rows // tiling, tile_cols // tiling
    if rows < tile_rows or cols < tile_cols:
        route = " after the pipeline's 1.125x pre-upscale" if grow != 1.0 else ""
        return (
            f"is {width}x{height}: smaller than one {tile_cols}x{tile_rows} tile of the pipeline{route} at "
            f"resolution_scale {scale}; send a larger video"
        )
    tiles = len(_tile_positions(rows, tile_rows, overlap, snap)) * len(_tile_positions(cols, tile_cols, overlap, snap))
    return cols * tiling, rows * tiling, math.ceil(tiles / per_call)


def _sr_call_kwargs(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
    """The super-resolution call: the request's video once per output (its frames, cut to 4k + 1), and its
    steps; no prompt, guidance or size."""
    (job,) = jobs  # a request with an input video runs alone
    return {"video": [video_of(jobs, "video")] * job.num_outputs, "num_inference_steps": job.num_inference_steps}


KANDINSKY6_SR = FamilySpec(
    name="kandinsky6-sr",
    pipeline_classes=("Kandinsky6SRPipeline",),
    build_call_kwargs=_sr_call_kwargs,
    default_steps=4,
    takes_prompt=False,
    takes_guidance=False,
    warmup_prompt="",
    video_roles=("video",),
    required_video_roles=("video",),
    frames_from_video="video",
    size_from_video=_upscale_plan,
    step_end_callback=False,
    **{
        **_COMMON,
        # The default size is the warm-up video's (a request's follows its video): 864x480 upscales to 1952x1088.
        "default_width": 864,
        "default_height": 480,
        "latent_patch": 1,
        "default_guidance_scale": 1.0,
        "block_lists": ("visual_transformer_blocks",),
        "call_defaults": {"resolution_scale": 2.25, "min_overlap": 0.2, "tiles_batch_size": 1},
    },
)
