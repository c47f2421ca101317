"""EasyAnimate text-to-video, image-to-video and control video (``EasyAnimatePipeline``,
``EasyAnimateInpaintPipeline``, ``EasyAnimateControlPipeline``).

A MMDiT-style transformer over the MagVIT VAE (8x spatially, 4 frames per latent
frame) with 2x2 latent patches per token; a Qwen2-VL (or, for older checkpoints,
a BERT) text encoder; classifier-free guidance batched into one call.

The inpainting pipeline is how EasyAnimate does image-to-video: it takes a video
and a per-frame mask (255 = generate, 0 = keep). The engine sends the input image
as the first frame of a still video and a mask that keeps that frame only, as
EasyAnimate's own image-to-video helper does. The noise the pipeline adds to the kept
frame draws from one generator, so these requests run alone. Inpainting a whole input video and
the pipeline's ``strength`` are not exposed.

The control pipeline follows a control video (input video role ``control``: per-frame depth, pose
or edges): the transformer takes its VAE latents beside the noise's channels, frame for frame, so
the output has the control video's frames (4k + 1). An optional reference image (input image role
``reference``, the pipeline's ``ref_image``) is encoded into further channels of the first latent
frame; the pipeline reads it only in a video of more than one latent frame. Its camera control
(``control_camera_video``, Plücker embeddings rather than a picture) is not exposed. diffusers 0.42.1's control pipeline
fails on every call twice over; :func:`_repair_control_pipeline` works around both on the loaded
pipeline.
"""

from __future__ import annotations

import functools
import inspect
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from engine_service.errors import ModelLoadError
from engine_service.models.inputs import image_of, video_of
from engine_service.models.spec import FamilySpec
from engine_service.models.video import scaling_factor, video_call_kwargs, video_preview

if TYPE_CHECKING:
    from collections.abc import Sequence

    from diffusers import DiffusionPipeline

    from engine_service.jobs import JobSpec

_TEXT_TO_VIDEO_KWARGS = video_call_kwargs()
#: The inpainting mask's values: regenerate the pixel, keep it.
_GENERATE, _KEEP = 255.0, 0.0


def _text_to_video_kwargs(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
    kwargs = _TEXT_TO_VIDEO_KWARGS(pipe, jobs)
    kwargs["num_images_per_prompt"] = kwargs.pop("num_videos_per_prompt")  # EasyAnimate's name for it
    return kwargs


def _image_to_video_kwargs(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
    """The image as every frame of a still video in [0, 1] (N, 3, F, H, W), and a mask
    (N, 1, F, H, W) that keeps the first frame and generates the others; N = one per output
    (the pipeline takes its batch size from the video)."""
    kwargs = _text_to_video_kwargs(pipe, jobs)
    width, height, frames = kwargs["width"], kwargs["height"], kwargs["num_frames"]
    outputs = len(kwargs["prompt"])
    image = image_of(jobs, "image").convert("RGB").resize((width, height))
    still = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
    kwargs["video"] = still[None, :, None].expand(outputs, 3, frames, height, width).contiguous()
    mask = torch.full((outputs, 1, frames, height, width), _GENERATE)
    mask[:, :, 0] = _KEEP
    kwargs["mask_video"] = mask
    return kwargs


_COMMON = {
    "output_kind": "video",
    "latent_patch": 2,
    "default_width": 512,
    "default_height": 512,
    "default_steps": 50,
    "default_guidance_scale": 5.0,
    "block_lists": ("transformer_blocks",),
    "default_frames": 49,
    "frame_stride": 4,
    "uses_negative_prompt": True,
}

EASYANIMATE = FamilySpec(
    name="easyanimate",
    pipeline_classes=("EasyAnimatePipeline",),
    build_call_kwargs=_text_to_video_kwargs,
    decode_latents=video_preview(scaling_factor),
    **_COMMON,
)


def _mask_channels(pipe: DiffusionPipeline) -> None:
    """Refuses an inpainting pipeline whose transformer takes only the noise's channels (ModelLoadError):
    for it diffusers 0.42.1's loop blends the kept frames back in with ``torch.tensor([timestep], noise)``,
    a TypeError at every step but the last."""
    channels = pipe.transformer.config.in_channels
    if channels == pipe.vae.config.latent_channels:
        raise ModelLoadError(
            f"EasyAnimateInpaintPipeline with a transformer of {channels} input channels (the noise's only, no "
            "mask or masked-video latents) is not served: diffusers 0.42.1's pipeline fails on every call with "
            "it (its denoising loop calls torch.tensor([timestep], noise))"
        )


EASYANIMATE_I2V = FamilySpec(
    name="easyanimate-i2v",
    pipeline_classes=("EasyAnimateInpaintPipeline",),
    build_call_kwargs=_image_to_video_kwargs,
    prepare_pipeline=_mask_channels,
    decode_latents=video_preview(scaling_factor, frame="last"),
    input_roles=("image",),
    required_roles=("image",),
    # The noise it adds to the kept frame's latents draws from one generator, not one per output.
    generator_per_output=False,
    **_COMMON,
)


def _control_video_kwargs(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
    """The control video (the server cut it to ``num_frames`` frames) as the (N, 3, F, H, W) tensor in
    [0, 1] the pipeline takes, resized to the output's size, once per output: its latents join each
    output's noise along the channels, so their batches must match. The optional ``reference`` image
    likewise as ``ref_image`` (N, 3, 1, H, W)."""
    kwargs = _text_to_video_kwargs(pipe, jobs)
    size = (kwargs["width"], kwargs["height"])
    frames = [
        np.asarray(frame.convert("RGB").resize(size), dtype=np.float32) / 255.0 for frame in video_of(jobs, "control")
    ]
    video = torch.from_numpy(np.stack(frames)).permute(3, 0, 1, 2)  # (3, F, H, W)
    outputs = len(kwargs["prompt"])
    kwargs["control_video"] = video[None].expand(outputs, -1, -1, -1, -1).contiguous()
    reference = image_of(jobs, "reference")
    if reference is not None:  # a one-frame video (N, 3, 1, H, W), as the pipeline reads it
        picture = np.asarray(reference.convert("RGB").resize(size), dtype=np.float32) / 255.0
        still = torch.from_numpy(picture).permute(2, 0, 1)[None, :, None]
        kwargs["ref_image"] = still.expand(outputs, -1, -1, -1, -1).contiguous()
    return kwargs


def _repair_control_pipeline(pipe: DiffusionPipeline) -> None:
    """Works around the two faults that make diffusers 0.42.1's ``EasyAnimateControlPipeline`` fail on
    every call, on this pipeline instance and only while its class still has them (a diffusers release
    that fixes one makes its check false, and the instance is left as it is). Refuses a transformer
    without reference-image channels (ModelLoadError): the pipeline always joins the noise's, the
    control video's and the reference image's latents (zeros without one), 3 x the VAE's latent
    channels, and any other count fails on every call.

    - ``__call__`` passes ``encode_prompt`` a ``text_encoder_index=0`` argument (as HunyuanDiT's
      two-encoder pipelines do) that its one-encoder ``encode_prompt`` does not take: ``TypeError``.
      The instance gets an ``encode_prompt`` that drops the argument and calls the class's own.
    - ``__call__`` decodes with ``self.decode_latents``, which the class does not define:
      ``AttributeError`` on every call that returns pixels. The instance gets one that decodes as
      ``EasyAnimatePipeline.__call__`` does: ``vae.decode(latents / scaling_factor)``, frames in
      [-1, 1] (N, 3, F, H, W) for the pipeline's video post-processing.
    """
    channels, latent = pipe.transformer.config.in_channels, pipe.vae.config.latent_channels
    if channels != 3 * latent:
        raise ModelLoadError(
            f"EasyAnimateControlPipeline with a transformer of {channels} input channels is not served: diffusers "
            f"0.42.1's pipeline always gives it the noise's, the control video's and a reference image's latents "
            f"(zeros without one), 3 x {latent} = {3 * latent} channels, so it would fail on every call"
        )
    cls = type(pipe)
    if "text_encoder_index" not in inspect.signature(cls.encode_prompt).parameters:
        encode = pipe.encode_prompt

        @functools.wraps(encode)
        def encode_prompt(*args: Any, text_encoder_index: int = 0, **kwargs: Any) -> Any:
            return encode(*args, **kwargs)  # one text encoder: index 0 is the only one

        pipe.encode_prompt = encode_prompt
    if not hasattr(cls, "decode_latents"):

        def decode_latents(latents: torch.Tensor) -> torch.Tensor:
            return pipe.vae.decode(latents / pipe.vae.config.scaling_factor, return_dict=False)[0]

        pipe.decode_latents = decode_latents


#: EasyAnimate Control: the transformer takes the control video's latents (the VAE's mode) beside the
#: noise's channels, frame for frame, so the output has the control video's frames, cut to 4k + 1; and a
#: reference image's latents (zeros without one) in further channels of the first latent frame, which
#: the pipeline fills only when more latent frames follow (so with one frame a reference is refused).
#: Previews show the last frame, as image-to-video ones do.
EASYANIMATE_CONTROL = FamilySpec(
    name="easyanimate-control",
    pipeline_classes=("EasyAnimateControlPipeline",),
    build_call_kwargs=_control_video_kwargs,
    decode_latents=video_preview(scaling_factor, frame="last"),
    input_roles=("reference",),
    video_only_roles=("reference",),
    video_roles=("control",),
    required_video_roles=("control",),
    frames_from_video="control",
    prepare_pipeline=_repair_control_pipeline,
    **_COMMON,
)
