"""Mochi 1 text-to-video: a 2-block transformer, a VAE with 6x temporal compression."""

import torch
from diffusers import AutoencoderKLMochi, FlowMatchEulerDiscreteScheduler, MochiPipeline, MochiTransformer3DModel
from tiny_pipelines import TINY_T5
from tiny_tokenizers import small_t5_tokenizer
from transformers import T5Config, T5EncoderModel

from tiny_families import TinyCase


def build_mochi() -> MochiPipeline:
    torch.manual_seed(0)
    transformer = MochiTransformer3DModel(
        patch_size=2,
        num_attention_heads=2,
        attention_head_dim=8,
        num_layers=2,
        pooled_projection_dim=16,
        in_channels=12,
        out_channels=None,
        qk_norm="rms_norm",
        text_embed_dim=32,
        time_embed_dim=4,
        activation_fn="swiglu",
        max_sequence_length=16,
    ).eval()
    torch.manual_seed(0)
    vae = AutoencoderKLMochi(
        latent_channels=12,
        out_channels=3,
        encoder_block_out_channels=(32, 32, 32, 32),
        decoder_block_out_channels=(32, 32, 32, 32),
        layers_per_block=(1, 1, 1, 1, 1),
    ).eval()
    torch.manual_seed(0)
    text_encoder = T5EncoderModel(T5Config(**TINY_T5)).eval()
    return MochiPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=small_t5_tokenizer(),
        transformer=transformer,
    )


CASES = [
    TinyCase(
        name="mochi",
        pipeline_class="MochiPipeline",
        build=build_mochi,
        # 7 frames: 2 latent frames.
        defaults={"width": 16, "height": 16, "frames": 7, "steps": 4, "call_defaults": {"max_sequence_length": 16}},
    ),
]
