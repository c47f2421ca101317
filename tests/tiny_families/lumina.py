"""Lumina-Next and Lumina-Image 2.0: tiny Gemma / Gemma-2 encoders, 8x VAE."""

import torch
from diffusers import (
    FlowMatchEulerDiscreteScheduler,
    Lumina2Pipeline,
    Lumina2Transformer2DModel,
    LuminaNextDiT2DModel,
    LuminaPipeline,
)
from tiny_pipelines import tiny_vae
from tiny_tokenizers import small_gemma_tokenizer
from transformers import Gemma2Config, Gemma2Model, GemmaConfig, GemmaModel

from tiny_families import TinyCase


def build_tiny_lumina(seed: int = 0) -> LuminaPipeline:
    tokenizer = small_gemma_tokenizer()
    torch.manual_seed(seed)
    transformer = LuminaNextDiT2DModel(
        sample_size=4,
        patch_size=2,
        in_channels=4,
        hidden_size=8,
        num_layers=3,
        num_attention_heads=1,
        num_kv_heads=1,
        multiple_of=16,
        ffn_dim_multiplier=None,
        norm_eps=1e-5,
        learn_sigma=True,
        qk_norm=True,
        cross_attention_dim=8,
        scaling_factor=1.0,
    ).eval()
    torch.manual_seed(seed)
    text_encoder = GemmaModel(
        GemmaConfig(
            head_dim=2,
            hidden_size=8,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=2,
            num_key_value_heads=4,
            vocab_size=len(tokenizer),
        )
    ).eval()
    return LuminaPipeline(
        transformer=transformer,
        vae=tiny_vae(seed),
        scheduler=FlowMatchEulerDiscreteScheduler(),
        text_encoder=text_encoder,
        tokenizer=tokenizer,
    )


def build_tiny_lumina2(seed: int = 0) -> Lumina2Pipeline:
    tokenizer = small_gemma_tokenizer()
    torch.manual_seed(seed)
    transformer = Lumina2Transformer2DModel(
        sample_size=4,
        patch_size=2,
        in_channels=4,
        hidden_size=8,
        num_layers=3,
        num_refiner_layers=2,
        num_attention_heads=1,
        num_kv_heads=1,
        multiple_of=16,
        ffn_dim_multiplier=None,
        norm_eps=1e-5,
        scaling_factor=1.0,
        axes_dim_rope=(4, 2, 2),
        cap_feat_dim=8,
    ).eval()
    torch.manual_seed(seed)
    text_encoder = Gemma2Model(
        Gemma2Config(
            head_dim=4,
            hidden_size=8,
            intermediate_size=8,
            num_attention_heads=2,
            num_hidden_layers=2,
            num_key_value_heads=2,
            sliding_window=2,
            vocab_size=len(tokenizer),
        )
    ).eval()
    return Lumina2Pipeline(
        transformer=transformer,
        vae=tiny_vae(seed),
        scheduler=FlowMatchEulerDiscreteScheduler(),
        text_encoder=text_encoder,
        tokenizer=tokenizer,
    )


TEXT = {"max_sequence_length": 16}
CASES = [
    TinyCase(
        name="lumina",
        pipeline_class="LuminaPipeline",
        build=build_tiny_lumina,
        defaults={"width": 32, "height": 32, "steps": 4, "call_defaults": TEXT},
    ),
    TinyCase(
        name="lumina2",
        pipeline_class="Lumina2Pipeline",
        build=build_tiny_lumina2,
        defaults={"width": 32, "height": 32, "steps": 4, "call_defaults": TEXT},
    ),
]
