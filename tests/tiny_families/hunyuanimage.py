"""HunyuanImage 2.1: double- and single-stream blocks, Qwen2.5-VL + ByT5 text encoders, CFG by guiders."""

import torch
from diffusers import (
    AdaptiveProjectedMixGuidance,
    AutoencoderKLHunyuanImage,
    AutoencoderKLHunyuanImageRefiner,
    FlowMatchEulerDiscreteScheduler,
    HunyuanImagePipeline,
    HunyuanImageRefinerPipeline,
    HunyuanImageTransformer2DModel,
)
from tiny_tokenizers import byte_level_qwen2_tokenizer
from transformers import ByT5Tokenizer, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, T5Config, T5EncoderModel

from tiny_families import TinyCase


def build_tiny_hunyuanimage() -> HunyuanImagePipeline:
    """From diffusers' HunyuanImage 2.1 test configuration, with 2 + 2 blocks and a 300-token Qwen vocabulary."""
    torch.manual_seed(0)
    transformer = HunyuanImageTransformer2DModel(
        in_channels=4,
        out_channels=4,
        num_attention_heads=4,
        attention_head_dim=8,
        num_layers=2,
        num_single_layers=2,
        num_refiner_layers=1,
        patch_size=(1, 1),
        guidance_embeds=False,
        text_embed_dim=32,
        text_embed_2_dim=32,
        rope_axes_dim=(4, 4),
    )
    torch.manual_seed(0)
    vae = AutoencoderKLHunyuanImage(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        block_out_channels=(32, 64, 64, 64),
        layers_per_block=1,
        scaling_factor=0.476986,
        spatial_compression_ratio=8,
        sample_size=128,
    )
    torch.manual_seed(0)
    text_encoder = Qwen2_5_VLForConditionalGeneration(
        Qwen2_5_VLConfig(
            text_config={
                "hidden_size": 32,
                "intermediate_size": 32,
                "num_hidden_layers": 2,
                "num_attention_heads": 2,
                "num_key_value_heads": 2,
                "rope_scaling": {"mrope_section": [2, 2, 4], "rope_type": "default", "type": "default"},
                "rope_theta": 1000000.0,
                "vocab_size": 300,
            },
            vision_config={
                "depth": 2,
                "hidden_size": 32,
                "intermediate_size": 32,
                "num_heads": 2,
                "out_hidden_size": 32,
            },
            hidden_size=32,
            vocab_size=300,
            vision_end_token_id=299,
            vision_start_token_id=298,
            vision_token_id=297,
            image_token_id=296,
            video_token_id=295,
        )
    )
    torch.manual_seed(0)
    text_encoder_2 = T5EncoderModel(
        T5Config(
            d_model=32,
            d_kv=4,
            d_ff=16,
            num_layers=2,
            num_heads=2,
            relative_attention_num_buckets=8,
            relative_attention_max_distance=32,
            vocab_size=256,
            feed_forward_proj="gated-gelu",
            dense_act_fn="gelu_new",
            is_encoder_decoder=False,
            use_cache=False,
            tie_word_embeddings=False,
        )
    )
    for module in (transformer, vae, text_encoder, text_encoder_2):
        module.eval()
    pipeline = HunyuanImagePipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0),
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=byte_level_qwen2_tokenizer(),
        text_encoder_2=text_encoder_2,
        tokenizer_2=ByT5Tokenizer(),
        transformer=transformer,
        guider=AdaptiveProjectedMixGuidance(adaptive_projected_guidance_start_step=2),
        ocr_guider=AdaptiveProjectedMixGuidance(adaptive_projected_guidance_start_step=3),
    )
    # Text tokens after the prompt template (1000 for the released model); the template alone is
    # about 200 tokens with this byte-level tokenizer, so 256 keeps the prompt.
    pipeline.tokenizer_max_length = 256
    return pipeline


CASES = [
    TinyCase(
        name="hunyuanimage",
        pipeline_class="HunyuanImagePipeline",
        build=build_tiny_hunyuanimage,
        defaults={"width": 16, "height": 16, "steps": 4},
    ),
]


def build_tiny_hunyuanimage_refiner() -> HunyuanImageRefinerPipeline:
    """The base case's Qwen2.5-VL encoder with a guidance-distilled 3D transformer (latents beside the input
    image's latents) and a 5-level refiner VAE (16x, its two latent frames packed as channels)."""
    base = build_tiny_hunyuanimage()
    torch.manual_seed(0)
    transformer = HunyuanImageTransformer2DModel(
        in_channels=16,
        out_channels=8,
        num_attention_heads=4,
        attention_head_dim=8,
        num_layers=2,
        num_single_layers=2,
        num_refiner_layers=1,
        patch_size=(1, 1, 1),
        guidance_embeds=True,
        text_embed_dim=32,
        text_embed_2_dim=None,
        rope_axes_dim=(2, 2, 4),
    ).eval()
    torch.manual_seed(0)
    vae = AutoencoderKLHunyuanImageRefiner(latent_channels=4, block_out_channels=(8, 8, 8, 8, 8), layers_per_block=1)
    pipeline = HunyuanImageRefinerPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=vae.eval(),
        text_encoder=base.text_encoder,
        tokenizer=base.tokenizer,
        transformer=transformer,
    )
    pipeline.tokenizer_max_length = 512  # the template alone is about 230 byte-level tokens
    return pipeline


CASES.append(
    TinyCase(
        name="hunyuanimage-refiner",
        pipeline_class="HunyuanImageRefinerPipeline",
        build=build_tiny_hunyuanimage_refiner,
        defaults={"width": 32, "height": 32, "steps": 4},
        inputs=(("image", (32, 32)),),
    )
)
