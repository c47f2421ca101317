"""Latte: 2 spatial + 2 temporal blocks over a tiny T5, 8x VAE, 3-frame videos."""

import torch
from diffusers import DDIMScheduler, LattePipeline, LatteTransformer3DModel
from tiny_pipelines import tiny_t5, tiny_vae
from tiny_tokenizers import small_t5_tokenizer

from tiny_families import TinyCase

#: The frames a request makes: the transformer's ``video_length`` (its temporal position embedding's length).
FRAMES = 3


def build_tiny_latte(seed: int = 0) -> LattePipeline:
    torch.manual_seed(seed)
    transformer = LatteTransformer3DModel(
        sample_size=4,
        num_layers=2,
        patch_size=2,
        attention_head_dim=8,
        num_attention_heads=3,
        caption_channels=32,
        in_channels=4,
        cross_attention_dim=24,
        out_channels=8,  # learned variance: the pipeline keeps the first 4 channels
        attention_bias=True,
        activation_fn="gelu-approximate",
        num_embeds_ada_norm=1000,
        norm_type="ada_norm_single",
        norm_elementwise_affine=False,
        norm_eps=1e-6,
        video_length=FRAMES,
    ).eval()
    return LattePipeline(
        transformer=transformer,
        vae=tiny_vae(seed),
        text_encoder=tiny_t5(seed),
        tokenizer=small_t5_tokenizer(),
        scheduler=DDIMScheduler(),
    )


CASES = [
    TinyCase(
        name="latte",
        pipeline_class="LattePipeline",
        build=build_tiny_latte,
        defaults={"width": 32, "height": 32, "steps": 3},
    ),
]
