"""Tiny diffusers pipelines with fixed-seed random weights, built offline, for tests of the cache and loading.

FLUX (2 double-stream + 4 single-stream blocks, 8x VAE) and Wan 2.1
(text-to-video, CFG as a second transformer call per step) are built from
diffusers' own test configurations. Their images are noise; the engine's
trained default model is elsewhere (engine_service/models/default_model).
"""

from __future__ import annotations

import torch
from diffusers import (
    AutoencoderKL,
    AutoencoderKLWan,
    FlowMatchEulerDiscreteScheduler,
    FluxPipeline,
    FluxTransformer2DModel,
    WanPipeline,
    WanTransformer3DModel,
)
from tiny_tokenizers import byte_level_clip_tokenizer, small_t5_tokenizer
from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel, UMT5Config, UMT5EncoderModel

#: A 2-layer T5 (and UMT5) text encoder, as in diffusers' own pipeline tests.
TINY_T5 = {
    "vocab_size": 1000,
    "d_model": 32,
    "d_ff": 37,
    "d_kv": 8,
    "num_layers": 2,
    "num_heads": 4,
    "relative_attention_num_buckets": 8,
    "decoder_start_token_id": 0,
}


def build_tiny_flux(seed: int = 0, transformer: FluxTransformer2DModel | None = None) -> FluxPipeline:
    """A random FLUX pipeline: 2 double-stream + 4 single-stream blocks, 8x VAE, in eval mode.

    Given a ``transformer`` (a full-size one, for benchmarks), the text encoders and the VAE
    stay tiny but are sized to feed it: T5 width = its text width, CLIP width = its pooled width,
    VAE latent channels = its input channels / 4.
    """
    if transformer is None:
        torch.manual_seed(seed)
        transformer = FluxTransformer2DModel(
            patch_size=1,
            in_channels=16,  # 4 latent channels x 2x2 packing
            num_layers=2,
            num_single_layers=4,
            attention_head_dim=16,
            num_attention_heads=2,
            joint_attention_dim=32,
            pooled_projection_dim=32,
            guidance_embeds=True,
            axes_dims_rope=[4, 4, 8],
        )
    config = transformer.config
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
            hidden_size=config.pooled_projection_dim,
            intermediate_size=37,
            layer_norm_eps=1e-5,
            num_attention_heads=4,
            num_hidden_layers=2,
            vocab_size=1000,
            hidden_act="gelu",
            projection_dim=32,
            max_position_embeddings=77,
        )
    )
    torch.manual_seed(seed)
    text_encoder_2 = T5EncoderModel(T5Config(**{**TINY_T5, "d_model": config.joint_attention_dim}))
    torch.manual_seed(seed)
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 8, 16, 16),
        layers_per_block=1,
        latent_channels=config.in_channels // 4,
        norm_num_groups=8,
        sample_size=256,
        use_quant_conv=False,
        use_post_quant_conv=False,
        shift_factor=0.0609,
        scaling_factor=1.5035,
    )
    # Modules built from a config start in train mode; T5 dropout would make outputs random.
    for module in (transformer, text_encoder, text_encoder_2, vae):
        module.eval()
    return FluxPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=byte_level_clip_tokenizer(),
        tokenizer_2=small_t5_tokenizer(),
        transformer=transformer,
        vae=vae,
    )


def build_tiny_wan(seed: int = 0, num_layers: int = 4) -> WanPipeline:
    torch.manual_seed(seed)
    vae = AutoencoderKLWan(
        base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True]
    )
    torch.manual_seed(seed)
    text_encoder = UMT5EncoderModel(UMT5Config(**TINY_T5))
    torch.manual_seed(seed)
    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=12,
        in_channels=16,
        out_channels=16,
        text_dim=32,
        freq_dim=256,
        ffn_dim=32,
        num_layers=num_layers,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32,
    )
    for module in (vae, text_encoder, transformer):
        module.eval()
    return WanPipeline(
        tokenizer=small_t5_tokenizer(),
        text_encoder=text_encoder,
        vae=vae,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0),
        transformer=transformer,
    )


def run_wan(pipe: WanPipeline, steps: int = 10, seed: int = 0) -> torch.Tensor:
    with torch.inference_mode():
        return pipe(
            prompt="a cat",
            negative_prompt="bad",
            num_inference_steps=steps,
            height=16,
            width=16,
            num_frames=5,
            guidance_scale=6.0,
            max_sequence_length=16,
            generator=torch.Generator().manual_seed(seed),
            output_type="pt",
        ).frames


def run_flux(pipe, steps: int = 8, seed: int = 3, size: int = 64) -> torch.Tensor:
    with torch.inference_mode():
        return pipe(
            "a red circle",
            width=size,
            height=size,
            num_inference_steps=steps,
            guidance_scale=3.5,
            max_sequence_length=64,
            generator=torch.Generator().manual_seed(seed),
            output_type="pt",
        ).images
