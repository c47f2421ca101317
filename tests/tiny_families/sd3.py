"""Stable Diffusion 3: 4 MMDiT blocks (the last one context-pre-only), two CLIP and one T5 encoder."""

import torch
from diffusers import SD3Transformer2DModel, StableDiffusion3Pipeline
from tiny_pipelines import TINY_CLIP, TINY_T5, tiny_flux_components
from tiny_tokenizers import byte_level_clip_tokenizer, small_t5_tokenizer
from transformers import CLIPTextConfig, CLIPTextModelWithProjection, T5Config, T5EncoderModel

from tiny_families import TinyCase


def build_tiny_sd3(seed: int = 0) -> StableDiffusion3Pipeline:
    torch.manual_seed(seed)
    transformer = SD3Transformer2DModel(
        sample_size=32,
        patch_size=2,
        in_channels=4,
        num_layers=4,
        attention_head_dim=8,
        num_attention_heads=4,
        caption_projection_dim=32,
        joint_attention_dim=32,
        pooled_projection_dim=64,
        out_channels=4,
    )
    encoders = []
    for _ in range(2):
        torch.manual_seed(seed)
        encoders.append(CLIPTextModelWithProjection(CLIPTextConfig(**TINY_CLIP)))
    torch.manual_seed(seed)
    text_encoder_3 = T5EncoderModel(T5Config(**TINY_T5))
    vae = tiny_flux_components(seed)["vae"]  # 8x, 4 latent channels
    for module in (transformer, *encoders, text_encoder_3):
        module.eval()
    return StableDiffusion3Pipeline(
        scheduler=tiny_flux_components(seed)["scheduler"],
        transformer=transformer,
        vae=vae,
        text_encoder=encoders[0],
        text_encoder_2=encoders[1],
        text_encoder_3=text_encoder_3,
        tokenizer=byte_level_clip_tokenizer(),
        tokenizer_2=byte_level_clip_tokenizer(),
        tokenizer_3=small_t5_tokenizer(),
    )


CASES = [
    TinyCase(
        name="sd3",
        pipeline_class="StableDiffusion3Pipeline",
        build=build_tiny_sd3,
        defaults={"width": 32, "height": 32, "steps": 4, "call_defaults": {"max_sequence_length": 16}},
    ),
]
