"""LTX-Video text- and image-to-video: one list of blocks, CFG batched into one call.

The VAE compresses 8 frames into one latent frame (frame counts are 8k + 1) and
32x spatially; the transformer takes one latent pixel per token. The model is
conditioned on the frame rate, so the request's ``fps`` is passed as
``frame_rate``.

LTX-Video condition (``LTXConditionPipeline``, LTX-Video 0.9.5 and later) is
text-to-video, or image-to-video with an optional input image: the image is
encoded as the first latent frame and kept close to it (a per-token timestep).
The request's image is the condition at frame 0 with the pipeline's default
condition strength (1.0); the noise of the condition draws from one generator, so
its jobs run alone.

The long multi-prompt image-to-video pipeline (``LTXI2VLongMultiPromptPipeline``)
samples the video in overlapping temporal windows of ``temporal_tile_size`` frames
(``temporal_overlap`` shared with the window before), each a whole denoising loop with
the scheduler's timesteps set anew (``FamilySpec.denoising_loops``), and fuses them:
each window after the first drops its first latent frame and crossfades
``overlap - 1`` latent frames into the one before, so the windows make their own frame
count; a count they do not make is INVALID_ARGUMENT naming the one they would make.
Each window runs ``num_inference_steps - 1`` steps (it steps ``timesteps[:-1]``;
``FamilySpec.loop_steps``), so a request needs at least 2. The pipeline makes one video
per call and reads a prompt with ``|`` as one prompt per window, in order (the last one
goes on for the windows after it); its ``seed`` argument reseeds each window's noise
(``seed + first latent frame``) over any generator, so it gets the request's seed. It
has no previews: a window's latents carry the previous window's tail and the
condition image's latent frame appended, and become video frames only once fused.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from engine_service.models.inputs import image_of
from engine_service.models.spec import FamilySpec
from engine_service.models.video import ltx_decode, ltx_mean_std, packed_tokens, video_call_kwargs, video_preview

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline

    from engine_service.jobs import JobSpec

_COMMON = {
    "output_kind": "video",
    "latent_patch": 1,
    "default_width": 704,
    "default_height": 480,
    "default_steps": 50,
    "default_guidance_scale": 3.0,
    "block_lists": ("transformer_blocks",),
    "default_frames": 161,
    "frame_stride": 8,
    "uses_negative_prompt": True,
    "call_defaults": {"max_sequence_length": 128},
}

LTX_VIDEO = FamilySpec(
    name="ltx-video",
    pipeline_classes=("LTXPipeline",),
    build_call_kwargs=video_call_kwargs(fps="frame_rate"),
    decode_latents=video_preview(ltx_mean_std, latents=packed_tokens, decode=ltx_decode, leading_latent_frames=None),
    **_COMMON,
)

#: Image-to-video: the input image is the first frame.
LTX_VIDEO_I2V = FamilySpec(
    name="ltx-video-i2v",
    pipeline_classes=("LTXImageToVideoPipeline",),
    build_call_kwargs=video_call_kwargs(images={"image": "image"}, fps="frame_rate"),
    decode_latents=video_preview(ltx_mean_std, frame="last", latents=packed_tokens, decode=ltx_decode),
    input_roles=("image",),
    required_roles=("image",),
    **_COMMON,
)

LTX_VIDEO_CONDITION = FamilySpec(
    name="ltx-video-condition",
    pipeline_classes=("LTXConditionPipeline",),
    build_call_kwargs=video_call_kwargs(images={"image": "image"}, fps="frame_rate"),
    decode_latents=video_preview(ltx_mean_std, frame="last", latents=packed_tokens, decode=ltx_decode),
    input_roles=("image",),
    generator_per_output=False,
    **_COMMON,
)

#: The LTX-Video VAE's temporal compression: ``k`` latent frames decode to ``8 (k - 1) + 1`` frames.
_TEMPORAL = 8
#: ``LTXI2VLongMultiPromptPipeline.__call__``'s default window and overlap, in frames.
_TILE_FRAMES, _OVERLAP_FRAMES = 80, 24


def long_windows(frames: int, call_defaults: Mapping[str, Any]) -> tuple[int, int]:
    """(windows, frames made) for ``frames`` asked for, as ``LTXI2VLongMultiPromptPipeline.__call__``
    splits and fuses them: ``L = (frames - 1) // 8 + 1`` latent frames in windows of
    ``tile = temporal_tile_size // 8`` latent frames, each starting ``tile - overlap`` after the one
    before (``overlap = temporal_overlap // 8``), the last ending at ``L``. The first window keeps its
    frames; each later one adds its frames but the first, less the ``overlap - 1`` it crossfades into
    the video when that is more than 1. The fused latent frames decode to ``8 (k - 1) + 1`` frames."""
    latent = (frames - 1) // _TEMPORAL + 1
    tile = max(1, int(call_defaults.get("temporal_tile_size", _TILE_FRAMES)) // _TEMPORAL)
    overlap = max(0, int(call_defaults.get("temporal_overlap", _OVERLAP_FRAMES)) // _TEMPORAL)
    fused = max(overlap - 1, 1)
    windows, made, start = 0, 0, 0
    while True:
        end = min(start + tile, latent)
        if windows == 0:
            made = end - start
        else:
            new = end - start - 1
            made += new - fused if fused > 1 else new
        windows += 1
        if end == latent:
            break
        start += max(tile - overlap, 1)
    return windows, (made - 1) * _TEMPORAL + 1


def _window_steps(
    pipe: DiffusionPipeline, steps: int, windows: int, call_defaults: Mapping[str, Any]
) -> tuple[int, ...]:
    """Each window steps its schedule's timesteps but the last: ``num_inference_steps - 1``."""
    return (steps - 1,) * windows


def _long_call_kwargs(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
    """One video per call: the prompt as one string (``|`` splits it per window), the request's seed."""
    job = jobs[0]
    kwargs: dict[str, Any] = {
        "prompt": job.prompt,
        "negative_prompt": job.negative_prompt,
        "width": job.width,
        "height": job.height,
        "num_frames": job.num_frames,
        "num_inference_steps": job.num_inference_steps,
        "guidance_scale": job.guidance_scale,
        "frame_rate": job.fps,
        "seed": job.seed,
    }
    image = image_of(jobs, "image")
    if image is not None:
        kwargs["cond_image"] = image
    return kwargs


def _check_window_prompts(pipe: DiffusionPipeline, prompt: str, call_defaults: Mapping[str, Any]) -> str | None:
    """A prompt split at ``|`` (as the pipeline splits it, each part stripped) must give every window a prompt."""
    parts = [part.strip() for part in prompt.split("|")]
    empty = [index + 1 for index, part in enumerate(parts) if not part]
    if len(parts) > 1 and empty:
        return (
            f"the window prompts split at '|' must not be empty; part {empty[0]} of {len(parts)} is: "
            "write a prompt between every two bars"
        )
    return None


LTX_VIDEO_LONG = FamilySpec(
    name="ltx-video-long",
    pipeline_classes=("LTXI2VLongMultiPromptPipeline",),
    build_call_kwargs=_long_call_kwargs,
    check_prompt=_check_window_prompts,
    input_roles=("image",),
    required_roles=("image",),
    denoising_loops=long_windows,
    loop_steps=_window_steps,
    # One video per call; the seed argument draws each window's noise, the generator the rest.
    max_outputs=1,
    generator_per_output=False,
    **{**_COMMON, "default_steps": 8, "default_guidance_scale": 1.0, "default_width": 704, "default_height": 512},
)
