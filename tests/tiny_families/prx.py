"""PRX: one list of blocks, a T5Gemma text encoder, in-batch CFG; PRXPixel: the same over RGB pixels."""

import torch
from diffusers import (
    AutoencoderKL,
    FlowMatchEulerDiscreteScheduler,
    PRXPipeline,
    PRXPixelPipeline,
    PRXTransformer2DModel,
)
from tiny_tokenizers import byte_level_qwen2_tokenizer
from transformers.models.t5gemma.configuration_t5gemma import T5GemmaModuleConfig
from transformers.models.t5gemma.modeling_t5gemma import T5GemmaEncoder

from tiny_families import TinyCase


def build_tiny_prx() -> PRXPipeline:
    """From diffusers' PRX test configuration, with 3 blocks and a byte-level tokenizer."""
    torch.manual_seed(0)
    transformer = PRXTransformer2DModel(
        patch_size=1,
        in_channels=4,
        context_in_dim=8,
        hidden_size=8,
        mlp_ratio=2.0,
        num_heads=2,
        depth=3,
        axes_dim=[2, 2],
    )
    torch.manual_seed(0)
    vae = AutoencoderKL(
        sample_size=32,
        block_out_channels=(4,),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=1,
        use_quant_conv=False,
        use_post_quant_conv=False,
        shift_factor=0.0,
        scaling_factor=1.0,
    )
    encoder = {
        "vocab_size": 300,
        "hidden_size": 8,
        "intermediate_size": 16,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": 4,
        "max_position_embeddings": 64,
        "layer_types": ["full_attention"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "dropout_rate": 0.0,
        "hidden_activation": "gelu_pytorch_tanh",
        "rms_norm_eps": 1e-06,
        "attn_logit_softcapping": 50.0,
        "final_logit_softcapping": 30.0,
        "query_pre_attn_scalar": 4,
        "rope_theta": 10000.0,
        "sliding_window": 4096,
    }
    torch.manual_seed(0)
    text_encoder = T5GemmaEncoder(T5GemmaModuleConfig(**encoder))
    torch.manual_seed(1)
    with torch.no_grad():  # zero-initialised modulation gates make every block the identity: open them
        for param in transformer.parameters():
            if not param.any():
                param.normal_(0.0, 0.2)
    for module in (transformer, vae, text_encoder):
        module.eval()
    return PRXPipeline(
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(),
        text_encoder=text_encoder,
        tokenizer=byte_level_qwen2_tokenizer(model_max_length=16),
        vae=vae,
    )


def build_tiny_prx_pixel() -> PRXPixelPipeline:
    """PRX's tiny text encoder with a pixel-space transformer (RGB in, 4x4 pixel patches, a bottleneck
    input projection and resolution embeddings, as the released model's)."""
    components = build_tiny_prx().components
    torch.manual_seed(0)
    transformer = PRXTransformer2DModel(
        patch_size=4,
        in_channels=3,
        context_in_dim=8,
        hidden_size=8,
        mlp_ratio=2.0,
        num_heads=2,
        depth=3,
        axes_dim=[2, 2],
        bottleneck_size=8,
        resolution_embeds=True,
    ).eval()
    # The blocks' modulation starts at zero (gates 0: every block passes its input through, the prompt
    # never reaches the image); random modulation makes the blocks, and the prompt, count.
    with torch.no_grad():
        for block in transformer.blocks:
            for param in block.modulation.parameters():
                param.normal_(0.0, 0.3)
    return PRXPixelPipeline(
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(),
        text_encoder=components["text_encoder"],
        tokenizer=components["tokenizer"],
        prompt_max_tokens=16,
    )


CASES = [
    TinyCase(
        name="prx",
        pipeline_class="PRXPipeline",
        build=build_tiny_prx,
        defaults={"width": 16, "height": 16, "steps": 4, "call_defaults": {"use_resolution_binning": False}},
    ),
    TinyCase(
        name="prx-pixel",
        pipeline_class="PRXPixelPipeline",
        build=build_tiny_prx_pixel,
        defaults={"width": 32, "height": 32, "steps": 4, "call_defaults": {"use_resolution_binning": False}},
    ),
]
