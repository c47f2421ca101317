"""LongCat-Image and LongCat-Image Edit: 1 double-stream + 2 single-stream blocks, a tiny Qwen2.5-VL text
encoder (2 layers, width 16) over the byte-level Qwen tokenizer, a VAE with the pipeline's 16 latent
channels (2x; for the editor, which renders about 1024x1024 pixels whatever its input, 32x with one
channel at full size and no mid-block attention: 32x32 latents, 256 target tokens)."""

from __future__ import annotations

import torch
from diffusers import (
    AutoencoderKL,
    FlowMatchEulerDiscreteScheduler,
    LongCatImageEditPipeline,
    LongCatImagePipeline,
    LongCatImageTransformer2DModel,
)
from tiny_tokenizers import qwen_vl_tokenizer
from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

from tiny_families import TinyCase, scale_weights
from tiny_families.qwen_image import _processor

#: Text tokens the encoder reads (padded); the released pipeline reads 512.
TEXT_TOKENS = 32


def _components(vae_channels: tuple[int, ...] = (4, 4), **vae: object) -> dict:
    tokenizer = qwen_vl_tokenizer()
    token = tokenizer.convert_tokens_to_ids
    torch.manual_seed(0)
    transformer = LongCatImageTransformer2DModel(
        patch_size=1,
        in_channels=64,  # 16 latent channels x 2x2 packing
        num_layers=1,
        num_single_layers=2,
        attention_head_dim=8,
        num_attention_heads=2,
        joint_attention_dim=16,
        pooled_projection_dim=16,
        axes_dims_rope=[2, 2, 4],
    )
    torch.manual_seed(0)
    vae = AutoencoderKL(
        block_out_channels=vae_channels,
        down_block_types=("DownEncoderBlock2D",) * len(vae_channels),
        up_block_types=("UpDecoderBlock2D",) * len(vae_channels),
        layers_per_block=1,
        latent_channels=16,
        norm_num_groups=1,
        shift_factor=0.0609,
        scaling_factor=1.5035,
        **vae,
    )
    torch.manual_seed(0)
    text_encoder = Qwen2_5_VLForConditionalGeneration(
        Qwen2_5_VLConfig(
            text_config={
                "hidden_size": 16,
                "intermediate_size": 16,
                "num_hidden_layers": 2,
                "num_attention_heads": 2,
                "num_key_value_heads": 2,
                "rope_scaling": {"mrope_section": [1, 1, 2], "rope_type": "default", "type": "default"},
                "rope_theta": 1000000.0,
                "vocab_size": len(tokenizer),
                "bos_token_id": 0,
                "eos_token_id": 0,
            },
            vision_config={
                "depth": 1,
                "hidden_size": 16,
                "intermediate_size": 16,
                "num_heads": 2,
                "out_hidden_size": 16,
            },
            hidden_size=16,
            vocab_size=len(tokenizer),
            image_token_id=token("<|image_pad|>"),
            video_token_id=token("<|video_pad|>"),
            vision_start_token_id=token("<|vision_start|>"),
            vision_end_token_id=token("<|vision_end|>"),
        )
    )
    scale_weights(transformer.transformer_blocks, transformer.single_transformer_blocks, factor=3.0)
    for module in (transformer, vae, text_encoder):
        module.eval()
    return {
        "scheduler": FlowMatchEulerDiscreteScheduler(),
        "vae": vae,
        "text_encoder": text_encoder,
        "tokenizer": tokenizer,
        "text_processor": _processor(tokenizer),
        "transformer": transformer,
    }


def build_tiny_longcat_image() -> LongCatImagePipeline:
    pipe = LongCatImagePipeline(**_components())
    pipe.tokenizer_max_length = TEXT_TOKENS
    return pipe


def build_tiny_longcat_image_edit(vae_channels: tuple[int, ...] = (1,) + (4,) * 5) -> LongCatImageEditPipeline:
    pipe = LongCatImageEditPipeline(**_components(vae_channels, mid_block_add_attention=False))
    pipe.tokenizer_max_length = TEXT_TOKENS
    return pipe


CASES = [
    TinyCase(
        name="longcat-image",
        pipeline_class="LongCatImagePipeline",
        build=build_tiny_longcat_image,
        defaults={"width": 32, "height": 32, "steps": 4},
    ),
    TinyCase(
        name="longcat-image-edit",
        pipeline_class="LongCatImageEditPipeline",
        build=build_tiny_longcat_image_edit,
        defaults={"steps": 3},
        inputs=(("image", (128, 64)),),  # 2:1: renders 1408x704 (1456x736 floored to the spatial factor, 64)
    ),
]
