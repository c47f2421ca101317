"""Parallel plans per family, as data.

Context parallel: diffusers' transformers carry a ``_cp_plan`` (where the
sequence is split and where it is gathered again); ``MODEL_PLAN`` uses it. A
family whose transformer has none gets a plan here in diffusers' format
(``ContextParallelInput`` / ``ContextParallelOutput`` per module name).

Tensor parallel: a mapping from module-name patterns (``*`` = every index of a
block list) to how each ``nn.Linear`` is split across ranks:

- ``COLWISE``: output features split; the output stays split, feeding a ROWWISE layer
  (attention q/k/v: each rank runs attention on its own heads; MLP in).
- ``ROWWISE``: input features split; the partial outputs are summed across ranks
  (attention out, MLP out).
- ``COLWISE_GATHERED``: output features split, then gathered, so the next layer
  sees the whole output (used where a norm spans all heads).
- ``PackedRowwise(parts)``: ROWWISE for a layer whose input is the concatenation
  of several COLWISE outputs (its sibling linears ``parts``, in order).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

COLWISE = "colwise"
ROWWISE = "rowwise"
COLWISE_GATHERED = "colwise_gathered"


@dataclasses.dataclass(frozen=True)
class PackedRowwise:
    """ROWWISE over ``cat([parts[0](x), parts[1](x), ...])``: ``parts`` name sibling COLWISE linears."""

    parts: tuple[str, ...]


TPStyle = str | PackedRowwise


@dataclasses.dataclass(frozen=True)
class EncoderPlan:
    """Tensor parallel for a text encoder; entries may match nothing (one plan for several variants)."""

    layers: Mapping[str, TPStyle]
    per_rank: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    """Module pattern -> attributes (head counts, widths) that become per-rank values once split."""


#: Use the transformer's own diffusers ``_cp_plan``.
MODEL_PLAN = "model"


@dataclasses.dataclass(frozen=True)
class ParallelPlan:
    """How one family's transformer is split."""

    context: str | Mapping | None = None
    """``MODEL_PLAN``, a diffusers context-parallel plan, or ``None`` = no context parallel."""
    tensor: Mapping[str, TPStyle] | None = None
    """Linear name pattern -> split style, or ``None`` = no tensor parallel."""
    tensor_notes: str = ""
    """Why the tensor plan looks the way it does, where it departs from the textbook split."""
    text_encoders: Mapping[str, EncoderPlan] = dataclasses.field(default_factory=dict)
    """Pipeline component name -> its tensor-parallel plan, applied with the transformer's."""


FLUX_TENSOR_PLAN: dict[str, TPStyle] = {
    # double-stream blocks: image and text streams each have their own q/k/v, out and MLP
    "transformer_blocks.*.attn.to_q": COLWISE,
    "transformer_blocks.*.attn.to_k": COLWISE,
    "transformer_blocks.*.attn.to_v": COLWISE,
    "transformer_blocks.*.attn.to_out.0": ROWWISE,
    "transformer_blocks.*.attn.add_q_proj": COLWISE,
    "transformer_blocks.*.attn.add_k_proj": COLWISE,
    "transformer_blocks.*.attn.add_v_proj": COLWISE,
    "transformer_blocks.*.attn.to_add_out": ROWWISE,
    "transformer_blocks.*.ff.net.0.proj": COLWISE,
    "transformer_blocks.*.ff.net.2": ROWWISE,
    "transformer_blocks.*.ff_context.net.0.proj": COLWISE,
    "transformer_blocks.*.ff_context.net.2": ROWWISE,
    # single-stream blocks: attention and MLP side by side, one output layer over both
    "single_transformer_blocks.*.attn.to_q": COLWISE,
    "single_transformer_blocks.*.attn.to_k": COLWISE,
    "single_transformer_blocks.*.attn.to_v": COLWISE,
    "single_transformer_blocks.*.proj_mlp": COLWISE,
    "single_transformer_blocks.*.proj_out": PackedRowwise(("attn.to_v", "proj_mlp")),
}

WAN_TENSOR_PLAN: dict[str, TPStyle] = {
    # q and k are RMS-normed across all heads, so attention projections gather their outputs
    **{f"blocks.*.{attn}.{name}": COLWISE_GATHERED for attn in ("attn1", "attn2") for name in ("to_q", "to_k")},
    **{f"blocks.*.{attn}.to_v": COLWISE_GATHERED for attn in ("attn1", "attn2")},
    **{f"blocks.*.{attn}.to_out.0": COLWISE_GATHERED for attn in ("attn1", "attn2")},
    "blocks.*.ffn.net.0.proj": COLWISE,
    "blocks.*.ffn.net.2": ROWWISE,
}

_T5_ATTENTION = "encoder.block.*.layer.0.SelfAttention"
_T5_MLP = "encoder.block.*.layer.1.DenseReluDense"

#: T5 and UMT5 encoders (T5 v1.0's ReLU MLP ``wi``, v1.1's and UMT5's gated ``wi_0``/``wi_1``). The
#: relative position bias table (buckets x heads) is split by heads with the attention.
T5_ENCODER_PLAN = EncoderPlan(
    layers={
        f"{_T5_ATTENTION}.q": COLWISE,
        f"{_T5_ATTENTION}.k": COLWISE,
        f"{_T5_ATTENTION}.v": COLWISE,
        f"{_T5_ATTENTION}.o": ROWWISE,
        f"{_T5_ATTENTION}.relative_attention_bias": COLWISE,
        f"{_T5_MLP}.wi": COLWISE,
        f"{_T5_MLP}.wi_0": COLWISE,
        f"{_T5_MLP}.wi_1": COLWISE,
        f"{_T5_MLP}.wo": ROWWISE,
    },
    per_rank={_T5_ATTENTION: ("n_heads", "inner_dim")},
)

FLUX_PLAN = ParallelPlan(
    context=MODEL_PLAN,
    tensor=FLUX_TENSOR_PLAN,
    text_encoders={"text_encoder_2": T5_ENCODER_PLAN},
)

WAN_PLAN = ParallelPlan(
    context=MODEL_PLAN,
    tensor=WAN_TENSOR_PLAN,
    text_encoders={"text_encoder": T5_ENCODER_PLAN},
    tensor_notes="Wan normalizes q and k over all heads at once (rms_norm_across_heads), so its attention "
    "projections split their weights and gather their outputs: weights and matmuls are split, attention "
    "itself runs whole on every rank. The MLP is split the textbook way.",
)

#: Context parallel only, by the transformer's own diffusers plan.
MODEL_CONTEXT_PLAN = ParallelPlan(context=MODEL_PLAN)

PLANS: dict[str, ParallelPlan] = {
    # FLUX.1 Fill and Kontext run FLUX.1's transformer class (Kontext's image tokens join the sequence).
    "flux": FLUX_PLAN,
    "flux-fill": FLUX_PLAN,
    "flux-kontext": FLUX_PLAN,
    # Wan 2.1 I2V (with its CLIP image tokens, never split) and Wan 2.2 run Wan's transformer class.
    "wan": WAN_PLAN,
    "wan-i2v": WAN_PLAN,
    "flux2": MODEL_CONTEXT_PLAN,
    "flux2-klein": MODEL_CONTEXT_PLAN,
    "qwen-image": MODEL_CONTEXT_PLAN,
    "qwen-image-edit": MODEL_CONTEXT_PLAN,
    "qwen-image-edit-plus": MODEL_CONTEXT_PLAN,
    "chronoedit": MODEL_CONTEXT_PLAN,
    # LTX-Video has a diffusers plan but no entry here: its attention mask carries every head, which
    # diffusers 0.42's Ulysses attention does not slice to the rank's heads, and its Ring attention
    # refuses masks on uneven splits (docs/parallel.md).
}


def plan_for(family: str) -> ParallelPlan:
    """The plan of ``family``; an empty plan when it has none."""
    return PLANS.get(family, ParallelPlan())
