"""OmniGen: a tiny two-layer transformer, an 8x VAE and a Llama tokenizer that spells words letter by letter."""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, OmniGenPipeline, OmniGenTransformer2DModel
from tiny_tokenizers import small_llama_tokenizer

from engine_service.models.omnigen_processor import provide_omnigen_processor
from tiny_families import TinyCase, scale_weights

#: Half the width of a head: the rotary embedding's per-frequency factors.
_ROPE = {"short_factor": [1.0] * 4, "long_factor": [1.0] * 4}


def build_tiny_omnigen(seed: int = 0) -> OmniGenPipeline:
    provide_omnigen_processor()
    tokenizer = small_llama_tokenizer()
    torch.manual_seed(seed)
    transformer = OmniGenTransformer2DModel(
        in_channels=4,
        patch_size=2,
        hidden_size=16,
        num_attention_heads=2,
        num_key_value_heads=2,
        intermediate_size=32,
        num_layers=2,
        pad_token_id=2,
        vocab_size=len(tokenizer),
        rope_scaling=_ROPE,
        pos_embed_max_size=192,  # as released: the family's aspect limit for references counts on it
        time_step_dim=16,
    ).eval()
    scale_weights(transformer.layers, factor=2.0)
    torch.manual_seed(seed)
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 8, 16, 16),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=256,
        scaling_factor=1.5035,
    ).eval()
    return OmniGenPipeline(
        transformer=transformer, vae=vae, scheduler=FlowMatchEulerDiscreteScheduler(), tokenizer=tokenizer
    )


CASES = [
    TinyCase(
        name="omnigen",
        pipeline_class="OmniGenPipeline",
        build=build_tiny_omnigen,
        defaults={"width": 32, "height": 32, "steps": 2},
        inputs=(("reference", (32, 32)),),
        prompt="<img><|image_1|></img> a red circle",
    ),
]
