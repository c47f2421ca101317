"""DiT: class-conditional (the prompt names a class), one size, no step callback."""

import torch
from diffusers import AutoencoderKL, DDIMScheduler, DiTPipeline, DiTTransformer2DModel

from tiny_families import TinyCase

#: Made-up classes of the tiny model: the family tests send "a red circle".
TINY_LABELS = {0: "a red circle, red disc", 1: "a blue square", 2: "golden retriever"}


def build_tiny_dit() -> DiTPipeline:
    """From diffusers' DiT test configuration, with 3 blocks and a 1-level VAE (16 x 16 pixels)."""
    torch.manual_seed(0)
    transformer = DiTTransformer2DModel(
        sample_size=16,
        num_layers=3,
        patch_size=4,
        attention_head_dim=8,
        num_attention_heads=2,
        in_channels=4,
        out_channels=8,
        activation_fn="gelu-approximate",
        num_embeds_ada_norm=1000,
        norm_type="ada_norm_zero",
        norm_elementwise_affine=False,
    ).eval()
    torch.manual_seed(0)
    vae = AutoencoderKL(block_out_channels=(4,), layers_per_block=1, latent_channels=4, norm_num_groups=1).eval()
    return DiTPipeline(transformer=transformer, vae=vae, scheduler=DDIMScheduler(), id2label=TINY_LABELS)


CASES = [
    TinyCase(name="dit", pipeline_class="DiTPipeline", build=build_tiny_dit, defaults={"steps": 4}),
]
