"""CogVideoX text- and image-to-video, and CogVideoX 1.5 (two latent frames per token)."""

import torch
from diffusers import (
    AutoencoderKLCogVideoX,
    CogVideoXDDIMScheduler,
    CogVideoXFunControlPipeline,
    CogVideoXImageToVideoPipeline,
    CogVideoXPipeline,
    CogVideoXTransformer3DModel,
    CogVideoXVideoToVideoPipeline,
)
from tiny_pipelines import TINY_T5
from tiny_tokenizers import small_t5_tokenizer
from transformers import T5Config, T5EncoderModel

from tiny_families import TinyCase

#: 9 frames of 16x16: 3 latent frames of 2x2 latent pixels (one token each).
VIDEO = {"width": 16, "height": 16, "frames": 9, "steps": 4, "call_defaults": {"max_sequence_length": 16}}


def _build(pipeline_class, **transformer) -> CogVideoXPipeline | CogVideoXImageToVideoPipeline:
    torch.manual_seed(0)
    config = {
        "num_attention_heads": 2,
        "attention_head_dim": 16,
        "in_channels": 4,
        "out_channels": 4,
        "time_embed_dim": 2,
        "text_embed_dim": 32,
        "num_layers": 2,
        "sample_width": 2,
        "sample_height": 2,
        "sample_frames": 9,
        "patch_size": 2,
        "temporal_compression_ratio": 4,
        "max_text_seq_length": 16,
        "use_rotary_positional_embeddings": True,
    }
    model = CogVideoXTransformer3DModel(**{**config, **transformer}).eval()
    torch.manual_seed(0)
    vae = AutoencoderKLCogVideoX(
        in_channels=3,
        out_channels=3,
        down_block_types=("CogVideoXDownBlock3D",) * 4,
        up_block_types=("CogVideoXUpBlock3D",) * 4,
        block_out_channels=(8, 8, 8, 8),
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=2,
        temporal_compression_ratio=4,
    ).eval()
    torch.manual_seed(0)
    text_encoder = T5EncoderModel(T5Config(**TINY_T5)).eval()
    return pipeline_class(
        tokenizer=small_t5_tokenizer(),
        text_encoder=text_encoder,
        vae=vae,
        transformer=model,
        scheduler=CogVideoXDDIMScheduler(),
    )


CASES = [
    TinyCase(
        name="cogvideox",
        pipeline_class="CogVideoXPipeline",
        build=lambda: _build(CogVideoXPipeline),
        defaults=VIDEO,
    ),
    TinyCase(
        name="cogvideox-1.5",
        pipeline_class="CogVideoXPipeline",
        build=lambda: _build(CogVideoXPipeline, patch_size_t=2, patch_bias=False, sample_frames=9),
        defaults=VIDEO,
    ),
    TinyCase(
        name="cogvideox-i2v",
        pipeline_class="CogVideoXImageToVideoPipeline",
        build=lambda: _build(CogVideoXImageToVideoPipeline, in_channels=8, use_learned_positional_embeddings=True),
        defaults=VIDEO,
        inputs=(("image", (16, 16)),),
    ),
    TinyCase(
        name="cogvideox-v2v",
        pipeline_class="CogVideoXVideoToVideoPipeline",
        build=lambda: _build(CogVideoXVideoToVideoPipeline),
        defaults=VIDEO,
        videos=(("video", (16, 16), 9),),
    ),
    TinyCase(
        name="cogvideox-fun-control",
        pipeline_class="CogVideoXFunControlPipeline",
        # The noise's 4 latent channels and the control video's 4.
        build=lambda: _build(CogVideoXFunControlPipeline, in_channels=8),
        defaults=VIDEO,
        videos=(("control", (16, 16), 9),),
    ),
]
