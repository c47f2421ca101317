"""Bria 3.2: 2 double-stream + 2 single-stream blocks, a tiny T5, 8x VAE."""

import torch
from diffusers import BriaPipeline, BriaTransformer2DModel, FlowMatchEulerDiscreteScheduler
from tiny_pipelines import tiny_t5, tiny_vae
from tiny_tokenizers import small_t5_tokenizer

from tiny_families import TinyCase


def build_tiny_bria(seed: int = 0) -> BriaPipeline:
    torch.manual_seed(seed)
    transformer = BriaTransformer2DModel(
        patch_size=1,
        in_channels=16,  # 4 latent channels x 2x2 packing
        num_layers=2,
        num_single_layers=2,
        attention_head_dim=8,
        num_attention_heads=2,
        joint_attention_dim=32,
        axes_dims_rope=[0, 4, 4],
    ).eval()
    return BriaPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        text_encoder=tiny_t5(seed),
        tokenizer=small_t5_tokenizer(),
        transformer=transformer,
        vae=tiny_vae(seed),
    )


CASES = [
    TinyCase(
        name="bria",
        pipeline_class="BriaPipeline",
        build=build_tiny_bria,
        defaults={"width": 32, "height": 32, "steps": 4, "call_defaults": {"max_sequence_length": 16}},
    ),
]
