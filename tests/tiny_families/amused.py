"""aMUSEd: a masked-token UViT over VQ-GAN tokens; one generator per call, no step callback; its
image-to-image and inpainting pipelines from the same components."""

import torch
from diffusers import (
    AmusedImg2ImgPipeline,
    AmusedInpaintPipeline,
    AmusedPipeline,
    AmusedScheduler,
    UVit2DModel,
    VQModel,
)
from tiny_tokenizers import byte_level_clip_tokenizer
from transformers import CLIPTextConfig, CLIPTextModelWithProjection

from tiny_families import TinyCase


def build_tiny_amused(pipeline_class: type = AmusedPipeline) -> AmusedPipeline:
    """From diffusers' aMUSEd test configuration, with 3 transformer layers."""
    torch.manual_seed(0)
    transformer = UVit2DModel(
        hidden_size=8,
        use_bias=False,
        hidden_dropout=0.0,
        cond_embed_dim=8,
        micro_cond_encode_dim=2,
        micro_cond_embed_dim=10,
        encoder_hidden_size=8,
        vocab_size=32,
        codebook_size=8,
        in_channels=8,
        block_out_channels=8,
        num_res_blocks=1,
        downsample=True,
        upsample=True,
        block_num_heads=1,
        num_hidden_layers=3,
        num_attention_heads=1,
        attention_dropout=0.0,
        intermediate_size=8,
        layer_norm_eps=1e-06,
        ln_elementwise_affine=True,
    )
    torch.manual_seed(0)
    vqvae = VQModel(
        act_fn="silu",
        block_out_channels=[8],
        down_block_types=["DownEncoderBlock2D"],
        in_channels=3,
        latent_channels=8,
        layers_per_block=1,
        norm_num_groups=8,
        num_vq_embeddings=8,
        out_channels=3,
        sample_size=8,
        up_block_types=["UpDecoderBlock2D"],
        mid_block_add_attention=False,
        lookup_from_codebook=True,
    )
    torch.manual_seed(0)
    text_encoder = CLIPTextModelWithProjection(
        CLIPTextConfig(
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
            hidden_size=8,
            intermediate_size=8,
            layer_norm_eps=1e-05,
            num_attention_heads=1,
            num_hidden_layers=1,
            vocab_size=1000,
            projection_dim=8,
        )
    )
    for module in (transformer, vqvae, text_encoder):
        module.eval()
    return pipeline_class(
        vqvae=vqvae,
        tokenizer=byte_level_clip_tokenizer(),
        text_encoder=text_encoder,
        transformer=transformer,
        scheduler=AmusedScheduler(mask_token_id=31),
    )


CASES = [
    TinyCase(
        name="amused",
        pipeline_class="AmusedPipeline",
        build=build_tiny_amused,
        defaults={"width": 8, "height": 8, "steps": 4},
    ),
    # At strength 0.6 of 4 steps the pipelines run int(2.4) = 2 steps, where diffusers' usual count is 3.
    TinyCase(
        name="amused-img2img",
        pipeline_class="AmusedImg2ImgPipeline",
        build=lambda: build_tiny_amused(AmusedImg2ImgPipeline),
        defaults={"width": 8, "height": 8, "steps": 4},
        inputs=(("image", (8, 8)),),
        strength=0.6,
    ),
    TinyCase(
        name="amused-inpaint",
        pipeline_class="AmusedInpaintPipeline",
        build=lambda: build_tiny_amused(AmusedInpaintPipeline),
        defaults={"width": 8, "height": 8, "steps": 4},
        inputs=(("image", (8, 8)), ("mask", (8, 8))),
        strength=0.6,
    ),
]
