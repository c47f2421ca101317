"""Krea 2: a 2-block ``Krea2Transformer2DModel`` (one layerwise and one refiner text block), an 8x
``AutoencoderKLQwenImage`` with 4 latent channels and a 2-layer Qwen3-VL text model (width 16) whose two
layers' hidden states are the text conditioning, over the byte-level Qwen tokenizer."""

from __future__ import annotations

import torch
from diffusers import AutoencoderKLQwenImage, FlowMatchEulerDiscreteScheduler, Krea2Pipeline, Krea2Transformer2DModel
from tiny_tokenizers import qwen_vl_tokenizer
from transformers import Qwen3VLModel

from tiny_families import TinyCase, scale_weights, tiny_qwen3vl_config

LATENT_CHANNELS = 4


def build_tiny_krea2() -> Krea2Pipeline:
    tokenizer = qwen_vl_tokenizer()
    torch.manual_seed(0)
    transformer = Krea2Transformer2DModel(
        in_channels=LATENT_CHANNELS * 4,
        num_layers=2,
        attention_head_dim=16,
        num_attention_heads=2,
        num_key_value_heads=1,
        intermediate_size=32,
        text_hidden_dim=16,
        num_text_layers=2,
        text_num_attention_heads=2,
        text_num_key_value_heads=2,
        text_intermediate_size=16,
        num_layerwise_text_blocks=1,
        num_refiner_text_blocks=1,
        axes_dims_rope=(4, 6, 6),
    )
    scale_weights(transformer.transformer_blocks, factor=3.0)
    torch.manual_seed(0)
    vae = AutoencoderKLQwenImage(
        base_dim=2,
        z_dim=LATENT_CHANNELS,
        dim_mult=[1, 1, 1, 1],
        num_res_blocks=1,
        temperal_downsample=[False, True, True],
        latents_mean=[0.0] * LATENT_CHANNELS,
        latents_std=[1.0] * LATENT_CHANNELS,
    )
    # The random decoder maps different latents to nearly the same pixels: scaled, they differ.
    scale_weights(vae.decoder, factor=1.5)
    torch.manual_seed(0)
    text_encoder = Qwen3VLModel(tiny_qwen3vl_config(tokenizer))
    for module in (transformer, vae, text_encoder):
        module.eval()
    pipe = Krea2Pipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True, max_image_seq_len=6400),
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        transformer=transformer,
        text_encoder_select_layers=(1, 2),
    )
    # The pipeline drops its system prefix and keeps its suffix by token counts of the released tokenizer.
    pipe.prompt_template_encode_start_idx = len(tokenizer(pipe.prompt_template_encode_prefix).input_ids)
    pipe.prompt_template_encode_num_suffix_tokens = len(tokenizer(pipe.prompt_template_encode_suffix).input_ids)
    return pipe


CASES = [
    TinyCase(
        name="krea2",
        pipeline_class="Krea2Pipeline",
        build=build_tiny_krea2,
        defaults={"width": 32, "height": 32, "steps": 4, "call_defaults": {"max_sequence_length": 32}},
    ),
]
