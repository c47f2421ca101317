"""Chroma: 2 double-stream + 2 single-stream blocks, a tiny T5, 8x VAE; text-to-image, image-to-image
and inpainting on the same modules."""

import torch
from diffusers import (
    ChromaImg2ImgPipeline,
    ChromaInpaintPipeline,
    ChromaPipeline,
    ChromaTransformer2DModel,
    FlowMatchEulerDiscreteScheduler,
)
from tiny_pipelines import tiny_t5, tiny_vae
from tiny_tokenizers import small_t5_tokenizer

from tiny_families import TinyCase


def build_tiny_chroma(seed: int = 0) -> ChromaPipeline:
    torch.manual_seed(seed)
    transformer = ChromaTransformer2DModel(
        patch_size=1,
        in_channels=16,  # 4 latent channels x 2x2 packing
        num_layers=2,
        num_single_layers=2,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=32,
        axes_dims_rope=[4, 4, 8],
        approximator_hidden_dim=32,
        approximator_layers=1,
        approximator_num_channels=16,
    ).eval()
    return ChromaPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        text_encoder=tiny_t5(seed),
        tokenizer=small_t5_tokenizer(),
        transformer=transformer,
        vae=tiny_vae(seed),
    )


CASES = [
    TinyCase(
        name="chroma",
        pipeline_class="ChromaPipeline",
        build=build_tiny_chroma,
        defaults={"width": 32, "height": 32, "steps": 4, "call_defaults": {"max_sequence_length": 16}},
    ),
    TinyCase(
        name="chroma-img2img",
        pipeline_class="ChromaImg2ImgPipeline",
        build=lambda: ChromaImg2ImgPipeline.from_pipe(build_tiny_chroma()),
        defaults={"width": 32, "height": 32, "steps": 4, "call_defaults": {"max_sequence_length": 16}},
        inputs=(("image", (32, 32)),),
        # At the default 0.9, 4 steps start from int(4 - 3.6) = 0: pure noise, the image unused.
        strength=0.6,
    ),
    TinyCase(
        name="chroma-inpaint",
        pipeline_class="ChromaInpaintPipeline",
        build=lambda: ChromaInpaintPipeline.from_pipe(build_tiny_chroma()),
        defaults={"width": 32, "height": 32, "steps": 4, "call_defaults": {"max_sequence_length": 16}},
        inputs=(("image", (32, 32)), ("mask", (32, 32))),
    ),
]
