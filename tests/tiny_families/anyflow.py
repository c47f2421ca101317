"""AnyFlow: a 3-block flow-map (two-timestep) Wan-style transformer over the tiny Wan VAE and UMT5 encoder."""

import torch
from diffusers import AnyFlowPipeline, AnyFlowTransformer3DModel, FlowMapEulerDiscreteScheduler
from tiny_pipelines import tiny_umt5, tiny_wan_vae
from tiny_tokenizers import small_t5_tokenizer

from tiny_families import TinyCase


def build_tiny_anyflow() -> AnyFlowPipeline:
    torch.manual_seed(0)
    transformer = AnyFlowTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=12,
        in_channels=16,
        out_channels=16,
        text_dim=32,
        freq_dim=256,
        ffn_dim=32,
        num_layers=3,
        rope_max_seq_len=32,
    ).eval()
    return AnyFlowPipeline(
        tokenizer=small_t5_tokenizer(),
        text_encoder=tiny_umt5(),
        transformer=transformer,
        vae=tiny_wan_vae(),
        scheduler=FlowMapEulerDiscreteScheduler(shift=5.0),
    )


CASES = [
    TinyCase(
        name="anyflow",
        pipeline_class="AnyFlowPipeline",
        build=build_tiny_anyflow,
        defaults={"width": 16, "height": 16, "frames": 5, "steps": 4, "call_defaults": {"max_sequence_length": 16}},
    ),
]
