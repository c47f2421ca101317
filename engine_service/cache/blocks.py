"""The modules that stand in for a block group while a cached transformer runs.

During a cached forward, the transformer's block list is swapped for a list
holding one runner, and the other lists of the group for empty lists. The
transformer's loop therefore calls the runner once, with the arguments its first
block would have received; the runner calls the real blocks (compiled or not,
untouched) and skips what the cache allows.

A transformer whose loop works between blocks keeps its loop instead: each block
is swapped for a :class:`BlockSlot` that hands the call, with the arguments the
loop prepared for that block, to a per-block runner. A skipped middle block
then passes its input through, except the first, which adds the cached residual.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
import torch.distributed as dist

from engine_service.cache.config import CacheType
from engine_service.cache.context import CacheContext
from engine_service.cache.patterns import ENCODER_NAME, BlockCall, ForwardPattern, PatternError, positional_names


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


@contextlib.contextmanager
def _first_block_signal(context: CacheContext, block: torch.nn.Module, hidden: torch.Tensor) -> Iterator[None]:
    """TeaCache: hand the context the first block's timestep-modulated input while ``block`` runs.

    That is the (first) output of the block's ``norm1``, the adaptive norm that applies the
    timestep modulation in most DiT blocks; without one, the block's input hidden states.
    """
    if context.indicator != CacheType.TeaCache:
        yield
        return
    norm = getattr(block, "norm1", None)
    if not isinstance(norm, torch.nn.Module):
        context.set_signal(hidden)
        yield
        return
    captured: list[torch.Tensor] = []

    def capture(_module, _inputs, output):
        if not captured:
            first = output[0] if isinstance(output, (tuple, list)) else output
            if isinstance(first, torch.Tensor):
                captured.append(first)

    handle = norm.register_forward_hook(capture)
    try:
        yield
    finally:
        handle.remove()
        context.set_signal(captured[0] if captured else hidden)


class _GroupRunner(torch.nn.Module):
    """Common parts: the blocks (not registered as children), their pattern and context."""

    def __init__(
        self,
        context: CacheContext,
        blocks: Sequence[torch.nn.Module],
        pattern: ForwardPattern,
        hidden: str,
        encoder: str = ENCODER_NAME,
    ):
        super().__init__()
        # A plain tuple: the runner must not re-register the transformer's own blocks.
        object.__setattr__(self, "blocks", tuple(blocks))
        object.__setattr__(self, "context", context)
        self.pattern = pattern
        self.hidden_name = hidden
        self.encoder_name = encoder
        self.positions = tuple(positional_names(block) for block in self.blocks)
        config = context.cache_config
        self.first = config.Fn_compute_blocks
        self.last = len(self.blocks) - config.Bn_compute_blocks

    def _call(self, args: tuple, kwargs: dict, index: int = 0) -> BlockCall:
        """The call of block ``index`` (a group runner gets the first block's call)."""
        positions = self.positions[index] if self.positions else ()
        return BlockCall(self.pattern, self.hidden_name, args, kwargs, self.encoder_name, positions)

    def __getattr__(self, name: str):
        # Standing at the list's first position, the runner answers reads of the first block's
        # attributes (DiT reads ``transformer_blocks[0].norm1`` after its loop).
        try:
            return super().__getattr__(name)
        except AttributeError:
            blocks = self.__dict__.get("blocks")
            if not blocks:
                raise
            return getattr(blocks[0], name)

    def extra_repr(self) -> str:
        return f"{self.context.name}: {len(self.blocks)} blocks, {self.pattern.name}"


class CachedBlocks(_GroupRunner):
    """DBCache: run the first Fn blocks, then either the middle blocks or their cached residual, then Bn."""

    def forward(self, *args, **kwargs):
        call = self._call(args, kwargs)
        context, blocks = self.context, self.blocks
        hidden, encoder = call.hidden, call.encoder
        start = hidden
        with _first_block_signal(context, blocks[0], hidden):
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
        if context.decide(fn_residual, hidden, encoder):
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
        decisions = context.decide_groups(
            [fn_residual.index_select(0, group_rows) for group_rows in rows], hidden, encoder
        )
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

    def __init__(self, context, blocks, pattern, hidden, non_prune_block_ids: Sequence[int] = (), encoder=ENCODER_NAME):
        super().__init__(context, blocks, pattern, hidden, encoder)
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
            if context.may_prune(block_id, hidden, encoder):
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


class BlockSlot(torch.nn.Module):
    """Stands in for block ``index`` of a per-block runner inside the transformer's own loop."""

    def __init__(self, runner: _PerBlockRunner, index: int):
        super().__init__()
        object.__setattr__(self, "runner", runner)  # not a child: the runner is not the transformer's
        self.index = index

    def forward(self, *args, **kwargs):
        return self.runner.block_call(self.index, args, kwargs)

    def __getattr__(self, name: str):
        # Reads of the block's own attributes go to the block it stands in for.
        try:
            return super().__getattr__(name)
        except AttributeError:
            runner, index = self.__dict__.get("runner"), self.__dict__.get("index")
            if runner is None or index is None:
                raise
            return getattr(runner.blocks[index], name)

    def extra_repr(self) -> str:
        return f"block {self.index} of {self.runner.context.name}"


class _PerBlockRunner(_GroupRunner):
    """A runner called once per block, in order, by the transformer's loop."""

    def __init__(self, context, blocks, pattern, hidden, encoder=ENCODER_NAME):
        super().__init__(context, blocks, pattern, hidden, encoder)
        self._expected = 0

    def slots(self) -> list[BlockSlot]:
        return [BlockSlot(self, index) for index in range(len(self.blocks))]

    def block_call(self, index: int, args: tuple, kwargs: dict):
        if index != 0 and index != self._expected:
            raise PatternError(
                f"{self.context.name}: the transformer called block {index} after block {self._expected - 1}; "
                "per-block caching needs its blocks called once each, in order"
            )
        self._expected = (index + 1) % len(self.blocks)
        call = self._call(args, kwargs, index)
        return call.output(*self.on_block(index, call, call.hidden, call.encoder))

    def on_block(self, index: int, call: BlockCall, hidden, encoder):
        raise NotImplementedError


class PerBlockCachedBlocks(_PerBlockRunner):
    """DBCache with the transformer's loop kept: the same decisions as :class:`CachedBlocks`.

    The Fn residual is the output of block Fn-1 minus the input of block 0; the middle
    residual is the output of the last middle block minus the input of the first. A cached
    step adds it at the first middle block; the other middle blocks pass their input through.
    """

    def on_block(self, index: int, call: BlockCall, hidden, encoder):
        block = self.blocks[index]
        if index == 0:
            self._start = hidden
        if index < self.first or index >= self.last:
            with _first_block_signal(self.context, block, hidden) if index == 0 else contextlib.nullcontext():
                out_hidden, out_encoder = call.run(block, hidden, encoder)
            if index == self.first - 1:
                start = self._start
                self._fn_residual = out_hidden - start if out_hidden.shape == start.shape else out_hidden
                self._start = None
            return out_hidden, out_encoder
        if index == self.first:
            return self._enter_middle(call, hidden, encoder)
        if self._cached is True:
            return hidden, encoder
        out_hidden, out_encoder = call.run(block, hidden, encoder)
        if index == self.last - 1:
            out_hidden, out_encoder = self._leave_middle(out_hidden, out_encoder)
        return out_hidden, out_encoder

    def _enter_middle(self, call: BlockCall, hidden, encoder):
        context, fn_residual = self.context, self._fn_residual
        rows = context.group_rows(hidden)
        self._rows = rows
        if rows is None:
            self._decisions = [context.decide(fn_residual, hidden, encoder)]
        else:
            self._decisions = context.decide_groups(
                [fn_residual.index_select(0, group_rows) for group_rows in rows], hidden, encoder
            )
        self._cached = all(self._decisions)
        self._middle_start = (hidden, encoder)
        if self._cached:
            if rows is None:
                out = self._add_cached(hidden, encoder)
            else:
                out = self._add_cached(hidden.clone(), None if encoder is None else encoder.clone())
            self._middle_start = None
            return out
        out_hidden, out_encoder = call.run(self.blocks[self.first], hidden, encoder)
        if self.first == self.last - 1:
            out_hidden, out_encoder = self._leave_middle(out_hidden, out_encoder)
        return out_hidden, out_encoder

    def _add_cached(self, hidden, encoder, only_cached_groups: bool = False):
        """Middle start + cached residual, into ``hidden``/``encoder`` (every group, or the cached ones)."""
        context, (start_hidden, start_encoder) = self.context, self._middle_start
        rows = self._rows
        for group, cached in enumerate(self._decisions):
            if only_cached_groups and not cached:
                continue
            if rows is not None:
                context.select_group(group)
            cached_hidden, cached_encoder = context.cached_residuals()
            if rows is None:
                hidden = start_hidden + cached_hidden
                if cached_encoder is not None and encoder is not None and start_encoder is not None:
                    encoder = start_encoder + cached_encoder
                continue
            group_rows = rows[group]
            hidden.index_copy_(0, group_rows, start_hidden.index_select(0, group_rows) + cached_hidden)
            if cached_encoder is not None and encoder is not None and start_encoder is not None:
                encoder.index_copy_(0, group_rows, start_encoder.index_select(0, group_rows) + cached_encoder)
        return hidden, encoder

    def _leave_middle(self, hidden, encoder):
        """After the last middle block of a computed step: store the residuals of the computed groups."""
        context, (start_hidden, start_encoder) = self.context, self._middle_start
        with_encoder = self.pattern.returns_encoder and encoder is not None and start_encoder is not None
        if with_encoder and encoder.shape != start_encoder.shape:
            with_encoder = False
        rows = self._rows
        if rows is None:
            encoder_residual = encoder - start_encoder if with_encoder else None
            context.store(self._fn_residual, hidden - start_hidden, encoder_residual)
        else:
            for group, (group_rows, cached) in enumerate(zip(rows, self._decisions, strict=True)):
                if cached:
                    continue
                context.select_group(group)
                encoder_residual = None
                if with_encoder:
                    encoder_residual = encoder.index_select(0, group_rows) - start_encoder.index_select(0, group_rows)
                hidden_residual = hidden.index_select(0, group_rows) - start_hidden.index_select(0, group_rows)
                context.store(self._fn_residual.index_select(0, group_rows), hidden_residual, encoder_residual)
            if any(self._decisions):
                hidden, encoder = self._add_cached(hidden.clone(), None if encoder is None else encoder.clone(), True)
        self._middle_start = None
        return hidden, encoder


class PerBlockHintedCachedBlocks(PerBlockCachedBlocks):
    """Per-block DBCache for a loop that adds a hint to the hidden states after blocks: the
    residuals of a ControlNet (FLUX, Qwen-Image), the control hints of Wan VACE, or Wan-Animate's
    face adapter output (a cross-attention of the hidden states to the face video's motion).

    A computed step stores the middle residual from the input of the first middle block to the
    output of the last, before the loop adds that block's hint: it holds the hints added after
    every other middle block, once. On a cached step the first middle block returns its input
    plus that residual and the other middle blocks return the same tensors, so the hints the loop
    adds after them are dropped (the residual has them); the hint after the last middle block is
    added by the loop, once, as on a computed step. A hint the loop computes from the hidden states
    (Wan-Animate's face adapter) is still computed after the cached middle blocks, and dropped with
    them. At threshold 0 every block runs as without a cache.
    """

    def on_block(self, index: int, call: BlockCall, hidden, encoder):
        if self.first < index < self.last and self._cached is True:
            return self._cached_output
        out = super().on_block(index, call, hidden, encoder)
        if index == self.first:
            self._cached_output = out if self._cached is True else None
        return out


class PerBlockPrunedBlocks(_PerBlockRunner):
    """DBPrune with the transformer's loop kept: each prunable block decides on its own input."""

    def __init__(self, context, blocks, pattern, hidden, non_prune_block_ids: Sequence[int] = (), encoder=ENCODER_NAME):
        super().__init__(context, blocks, pattern, hidden, encoder)
        self.protected = frozenset(non_prune_block_ids)

    def on_block(self, index: int, call: BlockCall, hidden, encoder):
        context = self.context
        if index == 0:
            context.begin_prune_step()
            self._prunable = 0
        if index < self.first or index >= self.last or index in self.protected:
            hidden, encoder = call.run(self.blocks[index], hidden, encoder)
        else:
            self._prunable += 1
            if context.may_prune(index, hidden, encoder):
                stored_hidden, stored_encoder = context.state.block_residuals[index]
                hidden = hidden + stored_hidden
                if stored_encoder is not None and encoder is not None:
                    encoder = encoder + stored_encoder
            else:
                block_input, block_encoder = hidden, encoder
                hidden, encoder = call.run(self.blocks[index], hidden, encoder)
                encoder_residual = _residual(encoder, block_encoder) if self.pattern.returns_encoder else None
                context.store_block(index, block_input, hidden - block_input, encoder_residual)
        if index == len(self.blocks) - 1:
            context.end_prune_step(self._prunable)
        return hidden, encoder


__all__ = [
    "BlockSlot",
    "CachedBlocks",
    "PerBlockCachedBlocks",
    "PerBlockHintedCachedBlocks",
    "PerBlockPrunedBlocks",
    "PrunedBlocks",
]
