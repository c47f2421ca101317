"""Ovis-Image: FLUX-like double- and single-stream blocks (one cache group), a Qwen3 text encoder."""

import torch
from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, OvisImagePipeline, OvisImageTransformer2DModel
from tiny_tokenizers import byte_level_qwen2_tokenizer
from transformers import Qwen3Config, Qwen3Model

from tiny_families import TinyCase


def build_tiny_ovis_image() -> OvisImagePipeline:
    """From diffusers' Ovis-Image test configuration, with 2 + 2 blocks and a byte-level tokenizer."""
    torch.manual_seed(0)
    transformer = OvisImageTransformer2DModel(
        patch_size=1,
        in_channels=4,
        out_channels=4,
        num_layers=2,
        num_single_layers=2,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=32,
        axes_dims_rope=(4, 4, 8),
    )
    torch.manual_seed(0)
    vae = AutoencoderKL(
        sample_size=32,
        block_out_channels=(4,),
        layers_per_block=1,
        latent_channels=1,
        norm_num_groups=1,
        use_quant_conv=False,
        use_post_quant_conv=False,
        shift_factor=0.0609,
        scaling_factor=1.5035,
    )
    torch.manual_seed(0)
    text_encoder = Qwen3Model(
        Qwen3Config(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=8,
            vocab_size=300,
            max_position_embeddings=512,
        )
    )
    for module in (transformer, vae, text_encoder):
        module.eval()
    pipe = OvisImagePipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=byte_level_qwen2_tokenizer(),
        transformer=transformer,
    )
    # The pipeline drops the first 28 hidden states (chat header and system prompt in Ovis' tokenizer); this
    # byte-level one spells them in over a hundred, so every prompt would encode alike: drop what it spells.
    (marked,) = pipe._get_messages("\x00")
    pipe.user_prompt_begin_id = len(pipe.tokenizer(marked[: marked.index("\x00")]).input_ids)
    return pipe


CASES = [
    TinyCase(
        name="ovis-image",
        pipeline_class="OvisImagePipeline",
        build=build_tiny_ovis_image,
        defaults={"width": 16, "height": 16, "steps": 4, "call_defaults": {"max_sequence_length": 16}},
    ),
]
