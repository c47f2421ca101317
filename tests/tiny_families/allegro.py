"""Allegro text-to-video: a 2-block transformer, a tiled VAE with 4x temporal compression."""

import torch
from diffusers import AllegroPipeline, AllegroTransformer3DModel, AutoencoderKLAllegro, DDIMScheduler
from tiny_tokenizers import small_t5_tokenizer
from transformers import T5Config, T5EncoderModel

from tiny_families import TinyCase


def build_allegro() -> AllegroPipeline:
    torch.manual_seed(0)
    transformer = AllegroTransformer3DModel(
        num_attention_heads=2,
        attention_head_dim=12,
        in_channels=4,
        out_channels=4,
        num_layers=2,
        cross_attention_dim=24,
        sample_width=8,
        sample_height=8,
        sample_frames=8,
        caption_channels=24,
    ).eval()
    torch.manual_seed(0)
    vae = AutoencoderKLAllegro(
        in_channels=3,
        out_channels=3,
        down_block_types=("AllegroDownBlock3D",) * 4,
        up_block_types=("AllegroUpBlock3D",) * 4,
        block_out_channels=(8, 8, 8, 8),
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=2,
        temporal_compression_ratio=4,
    ).eval()
    # Its tiled decode fills only whole tiles (24 frames x 320 pixels by default), leaving the tiny 8-frame
    # 16x16 video all zeros (gray): one tile of exactly that size decodes it.
    vae.kernel = vae.stride = (8, 16, 16)
    torch.manual_seed(0)
    text_encoder = T5EncoderModel(
        T5Config(
            d_ff=37, d_kv=8, d_model=24, num_heads=4, num_layers=2, relative_attention_num_buckets=8, vocab_size=1000
        )
    ).eval()
    # No enable_tiling() here: the family entry switches it on when the engine loads the pipeline.
    return AllegroPipeline(
        tokenizer=small_t5_tokenizer(),
        text_encoder=text_encoder,
        vae=vae,
        transformer=transformer,
        scheduler=DDIMScheduler(),
    )


CASES = [
    TinyCase(
        name="allegro",
        pipeline_class="AllegroPipeline",
        build=build_allegro,
        # 8 frames (the pipeline's even-count rule: 2 latent frames).
        defaults={"width": 16, "height": 16, "frames": 8, "steps": 4, "call_defaults": {"max_sequence_length": 16}},
    ),
]
