"""Bria Fibo (and Edit): 2 double-stream + 2 single-stream blocks, a 2-layer SmolLM3 text encoder (width
16; the released vocabulary size, as the pipeline encodes an empty prompt as token 128000) over the
byte-level Qwen tokenizer, a 16x Wan 2.2-style VAE with 16 latent channels. Fibo 2: see its builder."""

from __future__ import annotations

import torch
from diffusers import (
    AutoencoderKLWan,
    BriaFibo2Pipeline,
    BriaFibo2Transformer2DModel,
    BriaFiboEditPipeline,
    BriaFiboPipeline,
    BriaFiboTransformer2DModel,
    FlowMatchEulerDiscreteScheduler,
)
from tiny_tokenizers import byte_level_qwen2_tokenizer, qwen_vl_tokenizer
from transformers import Qwen3VLForConditionalGeneration, SmolLM3Config, SmolLM3ForCausalLM
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

from engine_service.models.vl_processors import ImageOnlyQwen3VLProcessor
from tiny_families import TinyCase, scale_weights, tiny_qwen3vl_config
from tiny_families.flux2 import _transformer_and_vae

LATENT_CHANNELS = 16
TEXT_WIDTH = 16


def _vae() -> AutoencoderKLWan:
    torch.manual_seed(0)
    return AutoencoderKLWan(
        base_dim=3,
        z_dim=LATENT_CHANNELS,
        in_channels=12,
        out_channels=12,
        is_residual=True,
        patch_size=2,
        latents_mean=[0.0] * LATENT_CHANNELS,
        latents_std=[1.0] * LATENT_CHANNELS,
        dim_mult=[1, 1, 1, 1],
        num_res_blocks=1,
        scale_factor_spatial=16,
        scale_factor_temporal=4,
        temperal_downsample=[False, True, True],
    )


def _smollm3() -> SmolLM3ForCausalLM:
    torch.manual_seed(0)
    return SmolLM3ForCausalLM(
        SmolLM3Config(
            hidden_size=TEXT_WIDTH,
            intermediate_size=16,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=2,
            max_position_embeddings=1024,
            pad_token_id=0,
        )
    )


def _fibo_components() -> dict:
    torch.manual_seed(0)
    transformer = BriaFiboTransformer2DModel(
        patch_size=1,
        in_channels=LATENT_CHANNELS,
        num_layers=2,  # two groups (double and single), two blocks each
        num_single_layers=2,
        attention_head_dim=8,
        num_attention_heads=2,
        joint_attention_dim=2 * TEXT_WIDTH,  # the encoder's last two layers, side by side
        axes_dims_rope=[2, 2, 4],
        text_encoder_dim=TEXT_WIDTH,
    )
    scale_weights(transformer.transformer_blocks, transformer.single_transformer_blocks, factor=3.0)
    modules = {"transformer": transformer, "vae": _vae(), "text_encoder": _smollm3()}
    for module in modules.values():
        module.eval()
    return {
        **modules,
        "scheduler": FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True),
        "tokenizer": byte_level_qwen2_tokenizer(),
    }


def build_tiny_bria_fibo() -> BriaFiboPipeline:
    return BriaFiboPipeline(**_fibo_components())


def build_tiny_bria_fibo_edit() -> BriaFiboEditPipeline:
    return BriaFiboEditPipeline(**_fibo_components())


CASES = [
    TinyCase(
        name="bria-fibo",
        pipeline_class="BriaFiboPipeline",
        build=build_tiny_bria_fibo,
        defaults={"width": 32, "height": 32, "steps": 4},
    ),
    TinyCase(
        name="bria-fibo-edit",
        pipeline_class="BriaFiboEditPipeline",
        build=build_tiny_bria_fibo_edit,
        defaults={"width": 32, "height": 32, "steps": 4},
        inputs=(("image", (32, 32)), ("mask", (32, 32))),
    ),
]


def build_tiny_bria_fibo2() -> BriaFibo2Pipeline:
    """Fibo 2: 2 main blocks (both inject a text bundle) and 1 noise-refiner block of width 32, a Perceiver
    of 4-8 gist tokens, and a 3-layer Qwen3-VL encoder (width 16) whose bundles are its three layers."""
    tokenizer = qwen_vl_tokenizer()
    torch.manual_seed(0)
    transformer = BriaFibo2Transformer2DModel(
        in_channels=4,
        patch_size=2,
        dim=32,
        n_layers=2,
        n_refiner_layers=1,
        n_heads=2,
        cap_feat_dim=3 * TEXT_WIDTH,  # a bundle: three encoder layers side by side
        injection_layer_ids=(0, 1),
        perceiver_num_layers=1,
        min_num_gist_tokens=4,
        max_num_gist_tokens=8,
        gist_step=4,
        gist_min_text_len=4,
        gist_max_text_len=64,
        axes_dims=(4, 6, 6),
        axes_lens=(64, 32, 32),
    )
    _, vae = _transformer_and_vae(0, guidance_embeds=False)
    torch.manual_seed(0)
    text_encoder = Qwen3VLForConditionalGeneration(
        tiny_qwen3vl_config(tokenizer, layers=3, width=TEXT_WIDTH, max_positions=4096, deepstack_visual_indexes=[0])
    )
    for module in (transformer, vae, text_encoder):
        module.eval()
    images = Qwen2VLImageProcessorPil(patch_size=16, temporal_patch_size=2, merge_size=2, max_pixels=64 * 64)
    pipe = BriaFibo2Pipeline(
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True),
        vae=vae,
        text_encoder=text_encoder,
        processor=ImageOnlyQwen3VLProcessor(image_processor=images, tokenizer=tokenizer),
    )
    # The released encoder's 36 layers make six bundles; the tiny one has three layers: a Perceiver bundle and
    # one for each injection block.
    pipe.text_encoder_out_layers = ((1, 2, 3),) * 3
    return pipe


CASES.append(
    TinyCase(
        name="bria-fibo2",
        pipeline_class="BriaFibo2Pipeline",
        build=build_tiny_bria_fibo2,
        defaults={"width": 32, "height": 32, "steps": 4},
    )
)
