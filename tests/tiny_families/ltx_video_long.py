"""LTX-Video long multi-prompt image-to-video: overlapping temporal windows, each a denoising loop."""

import torch
from diffusers import (
    AutoencoderKLLTXVideo,
    LTXEulerAncestralRFScheduler,
    LTXI2VLongMultiPromptPipeline,
    LTXVideoTransformer3DModel,
)
from tiny_pipelines import TINY_T5
from tiny_tokenizers import small_t5_tokenizer
from transformers import T5Config, T5EncoderModel

from tiny_families import TinyCase

#: 17 frames of 32x32: 3 latent frames of 4x4 with this VAE (8x temporal compression as the real one, 8x
#: spatial), in windows of 2 latent frames overlapping by 1: 2 windows, fused back into 3 latent frames.
#: Each window runs 3 - 1 = 2 steps; one spatial tile decodes the 4x4 latents.
VIDEO = {
    "width": 32,
    "height": 32,
    "frames": 17,
    "steps": 3,
    "call_defaults": {
        "max_sequence_length": 16,
        "temporal_tile_size": 16,
        "temporal_overlap": 8,
        "decode_horizontal_tiles": 1,
        "decode_vertical_tiles": 1,
    },
}


def build_ltx_long() -> LTXI2VLongMultiPromptPipeline:
    torch.manual_seed(0)
    transformer = LTXVideoTransformer3DModel(
        in_channels=8,
        out_channels=8,
        patch_size=1,
        patch_size_t=1,
        num_attention_heads=4,
        attention_head_dim=8,
        cross_attention_dim=32,
        num_layers=2,
        caption_channels=32,
    ).eval()
    torch.manual_seed(0)
    vae = AutoencoderKLLTXVideo(
        latent_channels=8,
        block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8),
        spatio_temporal_scaling=(True, True, True, False),
        decoder_spatio_temporal_scaling=(True, True, True, False),
        layers_per_block=(1, 1, 1, 1, 1),
        decoder_layers_per_block=(1, 1, 1, 1, 1),
        patch_size=1,
        patch_size_t=1,
        encoder_causal=True,
        decoder_causal=False,
    ).eval()
    vae.use_framewise_encoding = False
    vae.use_framewise_decoding = False
    torch.manual_seed(0)
    text_encoder = T5EncoderModel(T5Config(**TINY_T5)).eval()
    return LTXI2VLongMultiPromptPipeline(
        scheduler=LTXEulerAncestralRFScheduler(),
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=small_t5_tokenizer(),
        transformer=transformer,
    )


CASES = [
    TinyCase(
        name="ltx-video-long",
        pipeline_class="LTXI2VLongMultiPromptPipeline",
        build=build_ltx_long,
        defaults=VIDEO,
        inputs=(("image", (32, 32)),),
        loops=2,
        loop_steps=2,
    ),
]
