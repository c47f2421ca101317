"""Pipeline keyword arguments and preview decoders shared by the video families.

Most diffusers video pipelines take the same core arguments: one prompt (and
negative prompt) per output, size, frame count, steps, guidance, and
``num_videos_per_prompt``. A family entry builds its call-kwargs function from
:func:`video_call_kwargs` and names what differs: whether the pipeline takes a
negative prompt, which keyword receives the input image, and which one the frame
rate.

A video preview is one image: one frame of the video the current latents would
decode to (:func:`video_preview`), exactly as the final decode would make it from
them. Text-to-video families show the first frame, decoded from only as many
leading latent frames as their VAE needs for it (one for the causal Wan and Mochi
VAEs), a fraction of the final decode. Image-to-video families show the last
frame, decoded from all latent frames, since their first frame is (or is drawn
towards) the input image. A family entry names how its pipeline stores latents,
how its VAE's normalisation is undone and how many latent frames it decodes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

import torch

from engine_service.models.inputs import image_of, video_of

if TYPE_CHECKING:
    from collections.abc import Sequence

    from diffusers import DiffusionPipeline

    from engine_service.jobs import JobSpec
    from engine_service.models.spec import CallKwargsBuilder, LatentDecoder

#: (pipeline, step latents, job) -> the VAE's latents (N, C, F, h, w), still normalised.
VideoLatents = Callable[["DiffusionPipeline", torch.Tensor, "JobSpec"], torch.Tensor]
#: (pipeline, normalised VAE latents (N, C, F, h, w)) -> what the VAE decodes.
Denormalize = Callable[["DiffusionPipeline", torch.Tensor], torch.Tensor]
#: (pipeline, VAE latents (N, C, F, h, w)) -> frames (N, 3, F', H, W) in [-1, 1].
VaeDecode = Callable[["DiffusionPipeline", torch.Tensor], torch.Tensor]
#: (pipeline, latent frames) -> how many leading latent frames decode the first frame exactly.
LeadingFrames = Callable[["DiffusionPipeline", int], int]


def video_call_kwargs(
    *,
    negative_prompt: bool = True,
    images: dict[str, str] | None = None,
    fps: str | None = None,
    guidance: str = "guidance_scale",
) -> CallKwargsBuilder:
    """A call-kwargs builder for a video pipeline.

    ``negative_prompt``: the pipeline takes ``negative_prompt``. ``images``: input role ->
    pipeline keyword (``{"image": "image"}`` for image-to-video). ``fps``: the keyword that takes
    the request's frame rate, if the pipeline conditions on it. ``guidance``: the keyword that
    takes the request's guidance scale.
    """

    def build(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
        first = jobs[0]  # the batch key makes size, frames, steps and guidance equal for every job
        kwargs: dict[str, Any] = {
            "prompt": [job.prompt for job in jobs for _ in range(job.num_outputs)],
            "width": first.width,
            "height": first.height,
            "num_frames": first.num_frames,
            "num_inference_steps": first.num_inference_steps,
            guidance: first.guidance_scale,
            "num_videos_per_prompt": 1,
        }
        if negative_prompt:
            kwargs["negative_prompt"] = [job.negative_prompt for job in jobs for _ in range(job.num_outputs)]
        for role, keyword in (images or {}).items():
            image = image_of(jobs, role)
            if image is not None:
                kwargs[keyword] = image
        if fps is not None:
            kwargs[fps] = first.fps
        return kwargs

    return build


def kept_steps(num_inference_steps: int, strength: float) -> int:
    """The denoising steps a diffusers video-to-video pipeline runs (a ``FamilySpec.strength_steps``):
    its ``get_timesteps`` (copied from AnimateDiff's) keeps ``min(int(steps x strength), steps)`` steps,
    flooring the product where image-to-image pipelines floor the steps they skip (4 steps at 0.8: 3
    here, 4 there)."""
    return min(int(num_inference_steps * strength), num_inference_steps)


def video_to_video_call_kwargs(**options: Any) -> CallKwargsBuilder:
    """:func:`video_call_kwargs` (``options``) for a video-to-video pipeline: the request's ``"video"``
    input as ``video`` (its frames; the server cut them to ``num_frames``, which such a pipeline does
    not take: it makes as many frames as it is given) and the request's ``strength``."""
    base = video_call_kwargs(**options)

    def build(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
        kwargs = base(pipe, jobs)
        del kwargs["num_frames"]
        kwargs["video"] = video_of(jobs, "video")
        kwargs["strength"] = jobs[0].strength
        return kwargs

    return build


def channels_first(pipe: DiffusionPipeline, latents: torch.Tensor, job: JobSpec) -> torch.Tensor:
    """Step latents that already are (N, C, F, h, w) VAE latents (Wan, HunyuanVideo, Mochi, ...)."""
    return latents


def frames_first(pipe: DiffusionPipeline, latents: torch.Tensor, job: JobSpec) -> torch.Tensor:
    """CogVideoX's (N, F, C, h, w) step latents, without the latent frames CogVideoX 1.5 pads in
    front (it packs two latent frames per token) and cuts off before decoding."""
    real = (job.num_frames - 1) // pipe.vae_scale_factor_temporal + 1
    return latents[:, -real:].permute(0, 2, 1, 3, 4)


def packed_tokens(pipe: DiffusionPipeline, latents: torch.Tensor, job: JobSpec) -> torch.Tensor:
    """LTX-Video's (N, tokens, features) step latents, unpacked as the pipeline does before decoding.

    The generated video's tokens come first; the condition tokens a pipeline appends after them
    (LTX-2's keyframes and in-context reference video) are cut off, as the pipeline cuts them.
    """
    frames = (job.num_frames - 1) // pipe.vae_temporal_compression_ratio + 1
    height = job.height // pipe.vae_spatial_compression_ratio
    width = job.width // pipe.vae_spatial_compression_ratio
    spatial, temporal = pipe.transformer_spatial_patch_size, pipe.transformer_temporal_patch_size
    tokens = (frames // temporal) * (height // spatial) * (width // spatial)
    return pipe._unpack_latents(latents[:, :tokens], frames, height, width, spatial, temporal)


def _per_channel(values, latents: torch.Tensor) -> torch.Tensor:
    return torch.tensor(values).view(1, -1, 1, 1, 1).to(latents.device, latents.dtype)


def mean_std(pipe: DiffusionPipeline, latents: torch.Tensor) -> torch.Tensor:
    """The Wan VAE's per-channel normalisation (Wan, SkyReels-V2, ChronoEdit): ``x * std + mean``."""
    config = pipe.vae.config
    return latents * _per_channel(config.latents_std, latents) + _per_channel(config.latents_mean, latents)


def scaling_factor(pipe: DiffusionPipeline, latents: torch.Tensor) -> torch.Tensor:
    """One scale for all channels (HunyuanVideo, CogVideoX, Allegro): ``x / scaling_factor``."""
    return latents / pipe.vae.config.scaling_factor


def mochi_mean_std(pipe: DiffusionPipeline, latents: torch.Tensor) -> torch.Tensor:
    """Mochi's: ``x * std / scaling_factor + mean`` where the VAE has a mean and std, else ``x / scaling_factor``."""
    config = pipe.vae.config
    if getattr(config, "latents_mean", None) is None or getattr(config, "latents_std", None) is None:
        return latents / config.scaling_factor
    std, mean = _per_channel(config.latents_std, latents), _per_channel(config.latents_mean, latents)
    return latents * std / config.scaling_factor + mean


def ltx_mean_std(pipe: DiffusionPipeline, latents: torch.Tensor) -> torch.Tensor:
    """LTX-Video's, through the pipeline's own ``_denormalize_latents``."""
    vae = pipe.vae
    return pipe._denormalize_latents(latents, vae.latents_mean, vae.latents_std, vae.config.scaling_factor)


def vae_decode(pipe: DiffusionPipeline, latents: torch.Tensor) -> torch.Tensor:
    """``pipe.vae.decode`` for VAEs that return (N, 3, F, H, W)."""
    return pipe.vae.decode(latents, return_dict=False)[0]


def ltx_decode(pipe: DiffusionPipeline, latents: torch.Tensor) -> torch.Tensor:
    """LTX-Video's VAE, which takes a decode timestep when it is timestep-conditioned. The preview
    decodes at timestep 0 without the noise the pipeline may add for its final decode."""
    timestep = None
    if pipe.vae.config.timestep_conditioning:
        timestep = torch.zeros(latents.shape[0], device=latents.device, dtype=latents.dtype)
    return pipe.vae.decode(latents, timestep, return_dict=False)[0]


def frames_second_decode(pipe: DiffusionPipeline, latents: torch.Tensor) -> torch.Tensor:
    """Allegro's VAE, which returns (N, F, 3, H, W)."""
    return pipe.vae.decode(latents, return_dict=False)[0].permute(0, 2, 1, 3, 4)


def one_latent_frame(pipe: DiffusionPipeline, latent_frames: int) -> int:
    """Causal VAEs that decode latent frame by frame (Wan, Mochi): the first one alone."""
    return 1


def first_frame_batch(pipe: DiffusionPipeline, latent_frames: int) -> int:
    """CogVideoX's VAE decodes its latent frames in batches (the first one takes the remainder) and
    normalises over each batch: its first batch gives the first frames as the whole decode does."""
    batch = pipe.vae.num_latent_frames_batch_size
    return batch + latent_frames % batch


def first_temporal_tile(pipe: DiffusionPipeline, latent_frames: int) -> int:
    """HunyuanVideo's VAE normalises over all the frames it decodes at once and, for longer videos,
    decodes overlapping temporal tiles: its first tile gives the first frames as the whole decode does."""
    vae = pipe.vae
    if not vae.use_framewise_decoding:
        return latent_frames
    return vae.tile_sample_min_num_frames // vae.temporal_compression_ratio + 1


def video_preview(
    denormalize: Denormalize,
    *,
    frame: Literal["first", "last"] = "first",
    latents: VideoLatents = channels_first,
    decode: VaeDecode = vae_decode,
    leading_latent_frames: LeadingFrames | None = one_latent_frame,
) -> LatentDecoder:
    """A preview decoder for a video family: one frame, as an image in [0, 1] (N, H, W, 3).

    ``frame``: ``"first"`` (text-to-video) or ``"last"`` (image-to-video: the first frame is the
    input image; the whole latent video is decoded). ``latents``: turns the step latents into
    (N, C, F, h, w) VAE latents. ``denormalize``: undoes the VAE's normalisation. ``decode``: runs
    the VAE. ``leading_latent_frames``: for ``"first"``, how many leading latent frames the VAE
    needs to decode the first frame exactly as the whole decode does; ``None`` = all of them (a
    VAE whose first frame depends on every latent frame: LTX-Video's non-causal decoder, Allegro's
    tiles).
    """

    def decode_frame(pipe: DiffusionPipeline, step_latents: torch.Tensor, job: JobSpec) -> torch.Tensor:
        video_latents = latents(pipe, step_latents, job)
        if frame == "first" and leading_latent_frames is not None:
            video_latents = video_latents[:, :, : leading_latent_frames(pipe, video_latents.shape[2])]
        frames = decode(pipe, denormalize(pipe, video_latents).to(pipe.vae.dtype))
        # Cut to the size asked for, as pipelines whose VAE rounds sizes up (Allegro) do.
        picture = frames[:, :, 0 if frame == "first" else -1, : job.height, : job.width]
        return (picture / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1)

    return decode_frame


__all__ = [
    "channels_first",
    "first_frame_batch",
    "first_temporal_tile",
    "frames_first",
    "frames_second_decode",
    "kept_steps",
    "ltx_decode",
    "ltx_mean_std",
    "mean_std",
    "mochi_mean_std",
    "one_latent_frame",
    "packed_tokens",
    "scaling_factor",
    "vae_decode",
    "video_call_kwargs",
    "video_preview",
    "video_to_video_call_kwargs",
]
