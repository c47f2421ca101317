"""Tiny diffusers pipelines with random weights, built offline, for tests of the cache.

FLUX comes from the engine's builtin model; Wan 2.1 (text-to-video, CFG as a
second transformer call per step) is built here from diffusers' own test
configuration.
"""

from __future__ import annotations

import torch
from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanPipeline, WanTransformer3DModel
from transformers import UMT5Config, UMT5EncoderModel

from engine_service.models.tokenizers import small_t5_tokenizer


def build_tiny_wan(seed: int = 0, num_layers: int = 4) -> WanPipeline:
    torch.manual_seed(seed)
    vae = AutoencoderKLWan(
        base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True]
    )
    torch.manual_seed(seed)
    text_encoder = UMT5EncoderModel(
        UMT5Config(
            vocab_size=1000,
            d_model=32,
            d_ff=37,
            d_kv=8,
            num_layers=2,
            num_heads=4,
            relative_attention_num_buckets=8,
            decoder_start_token_id=0,
        )
    )
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
