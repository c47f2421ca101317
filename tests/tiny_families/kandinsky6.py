"""Kandinsky 6 text/image-to-video-and-audio.

A ``Kandinsky6Transformer3DModel`` of 1 text block per track and 2 fused video/audio blocks (width
16, the released checkpoints' ``ca_rope``, ``cross_gates`` and ``fix_modulation``), with the text
encoders, processor and HunyuanVideo VAE of the Kandinsky 5 cases, and a tiny MMAudio VAE and
vocoder, so that the audio track is denoised beside the video (and dropped) as with a released
checkpoint. The super-resolution pipeline gets a tiny transformer and K-VAE of its own
(``build_kandinsky6_sr``).
"""

from __future__ import annotations

import torch
from diffusers import (
    FlowMatchEulerDiscreteScheduler,
    Kandinsky6SRPipeline,
    Kandinsky6SRTransformer3DModel,
    Kandinsky6SRVAE,
    Kandinsky6TI2VAPipeline,
    Kandinsky6Transformer3DModel,
    MMAudioVAE,
    MMAudioVocoder,
)
from tiny_tokenizers import qwen_vl_tokenizer

from tiny_families import TinyCase, scale_weights
from tiny_families.hunyuan_video import tiny_hunyuan_video_vae
from tiny_families.kandinsky5 import TRANSFORMER, text_components

AUDIO_CHANNELS = 4


def build_kandinsky6() -> Kandinsky6TI2VAPipeline:
    torch.manual_seed(0)
    transformer = Kandinsky6Transformer3DModel(
        **TRANSFORMER,
        visual_cond=True,
        in_audio_dim=AUDIO_CHANNELS,
        out_audio_dim=AUDIO_CHANNELS,
        text_token_padding=True,
        ca_rope=True,
        cross_gates=True,
        fix_modulation=True,
        visual_token_type_num_embeddings=2,
    ).eval()
    torch.manual_seed(0)
    vae = tiny_hunyuan_video_vae()
    # The input image reaches the video only through attention to its one extra latent frame: at init
    # scale another picture moves the pixels by a level or two. Larger image latents and weights carry it.
    scale_weights(vae.encoder.conv_out, factor=8.0)
    scale_weights(transformer, factor=2.0)
    torch.manual_seed(0)
    # One audio latent per 32 samples at 1 kHz: 10 for the 5 frames of the tiny case at 16 fps.
    audio_vae = MMAudioVAE(
        mel_bins=8,
        latent_channels=AUDIO_CHANNELS,
        hidden_channels=8,
        channel_multipliers=(1,),
        layers_per_block=1,
        sample_rate=1024,
        n_fft=64,
        hop_length=16,
    ).eval()
    torch.manual_seed(0)
    vocoder = MMAudioVocoder(
        num_mels=8,
        upsample_initial_channel=8,
        upsample_rates=(4, 4),
        upsample_kernel_sizes=(8, 8),
        resblock_kernel_sizes=(3,),
        resblock_dilation_sizes=((1,),),
    ).eval()
    return Kandinsky6TI2VAPipeline(
        transformer=transformer,
        vae=vae,
        audio_vae=audio_vae,
        vocoder=vocoder,
        **text_components(qwen_vl_tokenizer()),
    )


def build_kandinsky6_sr() -> Kandinsky6SRPipeline:
    """Super-resolution: a 2-block transformer (width 16) trained on 32x32 tiles and a 3-level, 4-channel
    K-VAE (4x spatially, 4x in time), so a tile is 8x8 latent tokens, the least NABLA attention's 8x8 blocks
    take. At the 2x upscale a tile covers 16x16 input pixels: a 24x16 video takes two tiles. No latent
    upscaler: tiles are upscaled as pixels and encoded."""
    torch.manual_seed(0)
    transformer = Kandinsky6SRTransformer3DModel(
        in_visual_dim=4,
        out_visual_dim=4,
        time_dim=16,
        model_dim=16,
        ff_dim=16,
        num_visual_blocks=2,
        axes_dims=(2, 2, 4),
        tile_sizes=((32, 32),),
    ).eval()
    torch.manual_seed(0)
    vae = Kandinsky6SRVAE(
        latent_channels=4,
        encoder_block_out_channels=(4, 4, 4),
        decoder_block_out_channels=(4, 4, 4),
        layers_per_block=1,
    ).eval()
    return Kandinsky6SRPipeline(transformer=transformer, vae=vae, scheduler=FlowMatchEulerDiscreteScheduler())


TEXT = {"max_sequence_length": 512}  # the byte-level template spells its system prompt in ~620 tokens
CASES = [
    TinyCase(
        name="kandinsky6",
        pipeline_class="Kandinsky6TI2VAPipeline",
        build=build_kandinsky6,
        defaults={"width": 16, "height": 16, "frames": 5, "steps": 3, "call_defaults": TEXT},
    ),
    TinyCase(
        name="kandinsky6-i2va",
        pipeline_class="Kandinsky6TI2VAPipeline",
        build=build_kandinsky6,
        defaults={"width": 16, "height": 16, "frames": 5, "steps": 3, "call_defaults": TEXT},
        inputs=(("image", (16, 16)),),
    ),
    TinyCase(
        name="kandinsky6-sr",
        pipeline_class="Kandinsky6SRPipeline",
        build=build_kandinsky6_sr,
        # 2x: the 24x16 video becomes 48x32 in two tiles, each a loop of 2 steps.
        defaults={"width": 24, "height": 16, "frames": 5, "steps": 2, "call_defaults": {"resolution_scale": 2}},
        videos=(("video", (24, 16), 5),),
        prompt="",
        loops=2,
    ),
]
