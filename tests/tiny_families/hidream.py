"""HiDream-I1: double-stream then single-stream blocks with a per-block Llama state, four text encoders."""

import torch
from diffusers import (
    AutoencoderKL,
    FlowMatchEulerDiscreteScheduler,
    HiDreamImagePipeline,
    HiDreamImageTransformer2DModel,
)
from tiny_pipelines import TINY_T5
from tiny_tokenizers import byte_level_clip_tokenizer, byte_level_qwen2_tokenizer, small_t5_tokenizer
from transformers import (
    CLIPTextConfig,
    CLIPTextModelWithProjection,
    LlamaConfig,
    LlamaForCausalLM,
    T5Config,
    T5EncoderModel,
)

from tiny_families import TinyCase


def build_tiny_hidream() -> HiDreamImagePipeline:
    """From diffusers' HiDream test configuration, with 2 + 2 blocks, a 1-level VAE and in-memory tokenizers."""
    torch.manual_seed(0)
    transformer = HiDreamImageTransformer2DModel(
        patch_size=2,
        in_channels=4,
        out_channels=4,
        num_layers=2,
        num_single_layers=2,
        attention_head_dim=8,
        num_attention_heads=4,
        caption_channels=[32, 16],
        text_emb_dim=64,
        num_routed_experts=4,
        num_activated_experts=2,
        axes_dims_rope=(4, 2, 2),
        max_resolution=(32, 32),
        llama_layers=(0, 1, 0, 1),
    )
    torch.manual_seed(0)
    vae = AutoencoderKL(
        block_out_channels=(4,),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=1,
        scaling_factor=0.3611,
        shift_factor=0.1159,
    )
    clip_config = CLIPTextConfig(
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
        hidden_size=32,
        intermediate_size=37,
        layer_norm_eps=1e-05,
        num_attention_heads=4,
        num_hidden_layers=2,
        vocab_size=1000,
        hidden_act="gelu",
        projection_dim=32,
        max_position_embeddings=128,
    )
    torch.manual_seed(0)
    text_encoder = CLIPTextModelWithProjection(clip_config)
    torch.manual_seed(1)
    text_encoder_2 = CLIPTextModelWithProjection(clip_config)
    torch.manual_seed(0)
    text_encoder_3 = T5EncoderModel(T5Config(**TINY_T5))
    torch.manual_seed(0)
    text_encoder_4 = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=300,
            hidden_size=16,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            pad_token_id=0,
            bos_token_id=0,
            eos_token_id=0,
        )
    )
    for module in (transformer, vae, text_encoder, text_encoder_2, text_encoder_3, text_encoder_4):
        module.eval()
    pipeline = HiDreamImagePipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=byte_level_clip_tokenizer(),
        text_encoder_2=text_encoder_2,
        tokenizer_2=byte_level_clip_tokenizer(),
        text_encoder_3=text_encoder_3,
        tokenizer_3=small_t5_tokenizer(),
        text_encoder_4=text_encoder_4,
        tokenizer_4=byte_level_qwen2_tokenizer(prefix="<|begin_of_text|>"),
        transformer=transformer,
    )
    # HiDream renders every request at its native pixel area, (default_sample_size x VAE scale)^2:
    # 16 x 16 for this 1-level VAE (128 x 8 = 1024 for HiDream-I1).
    pipeline.default_sample_size = 16
    return pipeline


CASES = [
    TinyCase(
        name="hidream",
        pipeline_class="HiDreamImagePipeline",
        build=build_tiny_hidream,
        defaults={"width": 16, "height": 16, "steps": 4, "call_defaults": {"max_sequence_length": 16}},
    ),
]
