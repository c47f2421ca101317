"""Sana-Video text- and image-to-video: 2 linear-attention blocks, a tiny Gemma-2 encoder, a tiny Wan VAE."""

import torch
from diffusers import (
    AutoencoderKLWan,
    FlowMatchEulerDiscreteScheduler,
    SanaImageToVideoPipeline,
    SanaVideoPipeline,
    SanaVideoTransformer3DModel,
)
from tiny_tokenizers import small_gemma_tokenizer
from transformers import Gemma2Config, Gemma2Model

from tiny_families import TinyCase


def build_sana_video(pipeline_class=SanaVideoPipeline):
    """From diffusers' Sana-Video test configuration, with the tiny Gemma tokenizer's vocabulary."""
    tokenizer = small_gemma_tokenizer()
    torch.manual_seed(0)
    transformer = SanaVideoTransformer3DModel(
        in_channels=16,
        out_channels=16,
        num_attention_heads=2,
        attention_head_dim=12,
        num_layers=2,
        num_cross_attention_heads=2,
        cross_attention_head_dim=12,
        cross_attention_dim=24,
        caption_channels=8,
        mlp_ratio=2.5,
        sample_size=8,
        patch_size=(1, 2, 2),
        norm_elementwise_affine=False,
        norm_eps=1e-6,
        qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32,
    ).eval()
    torch.manual_seed(0)
    vae = AutoencoderKLWan(
        base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True]
    ).eval()
    torch.manual_seed(0)
    text_encoder = Gemma2Model(
        Gemma2Config(
            head_dim=16,
            hidden_size=8,
            intermediate_size=64,
            num_attention_heads=2,
            num_hidden_layers=1,
            num_key_value_heads=2,
            vocab_size=len(tokenizer),
            attn_implementation="eager",
        )
    ).eval()
    return pipeline_class(
        transformer=transformer,
        vae=vae,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0),
        text_encoder=text_encoder,
        tokenizer=tokenizer,
    )


VIDEO = {
    "width": 32,
    "height": 32,
    "frames": 5,
    "steps": 3,
    # The prompt-enhancing system text and the aspect-ratio bins are for full-size models.
    "call_defaults": {"max_sequence_length": 16, "complex_human_instruction": None, "use_resolution_binning": False},
}

CASES = [
    TinyCase(name="sana-video", pipeline_class="SanaVideoPipeline", build=build_sana_video, defaults=VIDEO),
    TinyCase(
        name="sana-video-i2v",
        pipeline_class="SanaImageToVideoPipeline",
        build=lambda: build_sana_video(SanaImageToVideoPipeline),
        defaults=VIDEO,
        inputs=(("image", (32, 32)),),
    ),
]
