"""Kandinsky 6 text/image-to-video-and-audio.

A ``Kandinsky6Transformer3DModel`` of 1 text block per track and 2 fused video/audio blocks (width
16, the released checkpoints' ``ca_rope``, ``cross_gates`` and ``fix_modulation``), with the text
encoders, processor and HunyuanVideo VAE of the Kandinsky 5 cases, and a tiny MMAudio VAE and
vocoder, so that the audio track is denoised beside the video (and dropped) as with a released
checkpoint.
"""

from __future__ import annotations

import torch
from diffusers import Kandinsky6TI2VAPipeline, Kandinsky6Transformer3DModel, MMAudioVAE, MMAudioVocoder
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
]
