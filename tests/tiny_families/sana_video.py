"""Sana-Video text- and image-to-video: 2 linear-attention blocks, a tiny Gemma-2 encoder, a tiny Wan VAE.
Sana-WM: a camera-controlled transformer of 2 blocks (one gated-delta, one softmax) over a tiny LTX-2 VAE."""

import torch
from diffusers import (
    AutoencoderKLWan,
    FlowMatchEulerDiscreteScheduler,
    SanaImageToVideoPipeline,
    SanaVideoPipeline,
    SanaVideoTransformer3DModel,
    SanaWMPipeline,
    SanaWMTransformer3DModel,
)
from tiny_tokenizers import small_gemma_tokenizer
from transformers import Gemma2Config, Gemma2Model

from client_sdk import CameraTrajectory
from tiny_families import TinyCase
from tiny_families.ltx2 import tiny_ltx2_vae


def tiny_gemma2(tokenizer) -> Gemma2Model:
    """A one-layer Gemma-2 of 8-wide hidden states over ``tokenizer``'s vocabulary."""
    torch.manual_seed(0)
    return Gemma2Model(
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


def build_sana_wm() -> SanaWMPipeline:
    """Two 32-wide blocks (every second one softmax attention) with 16-wide heads, reading a 4-channel LTX-2
    VAE that compresses 4x in space and time (the real one 32x and 8x: the pipeline reads the ratios from
    the VAE, and the Plucker rays of a latent frame are 6 x 4 channels). The Plucker embedder starts at
    zero in diffusers (a checkpoint fills it); drawn at std 0.5, another trajectory moves the pixels by
    more than ten levels."""
    tokenizer = small_gemma_tokenizer(model_max_length=2048)  # the pipeline's instruction prefix is 1000+ tokens
    torch.manual_seed(0)
    transformer = SanaWMTransformer3DModel(
        in_channels=4,
        num_layers=2,
        hidden_size=32,
        num_attention_heads=2,
        softmax_every_n=2,
        linear_head_dim=16,
        chunk_plucker_channels=24,
        chunk_plucker_post_attn_blocks=2,
        caption_channels=8,
        mlp_ratio=2.0,
    ).eval()
    with torch.no_grad():
        torch.manual_seed(1)
        transformer.plucker_embedder.proj.weight.normal_(0.0, 0.5)
        transformer.plucker_embedder.proj.bias.normal_(0.0, 0.5)
    vae = tiny_ltx2_vae()
    return SanaWMPipeline(
        tokenizer=tokenizer,
        text_encoder=tiny_gemma2(tokenizer),
        vae=vae,
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(),
    )


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
    text_encoder = tiny_gemma2(tokenizer)
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
    TinyCase(
        name="sana-wm",
        pipeline_class="SanaWMPipeline",
        build=build_sana_wm,
        # 9 frames of 32x32: 3 latent frames of 8x8; 2 steps.
        defaults={"width": 32, "height": 32, "frames": 9, "steps": 2, "call_defaults": {"max_sequence_length": 16}},
        inputs=(("image", (32, 32)),),
        # Forward for 8 frames after the first, seen through a 90-degree lens over the 32x32 input image.
        camera=CameraTrajectory(action="w-8", intrinsics=(16.0, 16.0, 16.0, 16.0)),
        other_camera=CameraTrajectory(action="i-4,l-4", intrinsics=(16.0, 16.0, 16.0, 16.0)),
    ),
]
