"""Latte: 2 spatial + 2 temporal blocks over a tiny T5, 8x VAE, 3-frame videos."""

import torch
from diffusers import DDIMScheduler, LattePipeline, LatteTransformer3DModel
from tiny_pipelines import tiny_t5, tiny_vae
from tiny_tokenizers import small_t5_tokenizer

from tiny_families import TinyCase
from tiny_families.pixart import PIXART_BLOCKS

#: The frames a request makes: the transformer's ``video_length`` (its temporal position embedding's length).
FRAMES = 3


def build_tiny_latte(seed: int = 0) -> LattePipeline:
    torch.manual_seed(seed)
    transformer = LatteTransformer3DModel(sample_size=4, num_layers=2, video_length=FRAMES, **PIXART_BLOCKS).eval()
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
