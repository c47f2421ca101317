"""LTX-2 text-, image- and in-context video: one transformer makes a video and its audio track together.

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

The in-context (IC-LoRA) pipeline takes the request's ``reference`` input video: its latent
tokens follow the noisy video's tokens in the one sequence the transformer sees (clean, at
timestep 0), so the cache's residuals span both; the output's frames follow the reference.

The HDR pipeline takes its reference SDR video the same way and returns high-dynamic-range video:
linear light, kept as floats for OpenEXR frames and rendered to SDR for the 8-bit formats.

A DFR pass (LTX-2.5) is served as one text-to-video pass of its distilled sigma schedule, without
CFG: its steps are the schedule's (``FamilySpec.schedule_steps``) and it takes no guidance scale.

The other LTX-2 pipelines are known, not served: the DFR refine rounds, the latent upsampler and
the diffusion decoder are stages of multi-call recipes (latents in, or no prompt and no denoising
loop of their own).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from diffusers.pipelines.ltx2.pipeline_ltx2_condition import LTX2VideoCondition
from diffusers.pipelines.ltx2.pipeline_ltx2_hdr_lora import LTX2HDRReferenceCondition
from diffusers.pipelines.ltx2.pipeline_ltx2_ic_lora import LTX2ReferenceCondition
from diffusers.pipelines.ltx2.utils import DISTILLED_SIGMA_VALUES

from engine_service.errors import ModelLoadError
from engine_service.models.inputs import video_of
from engine_service.models.spec import FamilySpec
from engine_service.models.video import ltx_decode, ltx_mean_std, packed_tokens, video_call_kwargs, video_preview

if TYPE_CHECKING:
    import torch
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


_video_call_kwargs = video_call_kwargs(images={"image": "conditions"}, fps="frame_rate")


def _first_frame_condition(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
    """The condition pipeline's kwargs: the input image, if sent, as a full-strength condition on frame 0."""
    kwargs = _video_call_kwargs(pipe, jobs)
    if "conditions" in kwargs:
        kwargs["conditions"] = [LTX2VideoCondition(frames=kwargs["conditions"], index=0, strength=1.0)]
    return kwargs


#: The condition pipeline (images or clips at any frame index, each with a strength), served with
#: one condition: the input image as the first frame at full strength.
LTX2_CONDITION = FamilySpec(
    name="ltx2-condition",
    pipeline_classes=("LTX2ConditionPipeline",),
    build_call_kwargs=_first_frame_condition,
    decode_latents=video_preview(ltx_mean_std, frame="last", latents=packed_tokens, decode=ltx_decode),
    input_roles=("image",),
    required_roles=("image",),
    # It takes no list of generators (diffusers warns and draws every sample from the first one).
    generator_per_output=False,
    **_COMMON,
)


def _dfr_schedule_steps(call_defaults: Mapping[str, Any]) -> int:
    """The steps a DFR pass runs: one per sigma of its schedule (the model's ``sigmas``, else diffusers'
    distilled schedule)."""
    return len(call_defaults.get("sigmas", DISTILLED_SIGMA_VALUES))


_dfr_video_call_kwargs = video_call_kwargs(negative_prompt=False, fps="frame_rate")


def _dfr_call_kwargs(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
    """A DFR pass's kwargs: prompt, size, ``num_frames`` and frame rate; no step count (the steps are its
    ``sigmas``) and no guidance (it runs without classifier-free guidance)."""
    kwargs = _dfr_video_call_kwargs(pipe, jobs)
    del kwargs["num_inference_steps"], kwargs["guidance_scale"]
    return kwargs


def _require_keyframe_embedding(pipe: DiffusionPipeline) -> None:
    """Refuse a transformer that cannot mark generated keyframe slots: every call would fail."""
    if not pipe.transformer.config.get("use_keyframes_abs_pos_embedding", False):
        raise ModelLoadError(
            "a DFR pass generates keyframe slots, which need an LTX-2.5 transformer whose config sets "
            "use_keyframes_abs_pos_embedding; serve an earlier LTX-2 checkpoint with LTX2Pipeline"
        )


#: One Diffusion Fidelity Rendering pass (LTX-2.5) from a prompt: a whole text-to-video pass of the
#: distilled sigma schedule (``sigmas``, 8 by default; a model may set its own in ``call_defaults``)
#: with one transformer call per step and no classifier-free guidance. Its steps are the schedule's
#: (``schedule_steps``: another ``num_inference_steps`` is INVALID_ARGUMENT) and it takes no guidance
#: scale. The pass generates keyframe slots (``generate_slots``, diffusers' default): single-frame latent
#: tokens at the ends of its keyframe segments, appended after the video's tokens, so the transformer
#: and the cache see both (the preview and the output cut them off, as the pipeline does); the frame
#: count is padded inside the pass to whole segments and the output trimmed back to ``num_frames``.
#: ``num_frames`` follows the frame rule (8k + 1, at least 9); a request that leaves it unset gets the
#: model's default frames, never the duration head's prediction (the engine sizes, validates and
#: batches a request before it runs). The recipe's other inputs (keyframe and reference latents, guidance
#: keyframes, epilogue tiles, a previous pass's latents) come from other stages and are not taken.
LTX2_DFR = FamilySpec(
    name="ltx2-dfr",
    pipeline_classes=("LTX2DFRPipeline",),
    build_call_kwargs=_dfr_call_kwargs,
    decode_latents=video_preview(ltx_mean_std, latents=packed_tokens, decode=ltx_decode, leading_latent_frames=None),
    schedule_steps=_dfr_schedule_steps,
    takes_guidance=False,
    prepare_pipeline=_require_keyframe_embedding,
    **{
        **_COMMON,
        "default_steps": len(DISTILLED_SIGMA_VALUES),
        "default_guidance_scale": 1.0,
        "uses_negative_prompt": False,
        "min_frames": 9,
        "call_defaults": {},
    },
)

# Known, not served: the other LTX-2 pipelines of diffusers 0.42.1 are stages of multi-call
# recipes or take a video or latents as their input.

#: A temporal refine round of the DFR recipe.
LTX2_DFR_TEMPORAL_REFINE = FamilySpec(
    name="ltx2-dfr-temporal-refine",
    pipeline_classes=("LTX2DFRTemporalRefinePipeline",),
    build_call_kwargs=video_call_kwargs(fps="frame_rate"),
    unsupported_reason=(
        "it is a processing stage of the DFR recipe, not a prompt-to-video pipeline: every call needs the previous "
        "pass's raw video latents, keyframe-slot latents, keyframe positions and frozen audio latents (diffusers "
        "raises without them), which no request can carry and ltx2-dfr, which returns decoded frames, does not hand "
        "on; it doubles the frames with a temporal latent upsampler and denoises the canvas tile by tile, each tile "
        "a whole denoising loop of its own"
    ),
    **_COMMON,
)


def _in_context_call_kwargs(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
    """The in-context pipeline's kwargs: the ``reference`` video (its first ``num_frames`` frames, as the
    server cut them) as one reference condition at full strength, and the ``image``, if sent, as a
    first-frame condition."""
    kwargs = _first_frame_condition(pipe, jobs)
    kwargs["reference_conditions"] = [LTX2ReferenceCondition(frames=video_of(jobs, "reference"), strength=1.0)]
    return kwargs


#: In-context (IC-LoRA) conditioning on a reference video: a pose, depth or edge video (the request's
#: ``reference`` input video) that an IC-LoRA follows frame by frame. The pipeline resizes and
#: centre-crops it to the output's size, encodes it with the VAE and appends its latent tokens to the
#: noisy video's, fully clean (strength 1: timestep 0 on those tokens, pinned to the encoded reference
#: every step); the transformer attends to all of them, so the cache's residuals span the longer
#: sequence (and the audio stream, as for ``ltx2``). The output has the reference's frames (8k + 1 of
#: them, or the first ``num_frames``), which keeps its tokens frame for frame beside the generated
#: ones. An ``image`` input, optional, is a first-frame condition as in ``ltx2-condition``. A model
#: whose IC-LoRA was trained on downscaled references sets ``reference_downscale_factor`` in its
#: ``call_defaults``. Jobs run alone: the reference is encoded once per call and every output shares it.
LTX2_IN_CONTEXT = FamilySpec(
    name="ltx2-in-context",
    pipeline_classes=("LTX2InContextPipeline",),
    build_call_kwargs=_in_context_call_kwargs,
    decode_latents=video_preview(ltx_mean_std, frame="last", latents=packed_tokens, decode=ltx_decode),
    input_roles=("image",),
    video_roles=("reference",),
    required_video_roles=("reference",),
    frames_from_video="reference",
    request_call_arguments=("reference_conditions", "conditions"),
    # It takes no list of generators (diffusers warns and draws every sample from the first one).
    generator_per_output=False,
    **_COMMON,
)

_reference_call_kwargs = video_call_kwargs(fps="frame_rate")


def _hdr_call_kwargs(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
    """The HDR pipeline's kwargs: the ``reference`` video (its first ``num_frames`` frames, as the server
    cut them) as its one reference condition at full strength."""
    kwargs = _reference_call_kwargs(pipe, jobs)
    kwargs["reference_conditions"] = [LTX2HDRReferenceCondition(frames=video_of(jobs, "reference"), strength=1.0)]
    return kwargs


_hdr_preview = video_preview(ltx_mean_std, latents=packed_tokens, decode=ltx_decode, leading_latent_frames=None)


def _hdr_decode_latents(pipe: DiffusionPipeline, latents: torch.Tensor, job: JobSpec) -> torch.Tensor:
    """The first frame the latents decode to, as linear light: the pipeline's own inverse LogC3 transform
    (``hdr_video_processor``) of the VAE's frame in [0, 1]."""
    return pipe.hdr_video_processor._logc3_decompress(_hdr_preview(pipe, latents, job))


#: HDR video from a reference SDR video (the HDR IC-LoRA of LTX-2.3): the request's ``reference`` input
#: video is resized (aspect kept) and reflect-padded to the output's size, encoded by the VAE and appended
#: clean (strength 1) to the noisy video's tokens, as in ``ltx2-in-context``; the output has its frames.
#: The pipeline decodes LogC3-encoded frames and returns linear light in [0, inf) (the inverse LogC3
#: transform): ``exr_frames`` returns it in full, MP4 and PNG frames its SDR rendering (diffusers'
#: ``encode_hdr_tensor_to_mp4``: clipped to [0, 1], then the sRGB transfer function). Video only: the
#: transformer still runs its audio stream (the cache carries it), whose decode the pipeline skips. Its
#: call's defaults are the distilled model's: 8 steps with a linear sigma schedule (1 to 1/steps), no
#: classifier-free guidance (1.0); STG and modality guidance are off. It takes no image and no first-frame
#: condition. Jobs run alone (they send a video): the reference is encoded once per call.
LTX2_HDR = FamilySpec(
    name="ltx2-hdr",
    pipeline_classes=("LTX2HDRPipeline",),
    build_call_kwargs=_hdr_call_kwargs,
    decode_latents=_hdr_decode_latents,
    video_roles=("reference",),
    required_video_roles=("reference",),
    frames_from_video="reference",
    outputs_hdr=True,
    **{
        **_COMMON,
        "default_steps": 8,
        "default_guidance_scale": 1.0,
        # It takes no audio guidance scales (its audio is never decoded).
        "call_defaults": {"stg_scale": 0.0, "modality_scale": 1.0},
    },
)

#: The spatial latent upsampler between the two stages of a two-stage recipe.
LTX2_LATENT_UPSAMPLE = FamilySpec(
    name="ltx2-latent-upsample",
    pipeline_classes=("LTX2LatentUpsamplePipeline",),
    build_call_kwargs=video_call_kwargs(),
    unsupported_reason=(
        "it upscales a video (or a first stage's latents) without denoising it: VAE encode, one call of its latent "
        "upsampler model, VAE decode, with no prompt, no transformer, no scheduler and no steps. Its video input and "
        "a size that follows the video would fit the contract, but the engine serves models that denoise: the "
        "worker times steps on the transformer, the block cache, LoRA adapters and the speed stack (quantization, "
        "compile, parallel splits) act on it, and every request reports and is cancelled at its steps. Serving it "
        "needs a kind of model without a denoising loop across validation (refusing steps, guidance, a cache "
        "policy, previews and adapters), the worker, the speed stack and ListModels (no steps), more than a small "
        "change; kandinsky6-sr, the served video upscaler, denoises its tiles in steps"
    ),
    **_COMMON,
)

#: LTX-2.5's diffusion decoder: latents to pixels.
LTX2_DIFFUSION_DECODE = FamilySpec(
    name="ltx2-diffusion-decode",
    pipeline_classes=("LTX2VideoDiffusionDecodePipeline",),
    build_call_kwargs=video_call_kwargs(),
    unsupported_reason=(
        "it is a decoder whose only input is an LTX-2 pipeline's video latents, which no request can carry (the "
        "served LTX-2 families return decoded frames): no prompt, no video input, no guidance, and its denoising "
        "steps run inside the diffusion decoder model's decode call, not through a loop the engine follows"
    ),
    **_COMMON,
)
