"""Ideogram 4: two 2-block ``Ideogram4Transformer2DModel`` s (the conditional ``transformer`` and the
``unconditional_transformer``), an 8x ``AutoencoderKLFlux2`` with 4 latent channels (2x2-patchified:
16 transformer channels) and a 36-layer Qwen3-VL text model (width 16): the pipeline taps the hidden
states of 13 of its layers (0, 3, ..., 33, 35), so the text features are 13 x 16 wide."""

from __future__ import annotations

import torch
from diffusers import AutoencoderKLFlux2, FlowMatchEulerDiscreteScheduler, Ideogram4Pipeline
from diffusers.models.transformers.transformer_ideogram4 import Ideogram4Transformer2DModel
from diffusers.pipelines.ideogram4.pipeline_ideogram4 import QWEN3_VL_ACTIVATION_LAYERS
from tiny_tokenizers import qwen_vl_tokenizer
from transformers import Qwen3VLModel

from tiny_families import TinyCase, tiny_qwen3vl_config
from tiny_families.flux2 import PARTS_TEMPLATE

LATENT_CHANNELS = 4
TEXT_WIDTH = 16


def _transformer(seed: int) -> Ideogram4Transformer2DModel:
    torch.manual_seed(seed)
    transformer = Ideogram4Transformer2DModel(
        in_channels=LATENT_CHANNELS * 4,
        num_layers=2,
        attention_head_dim=16,
        num_attention_heads=2,
        intermediate_size=64,
        adaln_dim=32,
        llm_features_dim=TEXT_WIDTH * len(QWEN3_VL_ACTIVATION_LAYERS),
        mrope_section=(4, 2, 2),  # 8 rotary frequencies per 16-wide head
    )
    return transformer.eval()


def build_tiny_ideogram4() -> Ideogram4Pipeline:
    tokenizer = qwen_vl_tokenizer()
    tokenizer.chat_template = PARTS_TEMPLATE  # the pipeline sends content as a list of text parts
    transformer = _transformer(0)
    unconditional = _transformer(1)
    torch.manual_seed(0)
    vae = AutoencoderKLFlux2(
        sample_size=32,
        block_out_channels=(8, 8, 16, 16),
        layers_per_block=1,
        latent_channels=LATENT_CHANNELS,
        norm_num_groups=8,
        use_quant_conv=False,
        use_post_quant_conv=False,
    ).eval()
    torch.manual_seed(0)
    layers = max(QWEN3_VL_ACTIVATION_LAYERS) + 1
    text_encoder = Qwen3VLModel(tiny_qwen3vl_config(tokenizer, layers=layers, width=TEXT_WIDTH)).eval()
    return Ideogram4Pipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        transformer=transformer,
        unconditional_transformer=unconditional,
    )


CASES = [
    TinyCase(
        name="ideogram4",
        pipeline_class="Ideogram4Pipeline",
        build=build_tiny_ideogram4,
        defaults={"width": 32, "height": 32, "steps": 3, "call_defaults": {"max_sequence_length": 64}},
    ),
]
