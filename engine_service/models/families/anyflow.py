"""AnyFlow text-to-video (``AnyFlowPipeline``): a flow-map-distilled Wan 2.1 transformer, one list of blocks.

The transformer takes two timesteps per token, the current one and the target of
the step (``r``), and predicts the mean velocity between them
(``FlowMapEulerDiscreteScheduler``), so few steps suffice. The Wan 2.1 VAE (4
frames per latent frame, 8x spatially) with 2x2 latent patches per token. The
pipeline keeps its latents frames-first (N, F, C, h, w). CFG, off at the
default guidance 1.0, batches the negative prompt into the same call. Its
video-continuation input (``video``, frames to continue) is not exposed: a
request's inputs are still images.

AnyFlow-FAR (``AnyFlowFARPipeline``) samples the video chunk by chunk (its
``chunk_partition`` of latent frames), each chunk a whole denoising loop of
``num_inference_steps`` with the scheduler's timesteps set anew
(``FamilySpec.denoising_loops``). The chunks follow the released checkpoints'
layout: the first latent frame alone, then chunks of 3 latent frames, the last
taking what is left (81 frames: 21 latent frames as 1 + 6 x 3 + 2). After each
chunk but the last the pipeline calls the transformer once more, at timestep 0
over the chunks made so far, to fill the attention key-value cache the next
chunks attend to: a call after the run's last scheduler step, which the block
cache always computes in full (each block writes its keys and values), and which
is no step of the request. Each block reads its own layer of that key-value cache,
picked in the transformer's loop, so the cache stands in for each block.

FAR has no previews: a step's latents hold only the chunk being sampled, and the
causal Wan VAE decodes a later chunk's frames from the frames before it, which the
step does not carry. Its video-continuation inputs (``video``, ``video_latents``)
are not exposed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from engine_service.models.spec import FamilySpec
from engine_service.models.video import frames_first, mean_std, video_call_kwargs, video_preview

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline

    from engine_service.jobs import JobSpec

#: The Wan VAE's temporal compression: ``k`` latent frames decode to ``4 (k - 1) + 1`` frames.
_TEMPORAL = 4
#: Latent frames per chunk after the first (a single latent frame) in the released checkpoints'
#: ``chunk_partition`` ``(1, 3, 3, 3, 3, 3, 3, 2)``.
_CHUNK_LATENT_FRAMES = 3


def far_chunks(frames: int) -> list[int]:
    """The ``chunk_partition`` for ``frames`` (``4 k + 1``): the first latent frame alone, then chunks
    of 3 latent frames, the last taking what is left (81 frames: ``[1, 3, 3, 3, 3, 3, 3, 2]``)."""
    rest = (frames - 1) // _TEMPORAL
    whole, left = divmod(rest, _CHUNK_LATENT_FRAMES)
    return [1] + [_CHUNK_LATENT_FRAMES] * whole + ([left] if left else [])


def far_loops(frames: int, call_defaults: Mapping[str, Any]) -> tuple[int, int]:
    """(chunks, frames made): every ``4 k + 1`` count is made, one denoising loop per chunk."""
    return len(far_chunks(frames)), frames


_far_base = video_call_kwargs()


def _far_kwargs(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
    kwargs = _far_base(pipe, jobs)
    kwargs["chunk_partition"] = far_chunks(jobs[0].num_frames)
    return kwargs


ANYFLOW = FamilySpec(
    name="anyflow",
    pipeline_classes=("AnyFlowPipeline",),
    output_kind="video",
    latent_patch=2,
    default_width=832,
    default_height=480,
    default_steps=50,
    default_guidance_scale=1.0,
    block_lists=("blocks",),
    build_call_kwargs=video_call_kwargs(),
    decode_latents=video_preview(mean_std, latents=frames_first),
    default_frames=81,
    frame_stride=4,
    uses_negative_prompt=True,
    call_defaults={"max_sequence_length": 512},
)

ANYFLOW_FAR = FamilySpec(
    name="anyflow-far",
    pipeline_classes=("AnyFlowFARPipeline",),
    output_kind="video",
    latent_patch=2,
    default_width=832,
    default_height=480,
    default_steps=50,
    default_guidance_scale=1.0,
    block_lists=("blocks",),
    build_call_kwargs=_far_kwargs,
    default_frames=81,
    frame_stride=_TEMPORAL,
    uses_negative_prompt=True,
    denoising_loops=far_loops,
    call_defaults={"max_sequence_length": 512},
)
