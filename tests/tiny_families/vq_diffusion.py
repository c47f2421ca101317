"""VQ-Diffusion: a 3-block discrete-token transformer over a 2-level VQ-VAE's codebook (8x8 tokens, 16x16
pixels), a tiny CLIP text encoder and learned classifier-free embeddings."""

import torch
from diffusers import Transformer2DModel, VQDiffusionPipeline, VQDiffusionScheduler, VQModel
from diffusers.pipelines.deprecated.vq_diffusion.pipeline_vq_diffusion import LearnedClassifierFreeSamplingEmbeddings
from tiny_tokenizers import byte_level_clip_tokenizer
from transformers import CLIPTextConfig, CLIPTextModel

from tiny_families import TinyCase, scale_weights

#: Codebook entries; the transformer predicts one more class, the mask token.
CODEBOOK = 12
TEXT_WIDTH = 32
TOKENS = 16


def build_tiny_vq_diffusion() -> VQDiffusionPipeline:
    torch.manual_seed(0)
    vqvae = VQModel(
        block_out_channels=[8, 8],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"],
        latent_channels=3,
        num_vq_embeddings=CODEBOOK,
        vq_embed_dim=3,
        norm_num_groups=8,
    ).eval()
    torch.manual_seed(0)
    transformer = Transformer2DModel(
        num_attention_heads=2,
        attention_head_dim=8,
        num_vector_embeds=CODEBOOK + 1,
        sample_size=8,
        cross_attention_dim=TEXT_WIDTH,
        num_layers=3,
        num_embeds_ada_norm=100,
        norm_num_groups=8,
        activation_fn="geglu-approximate",
    ).eval()
    scale_weights(transformer.transformer_blocks, factor=3.0)
    torch.manual_seed(0)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
            hidden_size=TEXT_WIDTH,
            intermediate_size=16,
            num_attention_heads=2,
            num_hidden_layers=1,
            vocab_size=1000,
            max_position_embeddings=TOKENS,
        )
    ).eval()
    torch.manual_seed(0)
    embeddings = LearnedClassifierFreeSamplingEmbeddings(learnable=True, hidden_size=TEXT_WIDTH, length=TOKENS)
    with torch.no_grad():
        embeddings.embeddings.normal_()
    return VQDiffusionPipeline(
        vqvae=vqvae,
        text_encoder=text_encoder,
        tokenizer=byte_level_clip_tokenizer(model_max_length=TOKENS),
        transformer=transformer,
        scheduler=VQDiffusionScheduler(num_vec_classes=CODEBOOK + 1, num_train_timesteps=100),
        learned_classifier_free_sampling_embeddings=embeddings,
    )


CASES = [
    TinyCase(
        name="vq-diffusion", pipeline_class="VQDiffusionPipeline", build=build_tiny_vq_diffusion, defaults={"steps": 4}
    ),
]
