"""DiT pipelines of diffusers whose outputs are neither images nor videos: known, not served.

ACE-Step, Stable Audio (Open and 3, with 3's audio-to-audio and inpainting) and
LongCat-AudioDiT generate audio waveforms from text (and lyrics, or an input
audio clip); RFD4-Proteina generates protein structures (backbone and atom
coordinates) from structure conditioning. They run a transformer over a latent
sequence as the image DiTs do, but a request's outputs are images and videos
(PNG, MP4 and PNG frames) and its inputs are text, images and videos, so the
engine has nothing to send back and, for the audio-to-audio and protein
pipelines, nothing to pass in. Sizes and frames do not apply; the step and
guidance defaults are the pipelines' own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine_service.models.spec import FamilySpec

if TYPE_CHECKING:
    from collections.abc import Sequence

    from diffusers import DiffusionPipeline

    from engine_service.jobs import JobSpec

_AUDIO = "it generates audio waveforms, while the engine's outputs are images and videos (PNG, MP4, PNG frames)"


def _no_call(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
    """Never reached: the registry refuses to load these pipelines (``unsupported_reason``)."""
    raise RuntimeError(f"{type(pipe).__name__} is known but not served")


_COMMON: dict[str, Any] = {
    "latent_patch": 1,
    "default_width": 0,
    "default_height": 0,
    "build_call_kwargs": _no_call,
}

ACE_STEP = FamilySpec(
    name="ace-step",
    pipeline_classes=("AceStepPipeline",),
    output_kind="audio",
    default_steps=8,
    default_guidance_scale=7.0,
    block_lists=("layers",),
    unsupported_reason=_AUDIO + " (songs from a prompt and lyrics)",
    **_COMMON,
)

STABLE_AUDIO = FamilySpec(
    name="stable-audio",
    pipeline_classes=("StableAudioPipeline",),
    output_kind="audio",
    default_steps=100,
    default_guidance_scale=7.0,
    block_lists=("transformer_blocks",),
    uses_negative_prompt=True,
    unsupported_reason=_AUDIO,
    **_COMMON,
)

STABLE_AUDIO_3 = FamilySpec(
    name="stable-audio-3",
    pipeline_classes=("StableAudio3Pipeline", "StableAudio3AudioToAudioPipeline", "StableAudio3InpaintPipeline"),
    output_kind="audio",
    default_steps=100,
    default_guidance_scale=1.0,
    block_lists=("transformer_blocks",),
    uses_negative_prompt=True,
    unsupported_reason=_AUDIO + "; its audio-to-audio and inpainting pipelines also take an input audio clip",
    **_COMMON,
)

LONGCAT_AUDIO_DIT = FamilySpec(
    name="longcat-audio-dit",
    pipeline_classes=("LongCatAudioDiTPipeline",),
    output_kind="audio",
    default_steps=16,
    default_guidance_scale=4.0,
    block_lists=("blocks",),
    uses_negative_prompt=True,
    unsupported_reason=_AUDIO,
    **_COMMON,
)

RFD4_PROTEINA = FamilySpec(
    name="rfd4-proteina",
    pipeline_classes=("RFD4ProteinaPipeline",),
    output_kind="protein structure",
    default_steps=60,
    default_guidance_scale=1.0,
    block_lists=("transformer_layers",),
    unsupported_reason=(
        "it generates protein structures (atom coordinates) from structure conditioning (residue masks, "
        "coordinates, token types), not images or videos from text and images"
    ),
    **_COMMON,
)
