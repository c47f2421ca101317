"""PixArt-Alpha and PixArt-Sigma: 2 DiT blocks with cross-attention to a tiny T5, 8x VAE."""

import torch
from diffusers import (
    DDIMScheduler,
    PixArtAlphaPipeline,
    PixArtSigmaPAGPipeline,
    PixArtSigmaPipeline,
    PixArtTransformer2DModel,
)
from tiny_pipelines import tiny_t5, tiny_vae
from tiny_tokenizers import small_t5_tokenizer

from tiny_families import TinyCase

#: The blocks of a tiny PixArt-style transformer (PixArt, and Latte's spatial and temporal blocks).
PIXART_BLOCKS = {
    "patch_size": 2,
    "attention_head_dim": 8,
    "num_attention_heads": 3,
    "caption_channels": 32,
    "in_channels": 4,
    "cross_attention_dim": 24,
    "out_channels": 8,  # learned variance: the pipeline keeps the first 4 channels
    "attention_bias": True,
    "activation_fn": "gelu-approximate",
    "num_embeds_ada_norm": 1000,
    "norm_type": "ada_norm_single",
    "norm_elementwise_affine": False,
    "norm_eps": 1e-6,
}


def _components(seed: int = 0) -> dict:
    torch.manual_seed(seed)
    transformer = PixArtTransformer2DModel(sample_size=8, num_layers=3, **PIXART_BLOCKS).eval()
    return {
        "transformer": transformer,
        "vae": tiny_vae(seed),
        "text_encoder": tiny_t5(seed),
        "tokenizer": small_t5_tokenizer(),
        "scheduler": DDIMScheduler(),
    }


#: Tiny sizes have no aspect-ratio bin; binning would resize to 256x256 and back.
CALL = {"max_sequence_length": 16, "use_resolution_binning": False}
CASES = [
    TinyCase(
        name="pixart-alpha",
        pipeline_class="PixArtAlphaPipeline",
        build=lambda: PixArtAlphaPipeline(**_components()),
        defaults={"width": 32, "height": 32, "steps": 4, "call_defaults": CALL},
    ),
    TinyCase(
        name="pixart-sigma",
        pipeline_class="PixArtSigmaPipeline",
        build=lambda: PixArtSigmaPipeline(**_components()),
        defaults={"width": 32, "height": 32, "steps": 4, "call_defaults": CALL},
    ),
    TinyCase(
        name="pixart-sigma-pag",
        pipeline_class="PixArtSigmaPAGPipeline",
        build=lambda: PixArtSigmaPAGPipeline(**_components(), pag_applied_layers=["transformer_blocks.1"]),
        defaults={"width": 32, "height": 32, "steps": 4, "call_defaults": CALL},
    ),
]
