"""Which blocks of a transformer cache together: ``BlockAdapter`` and the known layouts.

A transformer's repeated blocks form one or more *block groups*. Each group is
one cache context: Fn counts from its first block, Bn from its last. A group is
a single block list, or several lists that run back to back with the same call
(FLUX's double-stream then single-stream blocks), merged into one sequence.

Without an explicit ``BlockAdapter``, the groups come from :data:`BLOCK_LAYOUTS`
(per transformer class, as data) or, for other transformers, from their block
lists: the lists of the classes a diffusers model names in ``_repeated_blocks``,
or else every list of modules of one class; one group per list.

Most transformers only loop over a block list; the cache then stands in for the
whole list. Some do work between their blocks (long skip connections, a fresh
per-block input concatenated and cut off again): for those, listed in
:data:`PER_BLOCK_LAYOUTS`, the transformer's own loop keeps running and the cache
stands in for each block, so that work happens exactly as without a cache.
Loops that add hints after blocks (ControlNet residuals, VACE hints; see
:data:`HINTED_LAYOUTS`) are cached per block too, by a runner that places the hints.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from engine_service.cache.config import ParamsModifier
from engine_service.cache.patterns import ENCODER_NAME, ForwardPattern

#: Transformer class name -> its block groups, in execution order. A tuple of several
#: attribute names is one group: lists that run back to back with the same arguments.
BLOCK_LAYOUTS: dict[str, tuple[tuple[str, ...], ...]] = {
    "FluxTransformer2DModel": (("transformer_blocks", "single_transformer_blocks"),),
    "HunyuanVideoTransformer3DModel": (("transformer_blocks", "single_transformer_blocks"),),
    "OvisImageTransformer2DModel": (("transformer_blocks", "single_transformer_blocks"),),
    "LongCatImageTransformer2DModel": (("transformer_blocks", "single_transformer_blocks"),),
    # Its VACE blocks compute the control hints before the main loop: they are no part of the stack.
    "WanVACETransformer3DModel": (("blocks",),),
    # Not merged: the lists' blocks have different patterns. (Its caption projections are no blocks.)
    "HiDreamImageTransformer2DModel": (("double_stream_blocks",), ("single_stream_blocks",)),
    # Not merged (the single blocks take the joined sequence); its per-block caption projections are no blocks.
    "BriaFiboTransformer2DModel": (("transformer_blocks",), ("single_transformer_blocks",)),
    # Its noise refiner runs the image tokens alone before the main list: no part of the stack.
    "BriaFibo2Transformer2DModel": (("layers",),),
    # Their text blocks refine the prompt tokens before the visual blocks: no part of the stack.
    "Kandinsky5Transformer3DModel": (("visual_transformer_blocks",),),
    "Kandinsky6Transformer3DModel": (("visual_transformer_blocks",),),
    # Served with each spatial block and the temporal block after it as one pair block (the family's
    # prepare_pipeline); its temporal list then runs inside the pairs only.
    "LatteTransformer3DModel": (("transformer_blocks",),),
}

#: Transformer class name -> the forward pattern of each block group of its default layout,
#: where reading the block's ``forward`` cannot tell (wrapper blocks, masks before the encoder).
LAYOUT_PATTERNS: dict[str, tuple[ForwardPattern, ...]] = {
    "HiDreamImageTransformer2DModel": (ForwardPattern.Pattern_0, ForwardPattern.Pattern_3),
    # (H, audio) in, (H, audio) out: Pattern_0 with the audio as E (see LAYOUT_STREAMS).
    "LTX2VideoTransformer3DModel": (ForwardPattern.Pattern_0,),
    # (text, generated) in and out: Pattern_1 with the generated tokens as H (see LAYOUT_HIDDEN).
    "Cosmos3OmniTransformer": (ForwardPattern.Pattern_1,),
    # (video, audio) in, (video, audio) out, the audio None when the pipeline makes no audio track.
    "Kandinsky6Transformer3DModel": (ForwardPattern.Pattern_0,),
}

#: Transformer class name -> the block parameter that takes the second stream of its default
#: layout, where that is not ``encoder_hidden_states``: LTX-2's and Kandinsky 6's blocks take and return
#: the video and the audio hidden states together, so the cache carries the audio as the second stream
#: (its residual stored and added like an encoder residual; the text stays a fixed argument).
LAYOUT_STREAMS: dict[str, str] = {
    "LTX2VideoTransformer3DModel": "audio_hidden_states",
    "Cosmos3OmniTransformer": "und_seq",
    # Kandinsky 6's fused blocks take the video tokens as ``vis`` and the audio tokens as ``aud``.
    "Kandinsky6Transformer3DModel": "aud",
}

#: Transformer class name -> the block parameter that takes H (the stream the cache decides on) of its
#: default layout, where that is not the block's first parameter. Cosmos 3's blocks take the text
#: tokens (``und_seq``) first and the generated tokens (``gen_seq``) second; the text tokens attend
#: only to themselves, causally, so they come out of every step the same: the decision must read the
#: generated tokens. Both are batch-less ``[tokens, C]`` sequences of one sample.
LAYOUT_HIDDEN: dict[str, str] = {"Cosmos3OmniTransformer": "gen_seq"}

#: Transformers whose loop does work between blocks, so the cache stands in for each block
#: and leaves the loop to the transformer: HunyuanDiT (long skip connections from the first
#: half of its blocks into the second), HiDream (a per-block text state concatenated before
#: each block and cut off after it, and a block counter shared by both lists), Chroma (each
#: block's own slice of the timestep modulation, cut in the loop), Qwen-Image 2.1 (each block's own
#: layer of the text/condition key-value cache, picked in the loop), Bria Fibo (each block's own text
#: encoder layer written into the text states before it, and the single blocks' sequence joined in the loop),
#: Bria Fibo 2 (its injection blocks each read their own bundle of text-encoder layers, picked in the loop),
#: AnyFlow-FAR (each block's own layer of the attention key-value cache of the earlier chunks, picked in the loop).
PER_BLOCK_LAYOUTS: frozenset[str] = frozenset(
    {
        "HunyuanDiT2DModel",
        "HiDreamImageTransformer2DModel",
        "ChromaTransformer2DModel",
        "QwenImage21Transformer2DModel",
        "BriaFiboTransformer2DModel",
        "BriaFibo2Transformer2DModel",
        "AnyFlowFARTransformer3DModel",
    }
)

#: Pipelines that hand each block of their transformer its own layer of a key-value cache (of
#: reference tokens kept after the first step), so the cache stands in for each block: FLUX.2
#: Klein KV (its transformer class also serves pipelines without that cache).
PER_BLOCK_PIPELINES: frozenset[str] = frozenset({"Flux2KleinKVPipeline"})


#: Transformers whose loop adds a hint to the hidden states after some of their blocks: Wan VACE
#: (its control hints after each of its ``vace_layers``), Wan-Animate (its face adapter's cross-attention
#: to the face video's motion, after every ``inject_face_latents_blocks``-th block). Any transformer of a
#: pipeline with a ``controlnet`` component is one too (FLUX, Qwen-Image, SD3... add the ControlNet's residuals
#: after their blocks). The cache stands in for each block of those and places the hints (see
#: ``PerBlockHintedCachedBlocks``).
HINTED_LAYOUTS: frozenset[str] = frozenset({"WanVACETransformer3DModel", "WanAnimateTransformer3DModel"})
#: Pipeline components whose presence means the transformer's loop adds hints between blocks.
HINT_COMPONENTS: tuple[str, ...] = ("controlnet",)


def pipeline_adds_hints(pipe: Any) -> bool:
    """Whether ``pipe`` feeds its transformer residuals added between blocks (it has a ControlNet)."""
    return any(isinstance(getattr(pipe, name, None), torch.nn.Module) for name in HINT_COMPONENTS)


@dataclasses.dataclass
class BlockAdapter:
    """Says where a model's blocks are, when the defaults do not.

    - ``transformer``: the module to cache (or a list of them, e.g. two experts); taken
      from ``pipe.transformer`` when omitted.
    - ``blocks`` / ``blocks_name``: the block lists, as ``ModuleList`` objects or attribute
      names; one entry per group. A tuple of names merges lists into one group. For several
      transformers, one such list per transformer.
    - ``forward_pattern``: the pattern of each group; detected when omitted.
    - ``params_modifiers``: per-group overrides of the cache and calibrator configuration.
    - ``has_separate_cfg``: whether the pipeline runs CFG as a second transformer call;
      ``None`` detects it from the transformer calls per scheduler step.
    - ``per_block``: keep the transformer's own loop and stand in for each block (for loops
      that work between blocks); ``None`` = only for the transformers in ``PER_BLOCK_LAYOUTS`` and
      the pipelines in ``PER_BLOCK_PIPELINES``.
    - ``hints``: the transformer's loop adds hints (ControlNet residuals, VACE hints) to the
      hidden states after blocks; implies ``per_block``. ``None`` = for a pipeline with a
      ``controlnet`` component and for the transformers in ``HINTED_LAYOUTS``.
    - ``encoder_name``: the block parameter that takes the second stream (E); ``None`` =
      ``encoder_hidden_states``, or the default layout's entry in ``LAYOUT_STREAMS``.
    - ``hidden_name``: the block parameter that takes H, the stream the cache decides on;
      ``None`` = the block's first parameter, or the default layout's entry in ``LAYOUT_HIDDEN``.
    """

    pipe: Any = None
    transformer: torch.nn.Module | list[torch.nn.Module] | None = None
    blocks: Any = None
    blocks_name: Any = None
    forward_pattern: ForwardPattern | list[Any] | None = None
    params_modifiers: list[ParamsModifier] | None = None
    has_separate_cfg: bool | None = None
    per_block: bool | None = None
    hints: bool | None = None
    encoder_name: str | None = None
    hidden_name: str | None = None

    def transformers(self) -> list[torch.nn.Module]:
        if self.transformer is not None:
            return list(self.transformer) if isinstance(self.transformer, (list, tuple)) else [self.transformer]
        if self.pipe is None:
            raise ValueError("BlockAdapter needs a pipe or a transformer")
        return pipeline_transformers(self.pipe)

    def groups(self) -> list[GroupSpec]:
        """The block groups of every transformer, with their patterns where given."""
        transformers = self.transformers()
        names = self._names_per_transformer(transformers)
        patterns = _per_transformer(self.forward_pattern, len(transformers))
        specs: list[GroupSpec] = []
        for index, (transformer, groups) in enumerate(zip(transformers, names, strict=True)):
            kind = type(transformer).__name__
            given = patterns[index]
            default_layout = groups == default_groups(transformer)
            if given is None and kind in LAYOUT_PATTERNS and default_layout:
                given = LAYOUT_PATTERNS[kind]
            encoder_name = self.encoder_name
            if encoder_name is None:
                encoder_name = LAYOUT_STREAMS.get(kind, ENCODER_NAME) if default_layout else ENCODER_NAME
            hidden_name = self.hidden_name
            if hidden_name is None and default_layout:
                hidden_name = LAYOUT_HIDDEN.get(kind)
            hints = self.hints
            if hints is None:
                hints = kind in HINTED_LAYOUTS or (self.pipe is not None and pipeline_adds_hints(self.pipe))
            per_block = self.per_block
            if per_block is None:
                per_block = kind in PER_BLOCK_LAYOUTS or type(self.pipe).__name__ in PER_BLOCK_PIPELINES
            for group, pattern in zip(groups, _per_group(given, len(groups)), strict=True):
                specs.append(
                    GroupSpec(transformer, index, group, pattern, per_block or hints, hints, encoder_name, hidden_name)
                )
        return specs

    def _names_per_transformer(self, transformers: list[torch.nn.Module]) -> list[tuple[tuple[str, ...], ...]]:
        given = self.blocks_name if self.blocks_name is not None else self.blocks
        if given is None:
            return [default_groups(t) for t in transformers]
        per = _per_transformer(given, len(transformers))
        return [
            tuple(_group_names(t, entry) for entry in _as_list(groups))
            for t, groups in zip(transformers, per, strict=True)
        ]


@dataclasses.dataclass(frozen=True)
class GroupSpec:
    """One block group: its transformer, the attribute names of its lists, its pattern if known."""

    transformer: torch.nn.Module
    transformer_index: int
    names: tuple[str, ...]
    pattern: ForwardPattern | None
    per_block: bool = False
    """Stand in for each block and let the transformer's loop run (see ``PER_BLOCK_LAYOUTS``)."""
    hints: bool = False
    """The loop adds hints to the hidden states after blocks (see ``HINTED_LAYOUTS``); implies per block."""
    encoder_name: str = ENCODER_NAME
    """The block parameter that takes the second stream (E) (see ``LAYOUT_STREAMS``)."""
    hidden_name: str | None = None
    """The block parameter that takes H (see ``LAYOUT_HIDDEN``); ``None`` = the block's first."""

    @property
    def name(self) -> str:
        return "+".join(self.names)

    def blocks(self) -> list[torch.nn.Module]:
        return [block for name in self.names for block in getattr(self.transformer, name)]


#: Pipeline components that denoise the unconditional branch of CFG on their own: a second transformer
#: called once per step beside ``transformer`` (Ideogram 4's asymmetric CFG, trained separately). Its
#: calls are the CFG branch of the step (as a pipeline's second call of one transformer would be), in
#: contexts of its own.
CFG_TRANSFORMERS: tuple[str, ...] = ("unconditional_transformer",)


#: Pipeline components that denoise in turn: ``transformer`` and, for two experts (Wan 2.2 A14B's
#: high- and low-noise transformers), ``transformer_2``.
EXPERT_TRANSFORMERS: tuple[str, ...] = ("transformer", "transformer_2")


def denoising_components(pipe: Any) -> list[tuple[str, torch.nn.Module]]:
    """``(component name, module)`` of each denoising transformer the pipeline has, in order:
    ``EXPERT_TRANSFORMERS``, then the CFG branch's (``CFG_TRANSFORMERS``). Empty when it has none."""
    found = [(name, getattr(pipe, name, None)) for name in (*EXPERT_TRANSFORMERS, *CFG_TRANSFORMERS)]
    return [(name, module) for name, module in found if isinstance(module, torch.nn.Module)]


def pipeline_transformers(pipe: Any) -> list[torch.nn.Module]:
    """The pipeline's denoising transformers (:func:`denoising_components`); ValueError when it has none."""
    transformers = [module for _, module in denoising_components(pipe)]
    if not transformers:
        raise ValueError(f"{type(pipe).__name__} has no transformer to cache")
    return transformers


def runs_cfg_branch(pipe: Any, transformer: torch.nn.Module) -> bool:
    """Whether ``transformer`` is ``pipe``'s transformer of the CFG branch (see ``CFG_TRANSFORMERS``)."""
    return pipe is not None and any(getattr(pipe, name, None) is transformer for name in CFG_TRANSFORMERS)


def default_groups(transformer: torch.nn.Module) -> tuple[tuple[str, ...], ...]:
    """The block groups of a transformer: its known layout, or one group per repeated-block list."""
    layout = BLOCK_LAYOUTS.get(type(transformer).__name__)
    if layout is not None:
        return layout
    repeated = set(getattr(transformer, "_repeated_blocks", None) or ())
    groups = []
    for name, child in transformer.named_children():
        if isinstance(child, torch.nn.ModuleList) and len(child) > 0:
            kinds = {type(block).__name__ for block in child}
            if (kinds <= repeated) if repeated else len(kinds) == 1:
                groups.append((name,))
    if not groups:
        raise ValueError(f"found no repeated block list in {type(transformer).__name__}; pass a BlockAdapter")
    return tuple(groups)


def _group_names(transformer: torch.nn.Module, entry: Any) -> tuple[str, ...]:
    if isinstance(entry, str):
        return (entry,)
    if isinstance(entry, torch.nn.ModuleList):
        return (_attribute_of(transformer, entry),)
    if isinstance(entry, (list, tuple)):
        return tuple(name for item in entry for name in _group_names(transformer, item))
    raise TypeError(f"a block group is a name, a ModuleList, or a tuple of them; got {type(entry).__name__}")


def _attribute_of(transformer: torch.nn.Module, blocks: torch.nn.ModuleList) -> str:
    for name, child in transformer.named_children():
        if child is blocks:
            return name
    raise ValueError(f"the given block list is not a direct child of {type(transformer).__name__}")


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, (str, torch.nn.ModuleList)):
        return [value]
    return list(value)


def _per_transformer(value: Any, count: int) -> list[Any]:
    """Split a per-transformer value; a single transformer takes the value as it is."""
    if count == 1:
        return [value]
    if value is None:
        return [None] * count
    if not isinstance(value, (list, tuple)) or len(value) != count:
        raise ValueError(f"give one entry per transformer ({count})")
    return list(value)


def _per_group(value: Any, count: int) -> list[ForwardPattern | None]:
    if value is None or isinstance(value, ForwardPattern):
        return [value] * count
    values = list(value)
    if len(values) != count:
        raise ValueError(f"give one forward pattern per block group ({count}), got {len(values)}")
    return values


def groups_for(target: Any, adapter: BlockAdapter | None) -> list[GroupSpec]:
    """Block groups of a pipeline or transformer, from ``adapter`` or the defaults."""
    if adapter is not None:
        return adapter.groups()
    if isinstance(target, torch.nn.Module):
        return BlockAdapter(transformer=target).groups()
    return BlockAdapter(pipe=target).groups()


__all__ = [
    "BLOCK_LAYOUTS",
    "CFG_TRANSFORMERS",
    "HINTED_LAYOUTS",
    "HINT_COMPONENTS",
    "LAYOUT_HIDDEN",
    "LAYOUT_PATTERNS",
    "LAYOUT_STREAMS",
    "PER_BLOCK_LAYOUTS",
    "PER_BLOCK_PIPELINES",
    "BlockAdapter",
    "GroupSpec",
    "default_groups",
    "groups_for",
    "pipeline_adds_hints",
    "denoising_components",
    "EXPERT_TRANSFORMERS",
    "pipeline_transformers",
    "runs_cfg_branch",
]
