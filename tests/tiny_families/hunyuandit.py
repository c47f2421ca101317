"""HunyuanDiT text-to-image: 4 blocks with long skips, BERT + T5 text encoders, in-batch CFG; PAG and
ControlNet on the same modules."""

import torch
from diffusers import (
    AutoencoderKL,
    DDPMScheduler,
    HunyuanDiT2DControlNetModel,
    HunyuanDiT2DModel,
    HunyuanDiTControlNetPipeline,
    HunyuanDiTPAGPipeline,
    HunyuanDiTPipeline,
)
from tiny_pipelines import TINY_T5
from tiny_tokenizers import small_bert_tokenizer, small_t5_tokenizer
from transformers import BertConfig, BertModel, T5Config, T5EncoderModel

from tiny_families import TinyCase


def build_tiny_hunyuandit() -> HunyuanDiTPipeline:
    """From diffusers' HunyuanDiT test configuration, with 4 blocks (2 skips) and a 1-level VAE."""
    torch.manual_seed(0)
    transformer = HunyuanDiT2DModel(
        sample_size=16,
        num_layers=4,
        patch_size=2,
        attention_head_dim=8,
        num_attention_heads=3,
        in_channels=4,
        cross_attention_dim=32,
        cross_attention_dim_t5=32,
        pooled_projection_dim=16,
        hidden_size=24,
        activation_fn="gelu-approximate",
    )
    torch.manual_seed(0)
    text_encoder = BertModel(
        BertConfig(vocab_size=1000, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37)
    )
    torch.manual_seed(0)
    text_encoder_2 = T5EncoderModel(T5Config(**TINY_T5))
    torch.manual_seed(0)
    vae = AutoencoderKL(block_out_channels=(4,), layers_per_block=1, latent_channels=4, norm_num_groups=1)
    for module in (transformer, text_encoder, text_encoder_2, vae):
        module.eval()
    return HunyuanDiTPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=small_bert_tokenizer(),
        transformer=transformer,
        scheduler=DDPMScheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
        text_encoder_2=text_encoder_2,
        tokenizer_2=small_t5_tokenizer(),
    )


def build_tiny_hunyuandit_controlnet() -> HunyuanDiTControlNetPipeline:
    """A ControlNet of 4 // 2 - 1 = 1 block: its one residual joins the long skip into the last block."""
    from tiny_families.flux import wake_controlnet

    base = build_tiny_hunyuandit()
    torch.manual_seed(0)
    controlnet = HunyuanDiT2DControlNetModel(
        sample_size=16,
        transformer_num_layers=4,
        patch_size=2,
        attention_head_dim=8,
        num_attention_heads=3,
        in_channels=4,
        cross_attention_dim=32,
        cross_attention_dim_t5=32,
        pooled_projection_dim=16,
        hidden_size=24,
        activation_fn="gelu-approximate",
    )
    return HunyuanDiTControlNetPipeline(**base.components, controlnet=wake_controlnet(controlnet))


CASES = [
    TinyCase(
        name="hunyuandit",
        pipeline_class="HunyuanDiTPipeline",
        build=build_tiny_hunyuandit,
        defaults={"width": 16, "height": 16, "steps": 4, "call_defaults": {"use_resolution_binning": False}},
    ),
    TinyCase(
        name="hunyuandit-pag",
        pipeline_class="HunyuanDiTPAGPipeline",
        build=lambda: HunyuanDiTPAGPipeline(**build_tiny_hunyuandit().components, pag_applied_layers=["blocks.1"]),
        defaults={"width": 16, "height": 16, "steps": 4, "call_defaults": {"use_resolution_binning": False}},
    ),
    TinyCase(
        name="hunyuandit-controlnet",
        pipeline_class="HunyuanDiTControlNetPipeline",
        build=build_tiny_hunyuandit_controlnet,
        defaults={"width": 16, "height": 16, "steps": 4, "call_defaults": {"use_resolution_binning": False}},
        inputs=(("control", (16, 16)),),
    ),
]
