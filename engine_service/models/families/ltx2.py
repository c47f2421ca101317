"""LTX-2 text- and image-to-video: one transformer makes a video and its audio track together.

Each block carries the video and the audio hidden states (cross-attention between the two
tracks); the cache carries the audio as the blocks' second stream (``LAYOUT_STREAMS``). The
engine returns the video only: the audio the pipeline decodes (its audio VAE and vocoder) is
dropped. The VAE compresses 8 frames into one latent frame and 32x spatially; the model is
conditioned on the frame rate, so the request's ``fps`` is passed as ``frame_rate``.

diffusers' defaults run up to three transformer calls per step: the CFG batch, a
spatio-temporal guidance (STG) call with block 28 perturbed (``stg_scale``, ``audio_stg_scale``)
and a modality-isolation call without the audio-video cross-attention (``modality_scale``,
``audio_modality_scale``). The engine keeps the standard batched CFG only (one call per step,
as the cache counts steps and branches): STG and modality guidance are off in the call
defaults. A model may switch them back on through its ``call_defaults``, without the cache.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from diffusers.pipelines.ltx2.pipeline_ltx2_condition import LTX2VideoCondition

from engine_service.models.spec import CallKwargsBuilder, FamilySpec
from engine_service.models.video import ltx_decode, ltx_mean_std, packed_tokens, video_call_kwargs, video_preview

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline

    from engine_service.jobs import JobSpec

#: One transformer call per step: CFG only (``audio_stg_scale`` 0 falls back to ``stg_scale``).
CFG_ONLY = {"stg_scale": 0.0, "audio_stg_scale": 0.0, "modality_scale": 1.0, "audio_modality_scale": 1.0}

_COMMON = {
    "output_kind": "video",
    "latent_patch": 1,
    "default_width": 768,
    "default_height": 512,
    "default_steps": 30,
    "default_guidance_scale": 3.0,
    "block_lists": ("transformer_blocks",),
    "default_frames": 121,
    "frame_stride": 8,
    "uses_negative_prompt": True,
    "call_defaults": CFG_ONLY,
}

LTX2 = FamilySpec(
    name="ltx2",
    pipeline_classes=("LTX2Pipeline",),
    build_call_kwargs=video_call_kwargs(fps="frame_rate"),
    decode_latents=video_preview(ltx_mean_std, latents=packed_tokens, decode=ltx_decode, leading_latent_frames=None),
    **_COMMON,
)

#: Image-to-video: the input image is the first frame.
LTX2_I2V = FamilySpec(
    name="ltx2-i2v",
    pipeline_classes=("LTX2ImageToVideoPipeline",),
    build_call_kwargs=video_call_kwargs(images={"image": "image"}, fps="frame_rate"),
    decode_latents=video_preview(ltx_mean_std, frame="last", latents=packed_tokens, decode=ltx_decode),
    input_roles=("image",),
    required_roles=("image",),
    **_COMMON,
)


def _first_frame_condition() -> CallKwargsBuilder:
    """The condition pipeline's kwargs: the input image as a full-strength condition on frame 0."""
    base = video_call_kwargs(images={"image": "conditions"}, fps="frame_rate")

    def build(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
        kwargs = base(pipe, jobs)
        kwargs["conditions"] = [LTX2VideoCondition(frames=kwargs["conditions"], index=0, strength=1.0)]
        return kwargs

    return build


#: The condition pipeline (images or clips at any frame index, each with a strength), served with
#: one condition: the input image as the first frame at full strength.
LTX2_CONDITION = FamilySpec(
    name="ltx2-condition",
    pipeline_classes=("LTX2ConditionPipeline",),
    build_call_kwargs=_first_frame_condition(),
    decode_latents=video_preview(ltx_mean_std, frame="last", latents=packed_tokens, decode=ltx_decode),
    input_roles=("image",),
    required_roles=("image",),
    # It takes no list of generators (diffusers warns and draws every sample from the first one).
    generator_per_output=False,
    **_COMMON,
)
