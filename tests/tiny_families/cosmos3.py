"""Cosmos 3 Omni: a 3-layer ``Cosmos3OmniTransformer`` (width 32, 16-wide heads) over the byte-level Qwen
tokenizer (its ``<|vision_start|>`` opens the generated tokens), the 16x Wan 2.2 VAE of the tiny TI2V-5B
case (48 latent channels) and UniPC in flow mode, without the guardrail (``enable_safety_checker=False``).
Text-to-video, and image-to-video with the input image as the first frame."""

from __future__ import annotations

import torch
from diffusers import AutoencoderKLWan, Cosmos3OmniPipeline, UniPCMultistepScheduler
from diffusers.models.transformers.transformer_cosmos3 import Cosmos3OmniTransformer
from tiny_tokenizers import qwen_vl_tokenizer

from tiny_families import TinyCase, louder_vae, scale_weights

LATENT_CHANNELS = 48


def build_tiny_cosmos3() -> Cosmos3OmniPipeline:
    tokenizer = qwen_vl_tokenizer()
    torch.manual_seed(0)
    transformer = Cosmos3OmniTransformer(
        head_dim=16,
        hidden_size=32,
        intermediate_size=32,
        latent_channel=LATENT_CHANNELS,
        latent_patch_size=2,
        num_attention_heads=2,
        num_hidden_layers=3,
        num_key_value_heads=1,
        patch_latent_dim=LATENT_CHANNELS * 4,
        vocab_size=len(tokenizer),
        rope_axes_dim=(4, 2, 2),  # 8 rotary frequencies per 16-wide head
        dtype="float32",
    )
    scale_weights(transformer.layers, factor=2.0)
    torch.manual_seed(0)
    vae = AutoencoderKLWan(
        base_dim=3,
        z_dim=LATENT_CHANNELS,
        in_channels=12,
        out_channels=12,
        is_residual=True,
        patch_size=2,
        latents_mean=[0.0] * LATENT_CHANNELS,
        latents_std=[1.0] * LATENT_CHANNELS,
        dim_mult=[1, 1, 1, 1],
        num_res_blocks=1,
        scale_factor_spatial=16,
        scale_factor_temporal=4,
        temperal_downsample=[False, True, True],
    )
    louder_vae(vae)  # the image-to-video case's input image reaches the model only through the VAE
    for module in (transformer, vae):
        module.eval()
    return Cosmos3OmniPipeline(
        transformer=transformer,
        text_tokenizer=tokenizer,
        vae=vae,
        scheduler=UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0),
        enable_safety_checker=False,
    )


VIDEO = {"width": 32, "height": 32, "frames": 5, "steps": 3}

CASES = [
    TinyCase(name="cosmos3-omni", pipeline_class="Cosmos3OmniPipeline", build=build_tiny_cosmos3, defaults=VIDEO),
    TinyCase(
        name="cosmos3-omni-i2v",
        pipeline_class="Cosmos3OmniPipeline",
        build=build_tiny_cosmos3,
        defaults=VIDEO,
        inputs=(("image", (32, 32)),),
    ),
]
