"""Kandinsky 5: text-to-image, image editing (I2I), text-to-video and image-to-video.

One builder for the four pipelines: a ``Kandinsky5Transformer3DModel`` of 1 text and 2 visual blocks
(width 16, 2 heads), the tiny Qwen2.5-VL of the Qwen-Image cases behind an image-only Qwen2.5-VL
processor, a CLIP text encoder for the pooled embedding, and an 8x VAE: a 4-level ``AutoencoderKL``
for images (the image pipelines assume 8x), the 8x/4x HunyuanVideo VAE of the HunyuanVideo case for
videos (the Kandinsky 6 case shares the text components and the video VAE). The image pipelines
snap sizes to their ``resolutions`` list; the tiny ones list tiny sizes.
"""

from __future__ import annotations

import torch
from diffusers import (
    AutoencoderKL,
    FlowMatchEulerDiscreteScheduler,
    Kandinsky5I2IPipeline,
    Kandinsky5I2VPipeline,
    Kandinsky5T2IPipeline,
    Kandinsky5T2VPipeline,
    Kandinsky5Transformer3DModel,
)
from tiny_tokenizers import byte_level_clip_tokenizer, qwen_vl_tokenizer
from transformers import CLIPTextConfig, CLIPTextModel
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

from engine_service.models.vl_processors import ImageOnlyQwen2_5_VLProcessor
from tiny_families import TinyCase
from tiny_families.hunyuan_video import tiny_hunyuan_video_vae
from tiny_families.qwen_image import tiny_qwen25_vl

LATENT_CHANNELS = 4
#: The sizes the tiny image pipelines render (the released ones list about 1 megapixel each).
RESOLUTIONS = [(32, 32), (64, 32), (32, 64)]


def _clip_text_encoder() -> CLIPTextModel:
    return CLIPTextModel(
        CLIPTextConfig(
            hidden_size=8,
            intermediate_size=16,
            num_attention_heads=2,
            num_hidden_layers=1,
            vocab_size=514,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
        )
    )


def _image_vae() -> AutoencoderKL:
    return AutoencoderKL(
        block_out_channels=(4, 4, 4, 4),
        down_block_types=["DownEncoderBlock2D"] * 4,
        up_block_types=["UpDecoderBlock2D"] * 4,
        layers_per_block=1,
        latent_channels=LATENT_CHANNELS,
        norm_num_groups=2,
    )


def open_modulation(transformer: torch.nn.Module, std: float = 0.2) -> torch.nn.Module:
    """diffusers starts every modulation projection at zero (gates 0: each block passes its input through
    and the prompt changes nothing): give them fixed-seed random weights."""
    torch.manual_seed(1)
    with torch.no_grad():
        for name, param in transformer.named_parameters():
            if "modulation" in name and not param.any():
                param.normal_(0.0, std)
    return transformer


def _start_after_system_prompt(pipe):
    """The pipelines drop the hidden states of their system prompt (40, 54 or 128 tokens in Qwen's
    tokenizer); this byte-level tokenizer spells it in hundreds: drop what it spells."""
    template = pipe.prompt_template
    system = template[: template.index("<|im_start|>user") + len("<|im_start|>user")]
    pipe.prompt_template_encode_start_idx = len(pipe.tokenizer.tokenizer(system).input_ids)
    return pipe


def text_components(tokenizer) -> dict:
    """The tiny Qwen2.5-VL (behind an image-only processor of few vision patches), CLIP and scheduler that
    Kandinsky 5 and 6 share, for ``tokenizer`` (a :func:`qwen_vl_tokenizer`)."""
    torch.manual_seed(0)
    text_encoder = tiny_qwen25_vl(tokenizer).eval()
    torch.manual_seed(0)
    text_encoder_2 = _clip_text_encoder().eval()
    images = Qwen2VLImageProcessorPil(min_pixels=56 * 56, max_pixels=56 * 56)
    return {
        "text_encoder": text_encoder,
        "tokenizer": ImageOnlyQwen2_5_VLProcessor(image_processor=images, tokenizer=tokenizer),
        "text_encoder_2": text_encoder_2,
        "tokenizer_2": byte_level_clip_tokenizer(),
        "scheduler": FlowMatchEulerDiscreteScheduler(shift=5.0),
    }


#: The tiny transformer's dimensions, shared with Kandinsky 6's (which adds audio).
TRANSFORMER = {
    "in_visual_dim": LATENT_CHANNELS,
    "out_visual_dim": LATENT_CHANNELS,
    "in_text_dim": 16,
    "in_text_dim2": 8,
    "time_dim": 16,
    "patch_size": (1, 2, 2),
    "model_dim": 16,
    "ff_dim": 32,
    "num_text_blocks": 1,
    "num_visual_blocks": 2,
    "axes_dims": (2, 4, 2),
}


def build_kandinsky5(pipeline_class):
    """The tiny pipeline of ``pipeline_class`` (one of the four Kandinsky 5 classes)."""
    video = pipeline_class in (Kandinsky5T2VPipeline, Kandinsky5I2VPipeline)
    tokenizer = qwen_vl_tokenizer()
    torch.manual_seed(0)
    transformer = Kandinsky5Transformer3DModel(
        **TRANSFORMER, visual_cond=pipeline_class in (Kandinsky5I2IPipeline, Kandinsky5I2VPipeline)
    ).eval()
    open_modulation(transformer)
    torch.manual_seed(0)
    vae = tiny_hunyuan_video_vae() if video else _image_vae()
    pipe = pipeline_class(transformer=transformer, vae=vae.eval(), **text_components(tokenizer))
    if not video:
        pipe.resolutions = list(RESOLUTIONS)
    return _start_after_system_prompt(pipe)


TEXT = {"max_sequence_length": 16}
CASES = [
    TinyCase(
        name="kandinsky5-t2i",
        pipeline_class="Kandinsky5T2IPipeline",
        build=lambda: build_kandinsky5(Kandinsky5T2IPipeline),
        defaults={"width": 32, "height": 32, "steps": 3, "call_defaults": TEXT},
    ),
    TinyCase(
        name="kandinsky5-i2i",
        pipeline_class="Kandinsky5I2IPipeline",
        build=lambda: build_kandinsky5(Kandinsky5I2IPipeline),
        # Room for the input image's 4 vision tokens beside the prompt.
        defaults={"width": 32, "height": 32, "steps": 3, "call_defaults": {"max_sequence_length": 64}},
        inputs=(("image", (32, 32)),),
    ),
    TinyCase(
        name="kandinsky5-t2v",
        pipeline_class="Kandinsky5T2VPipeline",
        build=lambda: build_kandinsky5(Kandinsky5T2VPipeline),
        defaults={"width": 16, "height": 16, "frames": 5, "steps": 3, "call_defaults": TEXT},
    ),
    # 17 frames: the fewest the pipeline decodes (5 latent frames; it renormalises the first 4 to the next).
    TinyCase(
        name="kandinsky5-i2v",
        pipeline_class="Kandinsky5I2VPipeline",
        build=lambda: build_kandinsky5(Kandinsky5I2VPipeline),
        defaults={"width": 16, "height": 16, "frames": 17, "steps": 3, "call_defaults": TEXT},
        inputs=(("image", (16, 16)),),
    ),
]
