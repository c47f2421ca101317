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
is known but not served. It samples the video in overlapping temporal windows, each a
whole denoising loop with the scheduler's timesteps set anew, which the engine can
follow (``FamilySpec.denoising_loops``); what does not fit is the rest of its call:
each window runs ``num_inference_steps - 1`` steps (it leaves out the schedule's last
timestep), so progress totals and the cache's per-loop step counts would be one step
per window off; the fused windows make another frame count than ``num_frames`` (17
asked for made 21 in a tiny check, with a 16-frame window and an 8-frame overlap);
a prompt with ``|`` is split into one prompt per window and a list of prompts is read
as one per window, so a call makes exactly one video; and its ``seed`` argument
(default 0) reseeds every window's noise, ignoring the request's generator.
"""

from __future__ import annotations

from engine_service.models.spec import FamilySpec
from engine_service.models.video import ltx_decode, ltx_mean_std, packed_tokens, video_call_kwargs, video_preview

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

LTX_VIDEO_LONG = FamilySpec(
    name="ltx-video-long",
    pipeline_classes=("LTXI2VLongMultiPromptPipeline",),
    build_call_kwargs=video_call_kwargs(images={"image": "cond_image"}, fps="frame_rate"),
    input_roles=("image",),
    required_roles=("image",),
    unsupported_reason=(
        "each temporal window is a whole denoising loop (which the engine follows) but runs num_inference_steps "
        "- 1 steps, leaving out the schedule's last timestep, so progress totals and the cache's per-loop step "
        "counts would be one step per window off; the overlapping windows are fused into another frame count "
        "than num_frames; a prompt with '|' (or a list of prompts) gives each window its own prompt, so a call "
        "makes one video; and its seed argument (default 0) reseeds every window's noise over the request's "
        "generator"
    ),
    **{**_COMMON, "default_steps": 8, "default_guidance_scale": 1.0, "default_width": 704, "default_height": 512},
)
