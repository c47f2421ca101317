"""Qwen-Image 2.1: a 2-block ``QwenImage21Transformer2DModel`` (4 latent channels), a 16x RGBA
``AutoencoderKLQwenImage21`` and a tiny Qwen3-VL encoder (2 text and 2 vision layers, width 16) with a
Qwen3-VL processor over the byte-level Qwen tokenizer. The case sends one condition image; the encoder
and the VAE see it at 64x64 (``output_resolution``), 4 vision slots of 2x2 latent tokens each."""

from __future__ import annotations

import torch
from diffusers import (
    AutoencoderKLQwenImage21,
    FlowMatchEulerDiscreteScheduler,
    QwenImage21Pipeline,
    QwenImage21Transformer2DModel,
)
from tiny_tokenizers import qwen_vl_tokenizer
from transformers import Qwen3VLForConditionalGeneration
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

from engine_service.models.vl_processors import ImageOnlyQwen3VLProcessor
from tiny_families import TinyCase, scale_weights, tiny_qwen3vl_config
from tiny_families.flux2 import PARTS_TEMPLATE

LATENT_CHANNELS = 4
#: The side the pipeline resizes condition images to, for the encoder and the VAE alike.
CONDITION_SIDE = 64


def tiny_qwen3_vl_processor(tokenizer) -> ImageOnlyQwen3VLProcessor:
    """A Qwen3-VL processor that shows the encoder a condition image as CONDITION_SIDE² pixels."""
    pixels = CONDITION_SIDE * CONDITION_SIDE
    images = Qwen2VLImageProcessorPil(
        patch_size=16,
        temporal_patch_size=2,
        merge_size=2,
        min_pixels=pixels,
        max_pixels=pixels,
        image_mean=[0.5] * 3,
        image_std=[0.5] * 3,
    )
    return ImageOnlyQwen3VLProcessor(image_processor=images, tokenizer=tokenizer, chat_template=PARTS_TEMPLATE)


def build_tiny_qwen_image21() -> QwenImage21Pipeline:
    tokenizer = qwen_vl_tokenizer()
    torch.manual_seed(0)
    transformer = QwenImage21Transformer2DModel(
        in_channels=LATENT_CHANNELS,
        out_channels=LATENT_CHANNELS,
        num_layers=2,
        attention_head_dim=16,
        num_attention_heads=2,
        context_in_dim=16,
        axes_dims_rope=(4, 6, 6),
    )
    scale_weights(transformer.transformer_blocks, factor=6.0)
    torch.manual_seed(0)
    vae = AutoencoderKLQwenImage21(
        base_dim=4,
        decoder_base_dim=4,
        z_dim=LATENT_CHANNELS,
        dim_mult=[1, 1, 1, 1, 1],
        num_res_blocks=1,
        temperal_downsample=[False, True, True, True],
        latents_mean=[0.0] * LATENT_CHANNELS,
        latents_std=[1.0] * LATENT_CHANNELS,
    )
    # The random encoder maps different pictures to nearly the same latents: spread them apart.
    scale_weights(vae.encoder.conv_out, factor=20.0)
    torch.manual_seed(0)
    text_encoder = Qwen3VLForConditionalGeneration(
        tiny_qwen3vl_config(tokenizer, depth=2, patch_size=16, deepstack_visual_indexes=[1], num_position_embeddings=64)
    )
    # The encoder sees a condition image as (64 / 16)² patches, merged 2x2 into 4 vision slots: one per
    # 2x2 group of the image's 16x latent tokens.
    processor = tiny_qwen3_vl_processor(tokenizer)
    for module in (transformer, vae, text_encoder):
        module.eval()
    return QwenImage21Pipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=vae,
        text_encoder=text_encoder,
        processor=processor,
        transformer=transformer,
    )


CASES = [
    TinyCase(
        name="qwen-image-2.1",
        pipeline_class="QwenImage21Pipeline",
        build=build_tiny_qwen_image21,
        defaults={"width": 32, "height": 32, "steps": 4, "call_defaults": {"output_resolution": CONDITION_SIDE}},
        inputs=(("image", (32, 32)),),
        reshaped_steps=1,  # step 1, the first to run the target tokens only
    ),
]
