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
without ``set_timesteps`` between them) are not offered by the text- and image-to-video
entries.

The video-to-video pipeline continues an input video, synchronously too, in windows of
``base_num_frames`` that overlap by ``overlap_history`` (the model's call defaults): each
window is a whole denoising loop of ``num_inference_steps`` steps over fresh scheduler
copies, which the cache starts a run at (``FamilySpec.loops_on_scheduler_copies``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from engine_service.models.inputs import video_of
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


def _frame_count(defaults: Mapping[str, Any], key: str) -> int:
    """The call default ``key``, a frame count; ValueError naming it for anything else (``None`` included:
    the video-to-video pipeline always samples in windows that start on a history)."""
    value = defaults[key]
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"call_defaults {key} must be a whole number of frames (at least 1), got {value!r}")
    return value


def _history_frames(defaults: Mapping[str, Any]) -> int:
    """The input video's last frames the video-to-video pipeline continues from: ``overlap_history``."""
    return _frame_count(defaults, "overlap_history")


def _windows(frames: int, defaults: Mapping[str, Any]) -> tuple[int, int]:
    """(windows, frames made) for ``frames`` new frames (4k + 1): the video-to-video pipeline's ``n_iter``.

    In latent frames (``(n - 1) // 4 + 1`` of ``n`` pixel frames): ``L`` of ``num_frames``, ``B`` of
    ``base_num_frames``, ``O`` of ``overlap_history``. The first window holds ``min(L, B)`` frames, the
    first ``O`` the encoded end of the input video; each further one starts from the last ``O`` frames made
    and adds up to ``B - O``: ``1 + ceil((L - B) / (B - O))`` windows for ``L > B``, one otherwise, and
    ``L`` frames in all (the first ``O`` re-decode the input's last ``overlap_history`` frames). ``L <= O``
    would sample nothing (the pipeline fails): the fewest it makes, ``4 O + 1``, is the count made.
    ValueError naming a call default that is no frame count, or windows that add no frame.
    """
    latent = (frames - 1) // 4 + 1
    base = (_frame_count(defaults, "base_num_frames") - 1) // 4 + 1
    overlap = (_frame_count(defaults, "overlap_history") - 1) // 4 + 1
    if base <= overlap:  # windows that add no frame: a model whose call defaults the pipeline cannot run
        raise ValueError(
            f"call_defaults base_num_frames {defaults['base_num_frames']} ({base} latent frames) must hold more "
            f"latent frames than overlap_history {defaults['overlap_history']} ({overlap}): its windows would add none"
        )
    if latent <= overlap:
        return 1, 4 * overlap + 1
    return 1 + max(0, -(-(latent - base) // (base - overlap))), frames


def _continuation(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
    """The video-to-video call: the request's video once per output (the pipeline encodes each and joins
    it to its output), synchronous windows (``ar_step`` 0) of ``base_num_frames`` that overlap by
    ``overlap_history`` (the model's call defaults), and the request's frame rate."""
    kwargs = video_call_kwargs(fps="fps")(pipe, jobs)
    kwargs["video"] = [video_of(jobs, "video")] * len(kwargs["prompt"])
    kwargs["ar_step"] = 0
    return kwargs


#: Video-to-video: it continues the request's video. The output holds the video's frames (resized to the
#: request's size) followed by ``num_frames`` sampled ones, the first ``overlap_history`` of which re-decode
#: the video's last frames (the history each window starts from); the new frames come in windows of
#: ``base_num_frames``, each a whole denoising loop of ``num_inference_steps`` steps over fresh copies of
#: the scheduler. No previews: a window's latents decode to other pixels than the final decode of all of
#: them (the Wan VAE is causal over every latent frame before).
SKYREELS_V2_DF_V2V = FamilySpec(
    name="skyreels-v2-df-v2v",
    pipeline_classes=("SkyReelsV2DiffusionForcingVideoToVideoPipeline",),
    build_call_kwargs=_continuation,
    video_roles=("video",),
    required_video_roles=("video",),
    continues_video="video",
    history_frames=_history_frames,
    denoising_loops=_windows,
    loops_on_scheduler_copies=True,
    # The pipeline noises its history with torch's process-wide generator when a model sets
    # addnoise_condition (diffusers' default 0 adds none).
    seeds_process_rng=True,
    **{
        **_COMMON,
        "call_defaults": {"max_sequence_length": 512, "base_num_frames": 97, "overlap_history": 17},
    },
)
