"""Motif-Video: a 2 dual-stream + 2 single-stream ``MotifVideoTransformer3DModel`` (no decoder layers), a Wan VAE
with 4 latent channels and a 1-layer T5Gemma 2 encoder (width 16) over the small Gemma tokenizer; CFG by a
``ClassifierFreeGuidance`` guider."""

from __future__ import annotations

import torch
from diffusers import (
    AutoencoderKLWan,
    FlowMatchEulerDiscreteScheduler,
    MotifVideoImage2VideoPipeline,
    MotifVideoPipeline,
    MotifVideoTransformer3DModel,
)
from diffusers.guiders import ClassifierFreeGuidance
from tiny_tokenizers import small_gemma_tokenizer
from transformers import SiglipImageProcessor, T5Gemma2Encoder, T5Gemma2EncoderConfig

from tiny_families import TinyCase, scale_weights

LATENT_CHANNELS = 4


def _components(image_embed_dim: int | None = None) -> dict:
    tokenizer = small_gemma_tokenizer(model_max_length=32)
    torch.manual_seed(0)
    text_encoder = T5Gemma2Encoder(
        T5Gemma2EncoderConfig(
            text_config={
                "vocab_size": len(tokenizer),
                "hidden_size": 16,
                "intermediate_size": 32,
                "num_hidden_layers": 1,
                "num_attention_heads": 2,
                "num_key_value_heads": 1,
                "head_dim": 8,
                "max_position_embeddings": 64,
                "layer_types": ["full_attention"],
                "dropout_rate": 0.0,
                "attention_dropout": 0.0,
            },
            vision_config={
                "hidden_size": 16,
                "intermediate_size": 32,
                "num_hidden_layers": 1,
                "num_attention_heads": 2,
                "image_size": 28,
                "patch_size": 14,
            },
            mm_tokens_per_image=4,
            boi_token_index=0,
            eoi_token_index=1,
            image_token_index=3,
        )
    )
    torch.manual_seed(0)
    transformer = MotifVideoTransformer3DModel(
        in_channels=LATENT_CHANNELS * 2 + 1,  # latents, condition latents and the condition mask
        out_channels=LATENT_CHANNELS,
        num_attention_heads=2,
        attention_head_dim=16,
        num_layers=2,
        num_single_layers=2,
        num_decoder_layers=0,
        text_embed_dim=16,
        rope_axes_dim=(4, 6, 6),
        image_embed_dim=image_embed_dim,
    )
    scale_weights(transformer.transformer_blocks, transformer.single_transformer_blocks, factor=3.0)
    torch.manual_seed(0)
    vae = AutoencoderKLWan(
        base_dim=3,
        z_dim=LATENT_CHANNELS,
        dim_mult=[1, 1, 1, 1],
        num_res_blocks=1,
        temperal_downsample=[False, True, True],
        latents_mean=[0.0] * LATENT_CHANNELS,
        latents_std=[1.0] * LATENT_CHANNELS,
    )
    for module in (text_encoder, transformer, vae):
        module.eval()
    return {
        "scheduler": FlowMatchEulerDiscreteScheduler(),
        "vae": vae,
        "text_encoder": text_encoder,
        "tokenizer": tokenizer,
        "transformer": transformer,
        "guider": ClassifierFreeGuidance(guidance_scale=5.0),
    }


def build_tiny_motif_video() -> MotifVideoPipeline:
    return MotifVideoPipeline(**_components())


def build_tiny_motif_video_i2v() -> MotifVideoImage2VideoPipeline:
    """The first frame conditions by its latents and by SigLIP features of the encoder's vision tower (width 16)."""
    return MotifVideoImage2VideoPipeline(
        **_components(image_embed_dim=16), feature_extractor=SiglipImageProcessor(size={"height": 28, "width": 28})
    )


CASES = [
    TinyCase(
        name="motif-video",
        pipeline_class="MotifVideoPipeline",
        build=build_tiny_motif_video,
        defaults={"width": 32, "height": 32, "frames": 5, "steps": 3, "call_defaults": {"max_sequence_length": 16}},
    ),
    TinyCase(
        name="motif-video-i2v",
        pipeline_class="MotifVideoImage2VideoPipeline",
        build=build_tiny_motif_video_i2v,
        defaults={"width": 32, "height": 32, "frames": 5, "steps": 3, "call_defaults": {"max_sequence_length": 16}},
        inputs=(("image", (32, 32)),),
    ),
]
