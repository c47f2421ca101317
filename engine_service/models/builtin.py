"""The builtin default model: a tiny FLUX-architecture pipeline made in code.

It needs no download: every module is built from a config and initialised with
fixed-seed random weights, so every engine start produces the same weights and
the same images for the same request. Its images are noise-like (nothing was
trained); it exists so that a fresh checkout serves something real at once.
"""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

from engine_service.models.tokenizers import byte_level_clip_tokenizer, small_t5_tokenizer

BUILTIN_NAME = "default"
BUILTIN_SEED = 0
#: Pipeline-call settings of the builtin model (its T5 is tiny; 64 tokens is plenty).
BUILTIN_CALL_DEFAULTS = {"max_sequence_length": 64}
BUILTIN_DEFAULTS = {"width": 256, "height": 256, "steps": 8, "guidance_scale": 3.5}


def build_builtin_pipeline(seed: int = BUILTIN_SEED) -> FluxPipeline:
    """Build the tiny FLUX pipeline: 2 double-stream + 4 single-stream blocks, 8x VAE, in eval mode."""
    torch.manual_seed(seed)
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=16,  # 4 latent channels x 2x2 packing
        num_layers=2,
        num_single_layers=4,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=32,
        pooled_projection_dim=32,
        guidance_embeds=True,
        axes_dims_rope=[4, 4, 8],
    )
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
            hidden_size=32,
            intermediate_size=37,
            layer_norm_eps=1e-5,
            num_attention_heads=4,
            num_hidden_layers=2,
            vocab_size=1000,
            hidden_act="gelu",
            projection_dim=32,
            max_position_embeddings=77,
        )
    )
    torch.manual_seed(seed)
    text_encoder_2 = T5EncoderModel(
        T5Config(
            vocab_size=1000,
            d_model=32,
            d_ff=37,
            d_kv=8,
            num_layers=2,
            num_heads=4,
            relative_attention_num_buckets=8,
            decoder_start_token_id=0,
        )
    )
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
        use_quant_conv=False,
        use_post_quant_conv=False,
        shift_factor=0.0609,
        scaling_factor=1.5035,
    )
    # Modules built from a config start in train mode; T5 dropout would make outputs random.
    for module in (transformer, text_encoder, text_encoder_2, vae):
        module.eval()
    return FluxPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=byte_level_clip_tokenizer(),
        tokenizer_2=small_t5_tokenizer(),
        transformer=transformer,
        vae=vae,
    )
