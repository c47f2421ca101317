"""Stable Diffusion 3: 4 MMDiT blocks (the last one context-pre-only), two CLIP and one T5 encoder;
text-to-image, image-to-image, inpainting, ControlNet and ControlNet inpainting on the same modules."""

import torch
from diffusers import (
    SD3ControlNetModel,
    SD3Transformer2DModel,
    StableDiffusion3ControlNetInpaintingPipeline,
    StableDiffusion3ControlNetPipeline,
    StableDiffusion3Img2ImgPipeline,
    StableDiffusion3InpaintPipeline,
    StableDiffusion3PAGImg2ImgPipeline,
    StableDiffusion3PAGPipeline,
    StableDiffusion3Pipeline,
)
from tiny_pipelines import TINY_CLIP, TINY_T5, tiny_flux_components, tiny_vae
from tiny_tokenizers import byte_level_clip_tokenizer, small_t5_tokenizer
from transformers import CLIPTextConfig, CLIPTextModelWithProjection, T5Config, T5EncoderModel

from tiny_families import TinyCase, scale_weights


def build_tiny_sd3(seed: int = 0, latent_channels: int = 4) -> StableDiffusion3Pipeline:
    torch.manual_seed(seed)
    transformer = SD3Transformer2DModel(
        sample_size=32,
        patch_size=2,
        in_channels=latent_channels,
        num_layers=4,
        attention_head_dim=8,
        num_attention_heads=4,
        caption_projection_dim=32,
        joint_attention_dim=32,
        pooled_projection_dim=64,
        out_channels=latent_channels,
    )
    encoders = []
    for _ in range(2):
        torch.manual_seed(seed)
        encoders.append(CLIPTextModelWithProjection(CLIPTextConfig(**TINY_CLIP)))
    torch.manual_seed(seed)
    text_encoder_3 = T5EncoderModel(T5Config(**TINY_T5))
    vae = tiny_vae(seed, latent_channels)  # 8x
    for module in (transformer, *encoders, text_encoder_3):
        module.eval()
    return StableDiffusion3Pipeline(
        scheduler=tiny_flux_components(seed)["scheduler"],
        transformer=transformer,
        vae=vae,
        text_encoder=encoders[0],
        text_encoder_2=encoders[1],
        text_encoder_3=text_encoder_3,
        tokenizer=byte_level_clip_tokenizer(),
        tokenizer_2=byte_level_clip_tokenizer(),
        tokenizer_3=small_t5_tokenizer(),
    )


def _tiny_sd3_controlnet(extra_conditioning_channels: int = 0) -> SD3ControlNetModel:
    from tiny_families.flux import wake_controlnet

    torch.manual_seed(0)
    # 2 ControlNet blocks for the transformer's 4: one residual after every two blocks (none after the last,
    # context-pre-only, block).
    controlnet = SD3ControlNetModel(
        sample_size=32,
        patch_size=2,
        in_channels=4,
        num_layers=2,
        attention_head_dim=8,
        num_attention_heads=4,
        joint_attention_dim=32,
        caption_projection_dim=32,
        pooled_projection_dim=64,
        out_channels=4,
        extra_conditioning_channels=extra_conditioning_channels,
    )
    wake_controlnet(controlnet)
    # Softer residuals: at full wake-up scale they swing the hidden states so far from step to step that a
    # run with every step after the first cached ends below 30 dB of full compute even with the hints placed
    # right; at 0.3 it stays above, while a cache that adds the hints twice falls below.
    scale_weights(controlnet.controlnet_blocks, factor=0.3)
    return controlnet


def build_tiny_sd3_controlnet() -> StableDiffusion3ControlNetPipeline:
    return StableDiffusion3ControlNetPipeline(**build_tiny_sd3().components, controlnet=_tiny_sd3_controlnet())


def build_tiny_sd3_controlnet_inpaint() -> StableDiffusion3ControlNetInpaintingPipeline:
    """The inpainting ControlNet reads the masked control image's latents and the mask: 4 + 1 channels."""
    controlnet = _tiny_sd3_controlnet(extra_conditioning_channels=1)
    return StableDiffusion3ControlNetInpaintingPipeline(**build_tiny_sd3().components, controlnet=controlnet)


CASES = [
    TinyCase(
        name="sd3",
        pipeline_class="StableDiffusion3Pipeline",
        build=build_tiny_sd3,
        defaults={"width": 32, "height": 32, "steps": 4, "call_defaults": {"max_sequence_length": 16}},
    ),
    TinyCase(
        name="sd3-img2img",
        pipeline_class="StableDiffusion3Img2ImgPipeline",
        build=lambda: StableDiffusion3Img2ImgPipeline.from_pipe(build_tiny_sd3()),
        defaults={"width": 32, "height": 32, "steps": 4, "call_defaults": {"max_sequence_length": 16}},
        inputs=(("image", (32, 32)),),
    ),
    TinyCase(
        name="sd3-inpaint",
        pipeline_class="StableDiffusion3InpaintPipeline",
        # The inpainting pipeline wants SD3's 16 latent channels (or 33 for an inpainting transformer).
        build=lambda: StableDiffusion3InpaintPipeline.from_pipe(build_tiny_sd3(latent_channels=16)),
        defaults={"width": 32, "height": 32, "steps": 4, "call_defaults": {"max_sequence_length": 16}},
        inputs=(("image", (32, 32)), ("mask", (32, 32))),
    ),
    TinyCase(
        name="sd3-pag",
        pipeline_class="StableDiffusion3PAGPipeline",
        build=lambda: StableDiffusion3PAGPipeline.from_pipe(build_tiny_sd3(), pag_applied_layers=["blocks.1"]),
        defaults={"width": 32, "height": 32, "steps": 4, "call_defaults": {"max_sequence_length": 16}},
    ),
    TinyCase(
        name="sd3-pag-img2img",
        pipeline_class="StableDiffusion3PAGImg2ImgPipeline",
        build=lambda: StableDiffusion3PAGImg2ImgPipeline.from_pipe(build_tiny_sd3(), pag_applied_layers=["blocks.1"]),
        defaults={"width": 32, "height": 32, "steps": 4, "call_defaults": {"max_sequence_length": 16}},
        inputs=(("image", (32, 32)),),
    ),
    TinyCase(
        name="sd3-controlnet",
        pipeline_class="StableDiffusion3ControlNetPipeline",
        build=build_tiny_sd3_controlnet,
        defaults={"width": 32, "height": 32, "steps": 4, "call_defaults": {"max_sequence_length": 16}},
        inputs=(("control", (32, 32)),),
    ),
    TinyCase(
        name="sd3-controlnet-inpaint",
        pipeline_class="StableDiffusion3ControlNetInpaintingPipeline",
        build=build_tiny_sd3_controlnet_inpaint,
        defaults={"width": 32, "height": 32, "steps": 4, "call_defaults": {"max_sequence_length": 16}},
        inputs=(("control", (32, 32)), ("mask", (32, 32))),
    ),
]
