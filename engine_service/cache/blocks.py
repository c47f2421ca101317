"""The modules that stand in for a block group while a cached transformer runs.

During a cached forward, the transformer's block list is swapped for a list
holding one runner, and the other lists of the group for empty lists. The
transformer's loop therefore calls the runner once, with the arguments its first
block would have received; the runner calls the real blocks (compiled or not,
untouched) and skips what the cache allows.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist

from engine_service.cache.context import CacheContext
from engine_service.cache.patterns import BlockCall, ForwardPattern


def _residual(after: torch.Tensor | None, before: torch.Tensor | None) -> torch.Tensor | None:
    if after is None or before is None or after.shape != before.shape:
        return None
    return after - before


def _first_blocks_residual(after: torch.Tensor, before: torch.Tensor) -> torch.Tensor:
    """Output of the first Fn blocks minus their input: the signal the cache decides on.

    Under context parallel the sequence may be split inside the first block (diffusers
    splits Wan's at ``blocks.0``): the output then holds this rank's slice of the
    sequence (dim 1, ``tensor_split`` over the ranks, as diffusers cuts it), and the
    residual is taken against the same slice of the input.
    """
    if after.shape == before.shape:
        return after - before
    if dist.is_available() and dist.is_initialized() and before.dim() == after.dim() >= 2:
        piece = before.tensor_split(dist.get_world_size(), dim=1)[dist.get_rank()]
        if piece.shape == after.shape:
            return after - piece
    return after


class _GroupRunner(torch.nn.Module):
    """Common parts: the blocks (not registered as children), their pattern and context."""

    def __init__(self, context: CacheContext, blocks: Sequence[torch.nn.Module], pattern: ForwardPattern, hidden: str):
        super().__init__()
        # A plain tuple: the runner must not re-register the transformer's own blocks.
        object.__setattr__(self, "blocks", tuple(blocks))
        object.__setattr__(self, "context", context)
        self.pattern = pattern
        self.hidden_name = hidden
        config = context.cache_config
        self.first = config.Fn_compute_blocks
        self.last = len(self.blocks) - config.Bn_compute_blocks

    def _call(self, args: tuple, kwargs: dict) -> BlockCall:
        return BlockCall(self.pattern, self.hidden_name, args, kwargs)

    def extra_repr(self) -> str:
        return f"{self.context.name}: {len(self.blocks)} blocks, {self.pattern.name}"


class CachedBlocks(_GroupRunner):
    """DBCache: run the first Fn blocks, then either the middle blocks or their cached residual, then Bn."""

    def forward(self, *args, **kwargs):
        call = self._call(args, kwargs)
        context, blocks = self.context, self.blocks
        hidden, encoder = call.hidden, call.encoder
        start = hidden
        for block in blocks[: self.first]:
            hidden, encoder = call.run(block, hidden, encoder)
        fn_residual = _first_blocks_residual(hidden, start)
        rows = context.group_rows(hidden)
        if rows is not None:
            hidden, encoder = self._middle_per_sample_group(call, rows, hidden, encoder, fn_residual)
        else:
            hidden, encoder = self._middle(call, hidden, encoder, fn_residual)
        for block in blocks[self.last :]:
            hidden, encoder = call.run(block, hidden, encoder)
        return call.output(hidden, encoder)

    def _run_middle(self, call: BlockCall, hidden, encoder):
        for block in self.blocks[self.first : self.last]:
            hidden, encoder = call.run(block, hidden, encoder)
        return hidden, encoder

    def _middle(self, call: BlockCall, hidden, encoder, fn_residual):
        """One decision for the whole batch."""
        context = self.context
        if context.decide(fn_residual):
            cached_hidden, cached_encoder = context.cached_residuals()
            hidden = hidden + cached_hidden
            if cached_encoder is not None and encoder is not None:
                encoder = encoder + cached_encoder
        else:
            middle_start, middle_encoder = hidden, encoder
            hidden, encoder = self._run_middle(call, hidden, encoder)
            encoder_residual = _residual(encoder, middle_encoder) if self.pattern.returns_encoder else None
            context.store(fn_residual, hidden - middle_start, encoder_residual)
        return hidden, encoder

    def _middle_per_sample_group(self, call: BlockCall, rows: list[torch.Tensor], hidden, encoder, fn_residual):
        """One decision per sample group, each from its own rows; the middle blocks run unless all cache.

        Attention never mixes samples, so a group's rows come out as they would alone: a cached
        group gets its own stored residual, a computed group stores its own rows.
        """
        context = self.context
        decisions = context.decide_groups([fn_residual.index_select(0, group_rows) for group_rows in rows])
        middle_start, middle_encoder = hidden, encoder
        if all(decisions):
            hidden, encoder = hidden.clone(), None if encoder is None else encoder.clone()
        else:
            hidden, encoder = self._run_middle(call, hidden, encoder)
        with_encoder = self.pattern.returns_encoder and encoder is not None and middle_encoder is not None
        for group, (group_rows, cached) in enumerate(zip(rows, decisions, strict=True)):
            context.select_group(group)
            if cached:
                cached_hidden, cached_encoder = context.cached_residuals()
                hidden.index_copy_(0, group_rows, middle_start.index_select(0, group_rows) + cached_hidden)
                if cached_encoder is not None and encoder is not None:
                    encoder.index_copy_(0, group_rows, middle_encoder.index_select(0, group_rows) + cached_encoder)
                continue
            hidden_residual = hidden.index_select(0, group_rows) - middle_start.index_select(0, group_rows)
            encoder_residual = None
            if with_encoder and encoder.shape == middle_encoder.shape:
                encoder_residual = encoder.index_select(0, group_rows) - middle_encoder.index_select(0, group_rows)
            context.store(fn_residual.index_select(0, group_rows), hidden_residual, encoder_residual)
        return hidden, encoder


class PrunedBlocks(_GroupRunner):
    """DBPrune: every block outside Fn, Bn and the never-pruned ids may add its stored residual instead."""

    def __init__(self, context, blocks, pattern, hidden, non_prune_block_ids: Sequence[int] = ()):
        super().__init__(context, blocks, pattern, hidden)
        self.protected = frozenset(non_prune_block_ids)

    def forward(self, *args, **kwargs):
        call = self._call(args, kwargs)
        context = self.context
        hidden, encoder = call.hidden, call.encoder
        context.begin_prune_step()
        prunable = 0
        for block_id, block in enumerate(self.blocks):
            if block_id < self.first or block_id >= self.last or block_id in self.protected:
                hidden, encoder = call.run(block, hidden, encoder)
                continue
            prunable += 1
            if context.may_prune(block_id, hidden):
                stored_hidden, stored_encoder = context.state.block_residuals[block_id]
                hidden = hidden + stored_hidden
                if stored_encoder is not None and encoder is not None:
                    encoder = encoder + stored_encoder
                continue
            block_input, block_encoder = hidden, encoder
            hidden, encoder = call.run(block, hidden, encoder)
            encoder_residual = _residual(encoder, block_encoder) if self.pattern.returns_encoder else None
            context.store_block(block_id, block_input, hidden - block_input, encoder_residual)
        context.end_prune_step(prunable)
        return call.output(hidden, encoder)


__all__ = ["CachedBlocks", "PrunedBlocks"]
