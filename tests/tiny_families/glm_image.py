"""GLM-Image: a 2-layer GLM vision-language prior (width 32, 128 image-token codebook) over the byte-level
Qwen tokenizer with GLM's image and grid markers added as special tokens (the model config names their ids),
a 2-block ``GlmImageTransformer2DModel``, a 2-layer T5 glyph encoder over ByT5's byte tokenizer and an 8x VAE.
At 64x64 the prior samples a 2x2 grid of image tokens (and a 16x16 preview grid)."""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, GlmImagePipeline, GlmImageTransformer2DModel
from tiny_tokenizers import byte_level_qwen2_tokenizer
from tokenizers import AddedToken
from transformers import (
    ByT5Tokenizer,
    GlmImageConfig,
    GlmImageForConditionalGeneration,
    GlmImageProcessor,
    T5Config,
    T5EncoderModel,
)
from transformers.models.glm_image.image_processing_pil_glm_image import GlmImageImageProcessorPil

from tiny_families import TinyCase

#: GLM's markers: an image placeholder, the grid size brackets, and the image start and end tokens.
IMAGE, GRID_BOS, GRID_EOS, IMAGE_START, IMAGE_END, PAD = (
    "<|image|>",
    "<sop>",
    "<eop>",
    "<|begin_of_image|>",
    "<|end_of_image|>",
    "<|pad|>",
)
#: The processor's chat template: the message parts in order, an image as its placeholder.
CHAT_TEMPLATE = (
    "{% for m in messages %}{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<|image|>{% else %}{{ c['text'] }}{% endif %}{% endfor %}{% endfor %}"
)


def build_tiny_glm_image() -> GlmImagePipeline:
    tokenizer = byte_level_qwen2_tokenizer()
    tokenizer.add_tokens(
        [AddedToken(t, special=True) for t in (IMAGE, GRID_BOS, GRID_EOS, IMAGE_START, IMAGE_END, PAD)]
    )
    # The processor reads these markers from its tokenizer.
    tokenizer.image_token, tokenizer.grid_bos_token, tokenizer.grid_eos_token = IMAGE, GRID_BOS, GRID_EOS
    tokenizer.bos_token = IMAGE_START
    token = tokenizer.convert_tokens_to_ids
    processor = GlmImageProcessor(
        image_processor=GlmImageImageProcessorPil(), tokenizer=tokenizer, chat_template=CHAT_TEMPLATE
    )
    torch.manual_seed(0)
    prior = GlmImageForConditionalGeneration(
        GlmImageConfig(
            text_config={
                "vocab_size": len(tokenizer),
                "hidden_size": 32,
                "intermediate_size": 32,
                "num_hidden_layers": 2,
                "num_attention_heads": 2,
                "num_key_value_heads": 2,
                "max_position_embeddings": 512,
                "vision_vocab_size": 128,
                "rope_parameters": {"mrope_section": (4, 2, 2)},
                "eos_token_id": token(IMAGE_END),
                "pad_token_id": token(PAD),
            },
            vision_config={
                "depth": 2,
                "hidden_size": 32,
                "num_heads": 2,
                "image_size": 32,
                "patch_size": 8,
                "intermediate_size": 32,
            },
            vq_config={"embed_dim": 32, "num_embeddings": 128, "latent_channels": 32},
            image_token_id=token(IMAGE),
            image_start_token_id=token(IMAGE_START),
            image_end_token_id=token(IMAGE_END),
        )
    )
    text_encoder = T5EncoderModel(T5Config(vocab_size=384, d_model=16, d_kv=8, d_ff=16, num_layers=2, num_heads=2))
    torch.manual_seed(0)
    transformer = GlmImageTransformer2DModel(
        patch_size=2,
        in_channels=4,
        out_channels=4,
        num_layers=2,
        attention_head_dim=8,
        num_attention_heads=2,
        text_embed_dim=16,
        time_embed_dim=16,
        condition_dim=8,
        prior_vq_quantizer_codebook_size=128,
    )
    torch.manual_seed(0)
    vae = AutoencoderKL(
        block_out_channels=(4, 8, 16, 16),
        down_block_types=["DownEncoderBlock2D"] * 4,
        up_block_types=["UpDecoderBlock2D"] * 4,
        latent_channels=4,
        norm_num_groups=4,
        latents_mean=[0.0] * 4,
        latents_std=[1.0] * 4,
    )
    for module in (prior, text_encoder, transformer, vae):
        module.eval()
    return GlmImagePipeline(
        tokenizer=ByT5Tokenizer(),
        processor=processor,
        text_encoder=text_encoder,
        vision_language_encoder=prior,
        vae=vae,
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(),
    )


CASES = [
    TinyCase(
        name="glm-image",
        pipeline_class="GlmImagePipeline",
        build=build_tiny_glm_image,
        defaults={"width": 64, "height": 64, "steps": 4},
    ),
]
