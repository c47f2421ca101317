"""AuraFlow: 2 joint MMDiT blocks + 2 single DiT blocks, a tiny UMT5, 8x VAE."""

import torch
from diffusers import AuraFlowPipeline, AuraFlowTransformer2DModel, FlowMatchEulerDiscreteScheduler
from tiny_pipelines import tiny_t5, tiny_vae
from tiny_tokenizers import small_t5_tokenizer

from tiny_families import TinyCase


def build_tiny_auraflow(seed: int = 0) -> AuraFlowPipeline:
    torch.manual_seed(seed)
    transformer = AuraFlowTransformer2DModel(
        sample_size=32,
        patch_size=2,
        in_channels=4,
        num_mmdit_layers=2,
        num_single_dit_layers=2,
        attention_head_dim=8,
        num_attention_heads=4,
        caption_projection_dim=32,
        joint_attention_dim=32,
        out_channels=4,
        pos_embed_max_size=256,
    ).eval()
    return AuraFlowPipeline(
        tokenizer=small_t5_tokenizer(),
        text_encoder=tiny_t5(seed, umt5=True),
        vae=tiny_vae(seed),
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(),
    )


CASES = [
    TinyCase(
        name="auraflow",
        pipeline_class="AuraFlowPipeline",
        build=build_tiny_auraflow,
        defaults={"width": 32, "height": 32, "steps": 4, "call_defaults": {"max_sequence_length": 16}},
    ),
]
