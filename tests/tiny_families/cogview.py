"""CogView3-Plus (T5) and CogView4 (GLM-4): one list of dual-stream blocks, in-batch CFG; CogView4 Control
(the control image's latents as extra transformer input channels)."""

import torch
from diffusers import (
    AutoencoderKL,
    CogVideoXDDIMScheduler,
    CogView3PlusPipeline,
    CogView3PlusTransformer2DModel,
    CogView4ControlPipeline,
    CogView4Pipeline,
    CogView4Transformer2DModel,
    FlowMatchEulerDiscreteScheduler,
)
from tiny_pipelines import TINY_T5
from tiny_tokenizers import byte_level_qwen2_tokenizer, small_t5_tokenizer
from transformers import GlmConfig, GlmForCausalLM, T5Config, T5EncoderModel

from tiny_families import TinyCase


def _vae() -> AutoencoderKL:
    torch.manual_seed(0)
    return AutoencoderKL(block_out_channels=(4,), layers_per_block=1, latent_channels=4, norm_num_groups=1).eval()


def build_tiny_cogview3plus() -> CogView3PlusPipeline:
    """From diffusers' CogView3-Plus test configuration, with 3 blocks and a 1-level VAE."""
    torch.manual_seed(0)
    transformer = CogView3PlusTransformer2DModel(
        patch_size=2,
        in_channels=4,
        num_layers=3,
        attention_head_dim=4,
        num_attention_heads=2,
        out_channels=4,
        text_embed_dim=32,
        time_embed_dim=8,
        condition_dim=2,
        pos_embed_max_size=8,
        sample_size=8,
    ).eval()
    torch.manual_seed(0)
    text_encoder = T5EncoderModel(T5Config(**TINY_T5)).eval()
    return CogView3PlusPipeline(
        tokenizer=small_t5_tokenizer(),
        text_encoder=text_encoder,
        vae=_vae(),
        transformer=transformer,
        scheduler=CogVideoXDDIMScheduler(),
    )


def build_tiny_cogview4(pipeline_class: type = CogView4Pipeline, in_channels: int = 4) -> CogView4Pipeline:
    """From diffusers' CogView4 test configuration, with 3 blocks, a 1-level VAE and a byte-level tokenizer."""
    torch.manual_seed(0)
    transformer = CogView4Transformer2DModel(
        patch_size=2,
        in_channels=in_channels,
        num_layers=3,
        attention_head_dim=4,
        num_attention_heads=4,
        out_channels=4,
        text_embed_dim=32,
        time_embed_dim=8,
        condition_dim=4,
    ).eval()
    torch.manual_seed(0)
    config = GlmConfig(
        vocab_size=300,
        hidden_size=32,
        intermediate_size=8,
        num_hidden_layers=2,
        num_attention_heads=4,
        head_dim=8,
        pad_token_id=0,
    )
    text_encoder = GlmForCausalLM(config).eval()
    scheduler = FlowMatchEulerDiscreteScheduler(
        base_shift=0.25, max_shift=0.75, base_image_seq_len=256, use_dynamic_shifting=True, time_shift_type="linear"
    )
    return pipeline_class(
        tokenizer=byte_level_qwen2_tokenizer(padding_side="left", prefix="<sop>"),
        text_encoder=text_encoder,
        vae=_vae(),
        transformer=transformer,
        scheduler=scheduler,
    )


def build_tiny_cogview4_control() -> CogView4ControlPipeline:
    """The CogView4 case with a transformer that also takes the control image's 4 latent channels."""
    return build_tiny_cogview4(CogView4ControlPipeline, in_channels=8)


CASES = [
    TinyCase(
        name="cogview3plus",
        pipeline_class="CogView3PlusPipeline",
        build=build_tiny_cogview3plus,
        defaults={"width": 16, "height": 16, "steps": 4, "call_defaults": {"max_sequence_length": 16}},
    ),
    TinyCase(
        name="cogview4",
        pipeline_class="CogView4Pipeline",
        build=build_tiny_cogview4,
        defaults={"width": 16, "height": 16, "steps": 4, "call_defaults": {"max_sequence_length": 16}},
    ),
    TinyCase(
        name="cogview4-control",
        pipeline_class="CogView4ControlPipeline",
        build=build_tiny_cogview4_control,
        defaults={"width": 16, "height": 16, "steps": 4, "call_defaults": {"max_sequence_length": 16}},
        inputs=(("control", (16, 16)),),
    ),
]
