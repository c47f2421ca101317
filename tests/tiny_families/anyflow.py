"""AnyFlow: a 3-block flow-map (two-timestep) Wan-style transformer over the tiny Wan VAE and UMT5 encoder;
AnyFlow-FAR: its 2-block causal sibling, sampling a 5-frame video in two chunks (two denoising loops)."""

import torch
from diffusers import (
    AnyFlowFARPipeline,
    AnyFlowFARTransformer3DModel,
    AnyFlowPipeline,
    AnyFlowTransformer3DModel,
    FlowMapEulerDiscreteScheduler,
)
from tiny_pipelines import tiny_umt5, tiny_wan_vae
from tiny_tokenizers import small_t5_tokenizer

from tiny_families import TinyCase, louder_vae, scale_weights

#: 5 frames of 16x16: 2 latent frames, one chunk each (``chunk_partition`` [1, 1]): two denoising loops.
FAR_VIDEO = {"width": 16, "height": 16, "frames": 5, "steps": 2, "call_defaults": {"max_sequence_length": 16}}


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


def build_tiny_anyflow_far() -> AnyFlowFARPipeline:
    """A 2-block causal transformer whose blocks are scaled up (x2) and a louder VAE: the second chunk's
    video then shows, by many uint8 levels, whether the middle blocks wrote the first chunk's keys and
    values into the attention cache."""
    torch.manual_seed(0)
    transformer = AnyFlowFARTransformer3DModel(
        patch_size=(1, 2, 2),
        compressed_patch_size=(1, 4, 4),
        num_attention_heads=2,
        attention_head_dim=12,
        in_channels=16,
        out_channels=16,
        text_dim=32,
        freq_dim=256,
        ffn_dim=32,
        num_layers=2,
        rope_max_seq_len=32,
        chunk_partition=(1, 1),
    ).eval()
    scale_weights(transformer.blocks, factor=2.0)
    return AnyFlowFARPipeline(
        tokenizer=small_t5_tokenizer(),
        text_encoder=tiny_umt5(),
        transformer=transformer,
        vae=louder_vae(tiny_wan_vae()),
        scheduler=FlowMapEulerDiscreteScheduler(shift=5.0),
    )


CASES = [
    TinyCase(
        name="anyflow",
        pipeline_class="AnyFlowPipeline",
        build=build_tiny_anyflow,
        defaults={"width": 16, "height": 16, "frames": 5, "steps": 4, "call_defaults": {"max_sequence_length": 16}},
    ),
    TinyCase(
        name="anyflow-far",
        pipeline_class="AnyFlowFARPipeline",
        build=build_tiny_anyflow_far,
        defaults=FAR_VIDEO,
        loops=2,
    ),
]
