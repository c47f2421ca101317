"""Tiny diffusers pipelines with fixed-seed random weights, built offline, for tests of the cache and loading.

FLUX (2 double-stream + 4 single-stream blocks, 8x VAE) and Wan 2.1
(text-to-video, CFG as a second transformer call per step) are built from
diffusers' own test configurations. Their images are noise; the engine's
trained default model is elsewhere (engine_service/models/default_model).
"""

from __future__ import annotations

import torch
from diffusers import (
    AutoencoderKL,
    AutoencoderKLWan,
    FlowMatchEulerDiscreteScheduler,
    FluxPipeline,
    FluxTransformer2DModel,
    WanPipeline,
    WanTransformer3DModel,
)
from tiny_tokenizers import byte_level_clip_tokenizer, small_t5_tokenizer
from transformers import (
    CLIPImageProcessor,
    CLIPTextConfig,
    CLIPTextModel,
    CLIPVisionConfig,
    CLIPVisionModelWithProjection,
    T5Config,
    T5EncoderModel,
    UMT5Config,
    UMT5EncoderModel,
)

#: A 2-layer T5 (and UMT5) text encoder, as in diffusers' own pipeline tests.
TINY_T5 = {
    "vocab_size": 1000,
    "d_model": 32,
    "d_ff": 37,
    "d_kv": 8,
    "num_layers": 2,
    "num_heads": 4,
    "relative_attention_num_buckets": 8,
    "decoder_start_token_id": 0,
}
#: A 2-layer CLIP text encoder (with projection: SD3 and others use the projected pooled output).
TINY_CLIP = {
    "bos_token_id": 0,
    "eos_token_id": 1,
    "pad_token_id": 1,
    "hidden_size": 32,
    "intermediate_size": 37,
    "layer_norm_eps": 1e-5,
    "num_attention_heads": 4,
    "num_hidden_layers": 2,
    "vocab_size": 1000,
    "hidden_act": "gelu",
    "projection_dim": 32,
    "max_position_embeddings": 77,
}


def tiny_flux_components(
    seed: int = 0,
    in_channels: int = 16,
    out_channels: int | None = None,
    transformer: FluxTransformer2DModel | None = None,
) -> dict:
    """The modules of a random FLUX pipeline: 2 double-stream + 4 single-stream blocks, 8x VAE with 4 latent
    channels (16 per packed token), CLIP + T5 text encoders, all in eval mode. ``in_channels`` grows for
    pipelines that feed extra channels (Fill: masked image and mask).

    Given a ``transformer`` (a full-size one, for benchmarks), the text encoders and the VAE
    stay tiny but are sized to feed it: T5 width = its text width, CLIP width = its pooled width,
    VAE latent channels = its output channels / 4.
    """
    if transformer is None:
        torch.manual_seed(seed)
        transformer = FluxTransformer2DModel(
            patch_size=1,
            in_channels=in_channels,
            out_channels=out_channels,
            num_layers=2,
            num_single_layers=4,
            attention_head_dim=16,
            num_attention_heads=2,
            joint_attention_dim=32,
            pooled_projection_dim=32,
            guidance_embeds=True,
            axes_dims_rope=[4, 4, 8],
        )
    config = transformer.config
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(CLIPTextConfig(**{**TINY_CLIP, "hidden_size": config.pooled_projection_dim}))
    torch.manual_seed(seed)
    text_encoder_2 = T5EncoderModel(T5Config(**{**TINY_T5, "d_model": config.joint_attention_dim}))
    vae = tiny_vae(seed, latent_channels=(config.out_channels or config.in_channels) // 4)
    # Modules built from a config start in train mode; T5 dropout would make outputs random.
    for module in (transformer, text_encoder, text_encoder_2, vae):
        module.eval()
    return {
        "scheduler": FlowMatchEulerDiscreteScheduler(),
        "text_encoder": text_encoder,
        "text_encoder_2": text_encoder_2,
        "tokenizer": byte_level_clip_tokenizer(),
        "tokenizer_2": small_t5_tokenizer(),
        "transformer": transformer,
        "vae": vae,
    }


def tiny_vae(seed: int = 0, latent_channels: int = 4) -> AutoencoderKL:
    """An 8x ``AutoencoderKL`` (4 levels, widths 8-16) in eval mode, as FLUX and other image pipelines use."""
    torch.manual_seed(seed)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 8, 16, 16),
        layers_per_block=1,
        latent_channels=latent_channels,
        norm_num_groups=8,
        sample_size=256,
        use_quant_conv=False,
        use_post_quant_conv=False,
        shift_factor=0.0609,
        scaling_factor=1.5035,
    ).eval()


def tiny_t5(seed: int = 0, umt5: bool = False) -> T5EncoderModel | UMT5EncoderModel:
    """The 2-layer T5 (or UMT5) encoder of :data:`TINY_T5`, in eval mode."""
    torch.manual_seed(seed)
    if umt5:
        return UMT5EncoderModel(UMT5Config(**TINY_T5)).eval()
    return T5EncoderModel(T5Config(**TINY_T5)).eval()


def build_tiny_flux(seed: int = 0, transformer: FluxTransformer2DModel | None = None) -> FluxPipeline:
    """A random FLUX pipeline: 2 double-stream + 4 single-stream blocks, 8x VAE, in eval mode (a given
    ``transformer`` gets tiny encoders and VAE sized to feed it: see :func:`tiny_flux_components`)."""
    return FluxPipeline(**tiny_flux_components(seed, transformer=transformer))


#: The 2-head Wan-style video transformer that the Wan, SkyReels-V2 and ChronoEdit cases share
#: (add ``in_channels``, ``num_layers`` and, for image inputs, ``image_dim``).
TINY_WAN_TRANSFORMER = {
    "patch_size": (1, 2, 2),
    "num_attention_heads": 2,
    "attention_head_dim": 12,
    "out_channels": 16,
    "text_dim": 32,
    "freq_dim": 256,
    "ffn_dim": 32,
    "cross_attn_norm": True,
    "qk_norm": "rms_norm_across_heads",
    "rope_max_seq_len": 32,
}


def tiny_wan_vae(seed: int = 0) -> AutoencoderKLWan:
    """The Wan 2.1 VAE (8x spatial, 4x temporal, 16 latent channels) at its smallest."""
    torch.manual_seed(seed)
    return AutoencoderKLWan(
        base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True]
    ).eval()


def tiny_umt5(seed: int = 0) -> UMT5EncoderModel:
    torch.manual_seed(seed)
    return UMT5EncoderModel(UMT5Config(**TINY_T5)).eval()


def tiny_clip_vision(seed: int = 0) -> dict:
    """A CLIP vision image encoder (4-dim embeddings) and its processor, as pipeline components."""
    torch.manual_seed(seed)
    encoder = CLIPVisionModelWithProjection(
        CLIPVisionConfig(
            hidden_size=4,
            projection_dim=4,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=32,
            intermediate_size=16,
            patch_size=1,
        )
    ).eval()
    return {"image_encoder": encoder, "image_processor": CLIPImageProcessor(crop_size=32, size=32)}


def build_tiny_wan(seed: int = 0, num_layers: int = 4) -> WanPipeline:
    vae = tiny_wan_vae(seed)
    text_encoder = tiny_umt5(seed)
    torch.manual_seed(seed)
    transformer = WanTransformer3DModel(**TINY_WAN_TRANSFORMER, in_channels=16, num_layers=num_layers).eval()
    return WanPipeline(
        tokenizer=small_t5_tokenizer(),
        text_encoder=text_encoder,
        vae=vae,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0),
        transformer=transformer,
    )


def run_wan(pipe: WanPipeline, steps: int = 10, seed: int = 0) -> torch.Tensor:
    with torch.inference_mode():
        return pipe(
            prompt="a cat",
            negative_prompt="bad",
            num_inference_steps=steps,
            height=16,
            width=16,
            num_frames=5,
            guidance_scale=6.0,
            max_sequence_length=16,
            generator=torch.Generator().manual_seed(seed),
            output_type="pt",
        ).frames


def run_flux(pipe, steps: int = 8, seed: int = 3, size: int = 64) -> torch.Tensor:
    with torch.inference_mode():
        return pipe(
            "a red circle",
            width=size,
            height=size,
            num_inference_steps=steps,
            guidance_scale=3.5,
            max_sequence_length=64,
            generator=torch.Generator().manual_seed(seed),
            output_type="pt",
        ).images
