"""NVIDIA Cosmos 3 Omni (``Cosmos3OmniPipeline``): text-to-video and image-to-video.

One transformer runs a Qwen3-style language model over two packed, batch-less
sequences of one sample: the prompt's tokens (``und_seq``, ``[tokens, C]``, causal
attention among themselves) and the generated tokens (``gen_seq``: Wan 2.2 VAE
latents, 16x, patchified 2x2 inside the transformer, attending to the text and to
each other). The text tokens never see the generated ones, so they leave every
block the same at every step: the cache decides on the generated tokens and
carries the text tokens as its second stream (``LAYOUT_HIDDEN``,
``LAYOUT_STREAMS``). CFG runs the negative prompt as a second transformer call
(none at guidance 1).

The pipeline makes one sample per call (a prompt list collapses to its first
prompt) and draws its noise from one generator: a request asks for one output
(``num_outputs`` above 1 is INVALID_ARGUMENT) and its jobs never join a batch.
It returns the video as ``video`` without an output axis. The pipeline conditions
on the frame rate (positions and its duration sentence), so the request's ``fps``
is passed on. An optional ``image`` is the first frame of an image-to-video run.

NVIDIA's guardrail is optional here: a checkpoint whose ``model_index.json`` sets
``enable_safety_checker`` true builds ``CosmosSafetyChecker``, which needs the
``cosmos_guardrail`` package (not installed by ditserve; its models come from the
Hugging Face hub), and loading fails naming it. Sound, action and video-to-video
generation are not offered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine_service.models.inputs import image_of
from engine_service.models.spec import FamilySpec
from engine_service.models.video import mean_std, video_preview

if TYPE_CHECKING:
    from collections.abc import Sequence

    from diffusers import DiffusionPipeline

    from engine_service.jobs import JobSpec


def _call_kwargs(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
    (job,) = jobs  # one job per call (generator_per_output=False), one output (max_outputs=1)
    return {
        "prompt": job.prompt,
        "negative_prompt": job.negative_prompt,
        "image": image_of(jobs, "image"),
        "width": job.width,
        "height": job.height,
        "num_frames": job.num_frames,
        "fps": float(job.fps),
        "num_inference_steps": job.num_inference_steps,
        "guidance_scale": job.guidance_scale,
    }


def _read_output(output: Any) -> Any:
    """The pipeline's ``video`` (frames, H, W, 3) as one output: (1, frames, H, W, 3)."""
    return output.video[None]


COSMOS3_OMNI = FamilySpec(
    name="cosmos3-omni",
    pipeline_classes=("Cosmos3OmniPipeline",),
    output_kind="video",
    latent_patch=1,  # the transformer pads latents to its 2x2 patches: sizes are multiples of the VAE's 16
    default_width=1280,
    default_height=720,
    default_steps=35,
    default_guidance_scale=6.0,
    block_lists=("layers",),
    build_call_kwargs=_call_kwargs,
    # The last frame: with an input image the first one is that image (the whole latent video is decoded).
    decode_latents=video_preview(mean_std, frame="last"),
    default_frames=189,
    frame_stride=4,
    uses_negative_prompt=True,
    input_roles=("image",),
    generator_per_output=False,
    max_outputs=1,
    read_output=_read_output,
)
