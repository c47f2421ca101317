"""Latte text-to-video (``LattePipeline``): known, not served.

A PixArt-style video transformer: ``transformer_blocks`` (spatial, tokens of one
frame) and ``temporal_transformer_blocks`` (one token across the frames) run in
alternation inside one loop of the transformer's ``forward``. Around every
temporal block the loop reshapes the hidden states from ``[B*F, S, C]`` to
``[B*S, F, C]`` and back, and after the first spatial block it adds
``temp_pos_embed``.

The cache cannot stand in for these blocks. Swapping the block lists for one
runner and an empty list ends the loop's ``zip`` at once; standing in per block,
the rows of the blocks' hidden
states are frames or token positions, not the batch's samples, so the cache's
per-request decision (sample groups along dim 0) would mix requests; and on a
skipped step the residual of the whole group, which already holds
``temp_pos_embed``, would get it added a second time by the loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from engine_service.models.spec import FamilySpec
from engine_service.models.video import video_call_kwargs

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline

    from engine_service.jobs import JobSpec

_video_kwargs = video_call_kwargs()


def _latte_call_kwargs(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
    """The video call with Latte's keywords: ``video_length`` frames, ``num_images_per_prompt``."""
    kwargs = _video_kwargs(pipe, jobs)
    kwargs["video_length"] = kwargs.pop("num_frames")
    kwargs["num_images_per_prompt"] = kwargs.pop("num_videos_per_prompt")
    return kwargs


LATTE = FamilySpec(
    name="latte",
    pipeline_classes=("LattePipeline",),
    output_kind="video",
    latent_patch=2,
    default_width=512,
    default_height=512,
    default_steps=50,
    default_guidance_scale=7.5,
    block_lists=("transformer_blocks", "temporal_transformer_blocks"),
    build_call_kwargs=_latte_call_kwargs,
    default_frames=16,
    uses_negative_prompt=True,
    unsupported_reason=(
        "its transformer alternates spatial and temporal blocks in one loop, reshaping the hidden states between "
        "[batch*frames, tokens, C] and [batch*tokens, frames, C] and adding temp_pos_embed after the first spatial "
        "block: one runner for the blocks ends the loop's zip at once, and per block the group's input and output "
        "differ in layout and a skipped step's residual would get temp_pos_embed a second time"
    ),
)
