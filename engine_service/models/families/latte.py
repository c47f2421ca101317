"""Latte text-to-video (``LattePipeline``).

A PixArt-style video transformer: ``transformer_blocks`` (spatial, the tokens of one
frame) and ``temporal_transformer_blocks`` (one token position across the frames) run in
alternation inside one loop of the transformer's ``forward``. Around every temporal block
the loop reshapes the hidden states from ``[B*F, S, C]`` to ``[B*S, F, C]`` and back, and
after the first spatial block it adds ``temp_pos_embed``. The cache cannot stand in for those
two lists as they are: one runner in place of a list ends the loop's ``zip`` at once, and per
block the input and output of a span of blocks differ in layout.

So the engine serves it with each spatial block and the temporal block after it as one
:class:`LattePairBlock` over the spatial layout, doing exactly what the loop does for that
index (``temp_pos_embed`` inside the first pair, so a cached step's residual holds it once,
from the pair that added it or from the residual of the pairs that include it). A forward
pre-hook records the call's frame count and temporal switch for the pairs and hands the
loop ``enable_temporal_attentions=False``, so the loop runs the pairs alone where it ran the
spatial blocks: without a cache the output is the stock transformer's bit for bit, and the
cache sees one list of whole pairs (threshold 0 bit-identical). The pairs' rows are the
batch's frames, not its samples, so the cache's per-request decisions could not tell the
requests of a batch apart: its jobs run alone. It makes only ``video_length`` frames (its
temporal position embedding's length, 16 in the released checkpoint); another count is
INVALID_ARGUMENT. CFG with a negative prompt in the same batch; captions as given.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from engine_service.models.spec import FamilySpec
from engine_service.models.video import video_call_kwargs

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline

    from engine_service.jobs import JobSpec

_video_kwargs = video_call_kwargs()


@dataclasses.dataclass
class _Call:
    """What the transformer's forward was called with, for its pair blocks: the frames of its hidden
    states and whether it runs its temporal blocks."""

    frames: int = 1
    temporal: bool = True


class LattePairBlock(torch.nn.Module):
    """Spatial block ``index`` of a Latte transformer and the temporal block its loop runs after it,
    as one block over the spatial layout ``[batch * frames, tokens, C]``.

    It does what the loop of ``LatteTransformer3DModel.forward`` (diffusers 0.42.1) does for one
    index: the spatial block, then, when the call enables temporal attention, the reshape to
    ``[batch * tokens, frames, C]``, ``temp_pos_embed`` added after the first spatial block (for more
    than one frame), the temporal block with the timestep per token, and the reshape back. The
    temporal block stays registered in ``temporal_transformer_blocks`` only.
    """

    def __init__(self, spatial: torch.nn.Module, temporal: torch.nn.Module, index: int, owner: Any, call: _Call):
        super().__init__()
        self.spatial = spatial
        # Plain references: the temporal block and the transformer stay registered where they were.
        self.__dict__["_temporal"] = temporal
        self.__dict__["_owner"] = owner
        self.__dict__["_call"] = call
        self.index = index

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        timestep: torch.Tensor | None = None,
        cross_attention_kwargs: dict[str, Any] | None = None,
        class_labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        hidden_states = self.spatial(
            hidden_states,
            attention_mask,
            encoder_hidden_states,
            encoder_attention_mask,
            timestep,
            cross_attention_kwargs,
            class_labels,
        )
        call = self._call
        if not call.temporal:
            return hidden_states
        frames = call.frames
        batch = hidden_states.shape[0] // frames
        tokens, channels = hidden_states.shape[-2], hidden_states.shape[-1]
        hidden_states = hidden_states.reshape(batch, -1, tokens, channels).permute(0, 2, 1, 3)
        hidden_states = hidden_states.reshape(-1, hidden_states.shape[-2], hidden_states.shape[-1])
        if self.index == 0 and frames > 1:
            hidden_states = hidden_states + self._owner.temp_pos_embed.to(hidden_states.dtype)
        # The loop's timestep_temp: each sample's timestep once per token (timestep holds it once per frame).
        timestep_temp = timestep[::frames].repeat_interleave(tokens, dim=0, output_size=batch * tokens)
        hidden_states = self._temporal(hidden_states, None, None, None, timestep_temp, None, None)
        hidden_states = hidden_states.reshape(batch, -1, hidden_states.shape[-2], hidden_states.shape[-1])
        hidden_states = hidden_states.permute(0, 2, 1, 3)
        return hidden_states.reshape(-1, hidden_states.shape[-2], hidden_states.shape[-1])


def _pair_blocks(pipe: DiffusionPipeline) -> None:
    """Replace the transformer's spatial blocks by :class:`LattePairBlock`s (one per spatial and temporal
    pair) and let its own loop run them alone: a forward pre-hook records the call's frames and temporal
    switch for the pairs and hands the loop ``enable_temporal_attentions=False``, so the loop calls each
    pair where it called the spatial block, and the cache sees one list of whole pairs."""
    transformer = pipe.transformer
    if isinstance(transformer.transformer_blocks[0], LattePairBlock):
        return
    call = _Call()
    transformer.transformer_blocks = torch.nn.ModuleList(
        LattePairBlock(spatial, temporal, index, transformer, call)
        for index, (spatial, temporal) in enumerate(
            zip(transformer.transformer_blocks, transformer.temporal_transformer_blocks, strict=True)
        )
    )

    def hand_over(module: torch.nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        hidden_states = kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]
        call.frames = hidden_states.shape[2]
        call.temporal = bool(kwargs.get("enable_temporal_attentions", True))
        return args, {**kwargs, "enable_temporal_attentions": False}

    transformer.register_forward_pre_hook(hand_over, with_kwargs=True)


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
    block_lists=("transformer_blocks",),
    build_call_kwargs=_latte_call_kwargs,
    default_frames=16,
    native_frames=lambda pipe: pipe.transformer.config.video_length,
    uses_negative_prompt=True,
    call_defaults={"clean_caption": False},
    prepare_pipeline=_pair_blocks,
    generator_per_output=False,
)
