"""Nucleus-MoE Image: 4 single-stream blocks (the middle two with expert-choice MoE feed-forwards), the tiny
Qwen-Image VAE and a tiny Qwen3-VL encoder with Qwen-Image 2.1's image-only processor (text only here)."""

from __future__ import annotations

import torch
from diffusers import (
    AutoencoderKLQwenImage,
    FlowMatchEulerDiscreteScheduler,
    NucleusMoEImagePipeline,
    NucleusMoEImageTransformer2DModel,
)
from tiny_tokenizers import qwen_vl_tokenizer
from transformers import Qwen3VLForConditionalGeneration
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

from engine_service.models.vl_processors import ImageOnlyQwen3VLProcessor
from tiny_families import TinyCase, scale_weights, tiny_qwen3vl_config
from tiny_families.flux2 import PARTS_TEMPLATE

LATENT_CHANNELS = 4


def build_tiny_nucleusmoe_image() -> NucleusMoEImagePipeline:
    tokenizer = qwen_vl_tokenizer()
    torch.manual_seed(0)
    transformer = NucleusMoEImageTransformer2DModel(
        patch_size=2,
        in_channels=LATENT_CHANNELS * 4,
        out_channels=LATENT_CHANNELS,
        num_layers=4,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=16,
        axes_dims_rope=(4, 6, 6),
        mlp_ratio=2.0,
        num_experts=4,
        moe_intermediate_dim=8,
        capacity_factors=2.0,
    ).eval()
    scale_weights(transformer.transformer_blocks, factor=3.0)
    torch.manual_seed(0)
    vae = AutoencoderKLQwenImage(
        base_dim=2,
        z_dim=LATENT_CHANNELS,
        dim_mult=[1, 1, 1, 1, 1],
        num_res_blocks=1,
        temperal_downsample=[False, True, True, True],
        latents_mean=[0.0] * LATENT_CHANNELS,
        latents_std=[1.0] * LATENT_CHANNELS,
    ).eval()
    # The tiny decoder flattens the image: scaled, another prompt or guidance moves it by many levels.
    scale_weights(vae.decoder, factor=1.5)
    torch.manual_seed(0)
    text_encoder = Qwen3VLForConditionalGeneration(
        tiny_qwen3vl_config(
            tokenizer, layers=3, patch_size=16, deepstack_visual_indexes=[0], num_position_embeddings=64
        )
    ).eval()
    processor = ImageOnlyQwen3VLProcessor(
        image_processor=Qwen2VLImageProcessorPil(patch_size=16, temporal_patch_size=2, merge_size=2),
        tokenizer=tokenizer,
        chat_template=PARTS_TEMPLATE,
    )
    return NucleusMoEImagePipeline(
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=vae,
        text_encoder=text_encoder,
        processor=processor,
    )


CASES = [
    TinyCase(
        name="nucleusmoe-image",
        pipeline_class="NucleusMoEImagePipeline",
        build=build_tiny_nucleusmoe_image,
        # The released encoder's 8th-from-last layer is deeper than the tiny encoder's 3 layers.
        defaults={
            "width": 32,
            "height": 32,
            "steps": 4,
            "call_defaults": {"max_sequence_length": 64, "return_index": -2},
        },
    ),
]
