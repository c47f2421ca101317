"""HunyuanVideo text-to-video and SkyReels-V1 image-to-video: 2 dual-stream + 2 single-stream blocks,
a Llama and a CLIP text encoder."""

import torch
from diffusers import (
    AutoencoderKLHunyuanVideo,
    FlowMatchEulerDiscreteScheduler,
    HunyuanSkyreelsImageToVideoPipeline,
    HunyuanVideoPipeline,
    HunyuanVideoTransformer3DModel,
)
from tiny_tokenizers import _byte_alphabet, byte_level_clip_tokenizer
from transformers import CLIPTextConfig, CLIPTextModel, LlamaConfig, LlamaModel, LlamaTokenizer

from tiny_families import TinyCase


def byte_level_llama_tokenizer() -> LlamaTokenizer:
    """A Llama tokenizer with one token per byte and no merges (4 specials + 256 ids)."""
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, "<pad>": 3}
    for char in _byte_alphabet():
        vocab[char] = len(vocab)
    return LlamaTokenizer(vocab=vocab, merges=[], pad_token="<pad>")


def build_hunyuan_video(
    pipeline_class=HunyuanVideoPipeline, in_channels: int = 4
) -> HunyuanVideoPipeline | HunyuanSkyreelsImageToVideoPipeline:
    """``in_channels`` 8 for SkyReels-V1: the image latents beside the noise."""
    torch.manual_seed(0)
    transformer = HunyuanVideoTransformer3DModel(
        in_channels=in_channels,
        out_channels=4,
        num_attention_heads=2,
        attention_head_dim=10,
        num_layers=2,
        num_single_layers=2,
        num_refiner_layers=1,
        patch_size=1,
        patch_size_t=1,
        guidance_embeds=True,
        text_embed_dim=16,
        pooled_projection_dim=8,
        rope_axes_dim=(2, 4, 4),
    ).eval()
    torch.manual_seed(0)
    vae = AutoencoderKLHunyuanVideo(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        down_block_types=("HunyuanVideoDownBlock3D",) * 4,
        up_block_types=("HunyuanVideoUpBlock3D",) * 4,
        block_out_channels=(8, 8, 8, 8),
        layers_per_block=1,
        act_fn="silu",
        norm_num_groups=4,
        scaling_factor=0.476986,
        spatial_compression_ratio=8,
        temporal_compression_ratio=4,
        mid_block_add_attention=True,
    ).eval()
    torch.manual_seed(0)
    text_encoder = LlamaModel(
        LlamaConfig(
            bos_token_id=1,
            eos_token_id=2,
            pad_token_id=3,
            hidden_size=16,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=2,
            vocab_size=1000,
            hidden_act="gelu",
        )
    ).eval()
    torch.manual_seed(0)
    text_encoder_2 = CLIPTextModel(
        CLIPTextConfig(
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
            hidden_size=8,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=2,
            vocab_size=1000,
            hidden_act="gelu",
            projection_dim=32,
        )
    ).eval()
    return pipeline_class(
        transformer=transformer,
        vae=vae,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0),
        text_encoder=text_encoder,
        tokenizer=byte_level_llama_tokenizer(),
        text_encoder_2=text_encoder_2,
        tokenizer_2=byte_level_clip_tokenizer(),
    )


VIDEO = {
    "width": 16,
    "height": 16,
    "frames": 5,
    "steps": 4,
    # The default template is a long Llama chat prompt; a tiny model takes the bare prompt.
    "call_defaults": {"max_sequence_length": 16, "prompt_template": {"template": "{}", "crop_start": 0}},
}

CASES = [
    TinyCase(name="hunyuan-video", pipeline_class="HunyuanVideoPipeline", build=build_hunyuan_video, defaults=VIDEO),
    TinyCase(
        name="hunyuan-skyreels-i2v",
        pipeline_class="HunyuanSkyreelsImageToVideoPipeline",
        build=lambda: build_hunyuan_video(HunyuanSkyreelsImageToVideoPipeline, in_channels=8),
        defaults=VIDEO,
        inputs=(("image", (16, 16)),),
    ),
]
