"""LTX-Video text- and image-to-video: a 2-block transformer, a VAE with 4x spatial and temporal compression."""

import torch
from diffusers import (
    AutoencoderKLLTXVideo,
    FlowMatchEulerDiscreteScheduler,
    LTXConditionPipeline,
    LTXImageToVideoPipeline,
    LTXPipeline,
    LTXVideoTransformer3DModel,
)
from tiny_pipelines import TINY_T5
from tiny_tokenizers import small_t5_tokenizer
from transformers import T5Config, T5EncoderModel

from tiny_families import TinyCase

#: 9 frames of 32x32 (the pipeline wants multiples of 32): 3 latent frames of 8x8 latent pixels with this
#: VAE (4x temporal and spatial compression; the real one compresses 8x and 32x).
VIDEO = {"width": 32, "height": 32, "frames": 9, "steps": 4, "call_defaults": {"max_sequence_length": 16}}


def _build(pipeline_class, scheduler=None, scaling: tuple[bool, ...] = (True, True, False, False)):
    """``pipeline_class`` with the tiny components; ``scaling`` says which VAE stages compress 2x in
    space and time (the default 4x; one more ``True`` gives 8x, as the real VAE's temporal factor)."""
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
        spatio_temporal_scaling=scaling,
        decoder_spatio_temporal_scaling=scaling,
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
    return pipeline_class(
        scheduler=scheduler or FlowMatchEulerDiscreteScheduler(),
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=small_t5_tokenizer(),
        transformer=transformer,
    )


CASES = [
    TinyCase(name="ltx-video", pipeline_class="LTXPipeline", build=lambda: _build(LTXPipeline), defaults=VIDEO),
    TinyCase(
        name="ltx-video-i2v",
        pipeline_class="LTXImageToVideoPipeline",
        build=lambda: _build(LTXImageToVideoPipeline),
        defaults=VIDEO,
        inputs=(("image", (32, 32)),),
    ),
    TinyCase(
        name="ltx-video-condition",
        pipeline_class="LTXConditionPipeline",
        build=lambda: _build(LTXConditionPipeline),
        defaults=VIDEO,
        inputs=(("image", (32, 32)),),
    ),
]
