"""ERNIE-Image: a 2-layer ``ErnieImageTransformer2DModel`` (width 32), the FLUX.2 VAE at 8x with 4 latent
channels (the pipeline patchifies 2x2, so 16 transformer channels at 16x) and a 2-layer Mistral 3 text model
(width 16) whose second-to-last hidden states condition the image, over the byte-level Qwen tokenizer."""

from __future__ import annotations

import torch
from diffusers import (
    AutoencoderKLFlux2,
    ErnieImagePipeline,
    ErnieImageTransformer2DModel,
    FlowMatchEulerDiscreteScheduler,
)
from tiny_tokenizers import qwen_vl_tokenizer
from transformers import Mistral3Config, Mistral3Model

from tiny_families import TinyCase, scale_weights


def build_tiny_ernie_image() -> ErnieImagePipeline:
    tokenizer = qwen_vl_tokenizer(model_max_length=64)
    torch.manual_seed(0)
    transformer = ErnieImageTransformer2DModel(
        hidden_size=32,
        num_attention_heads=2,
        num_layers=2,
        ffn_hidden_size=64,
        in_channels=16,
        out_channels=16,
        patch_size=1,
        text_in_dim=16,
        rope_axes_dim=(4, 6, 6),
    )
    # diffusers starts the shared AdaLN modulation and the output projection at zero, which makes every block an
    # identity and the prediction zero: make them random.
    torch.nn.init.normal_(transformer.adaLN_modulation[-1].weight, std=0.2)
    torch.nn.init.normal_(transformer.final_linear.weight, std=0.2)
    scale_weights(transformer.layers, factor=3.0)
    torch.manual_seed(0)
    vae = AutoencoderKLFlux2(
        sample_size=32,
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 8, 16, 16),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        use_quant_conv=False,
        use_post_quant_conv=False,
    )
    torch.manual_seed(0)
    text_encoder = Mistral3Model(
        Mistral3Config(
            text_config={
                "model_type": "mistral",
                "vocab_size": len(tokenizer),
                "hidden_size": 16,
                "intermediate_size": 37,
                "max_position_embeddings": 512,
                "num_attention_heads": 4,
                "num_hidden_layers": 2,
                "num_key_value_heads": 2,
                "sliding_window": None,
            },
            vision_config={
                "model_type": "pixtral",
                "hidden_size": 16,
                "num_hidden_layers": 1,
                "num_attention_heads": 4,
                "intermediate_size": 37,
                "image_size": 30,
                "patch_size": 6,
                "num_channels": 3,
            },
            image_token_index=tokenizer.convert_tokens_to_ids("<|image_pad|>"),
        )
    )
    for module in (transformer, vae, text_encoder):
        module.eval()
    return ErnieImagePipeline(
        transformer=transformer,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler=FlowMatchEulerDiscreteScheduler(),
    )


CASES = [
    TinyCase(
        name="ernie-image",
        pipeline_class="ErnieImagePipeline",
        build=build_tiny_ernie_image,
        defaults={"width": 32, "height": 32, "steps": 4},
    ),
]
