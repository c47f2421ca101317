"""JoyImage Edit and Edit Plus: a 2-block ``JoyImageEditTransformer3DModel`` / ``JoyImageEditPlusTransformer3DModel``
(width 32, 2x2 patches), a 32x Wan VAE (32x32-pixel patches, no down stage) and a tiny Qwen3-VL encoder (2 text
layers and one vision block, width 16) with an image-only Qwen3-VL processor set up as the Qwen-Image 2.1 case's.

JoyImage Edit renders only the sizes of its bucket table (about 1 MP each: 1024x1024 images would cost seconds per
case in PNG encoding alone); its tiny case lists tiny buckets instead, as the Kandinsky 5 cases list tiny
resolutions, and the pipeline snaps sizes to them by its own rule.

Edit Plus resizes every reference image to a ~1 MP bucket of its aspect (a fixed table: neither the request's
size nor a pipeline setting changes it), so each request encodes one 1024x1024 reference. The 32x VAE works on
it at 32x32 (256 transformer tokens beside the 64x64 output's one); the 48-channel 16x VAE of the Wan 2.2 case
spends seconds per request there. The encoder sees the reference at 64x64 (its processor's pixel bounds)."""

from __future__ import annotations

import torch
from diffusers import (
    AutoencoderKLWan,
    FlowMatchEulerDiscreteScheduler,
    JoyImageEditPipeline,
    JoyImageEditPlusPipeline,
    JoyImageEditTransformer3DModel,
)
from diffusers.models.transformers.transformer_joyimage_edit_plus import JoyImageEditPlusTransformer3DModel
from diffusers.pipelines.joyimage.image_processor import JoyImageEditImageProcessor
from tiny_tokenizers import qwen_vl_tokenizer
from transformers import Qwen3VLForConditionalGeneration

from tiny_families import TinyCase, scale_weights, tiny_qwen3vl_config
from tiny_families.qwen_image21 import tiny_qwen3_vl_processor

LATENT_CHANNELS = 8
#: Pixels per side of one VAE patch, and of one latent pixel (the VAE has no down stage).
VAE_PATCH = 32


class TinyBucketProcessor(JoyImageEditImageProcessor):
    """JoyImage Edit's image processor with a table of three tiny buckets, (height, width), instead of its ~1 MP
    ones, and the same rule: a size becomes the bucket of the nearest aspect ratio (no size: the square one)."""

    BUCKETS = ((128, 128), (64, 256), (256, 64))

    def get_default_height_width(self, image, height=None, width=None):
        if height is None or width is None:
            width, height = (1, 1) if image is None else (image[0] if isinstance(image, list) else image).size
        return min(self.BUCKETS, key=lambda size: abs(size[0] / size[1] - height / width))


def _build(pipeline_class: type, transformer_class: type) -> JoyImageEditPlusPipeline | JoyImageEditPipeline:
    tokenizer = qwen_vl_tokenizer()
    torch.manual_seed(0)
    text_encoder = Qwen3VLForConditionalGeneration(tiny_qwen3vl_config(tokenizer, patch_size=16))
    # The pipeline reads the last decoder layer's output before the final norm: at init scale (embeddings of
    # std 0.02) the transformer's text embedder maps every prompt to nearly its bias; at std 4 prompts differ.
    scale_weights(text_encoder.model.language_model.embed_tokens, factor=200.0)
    processor = tiny_qwen3_vl_processor(tokenizer)
    torch.manual_seed(0)
    transformer = transformer_class(
        patch_size=[1, 2, 2],
        in_channels=LATENT_CHANNELS,
        hidden_size=32,
        num_attention_heads=2,
        text_dim=16,
        num_layers=2,
        rope_dim_list=[4, 6, 6],
    )
    scale_weights(transformer.double_blocks, factor=4.0)
    torch.manual_seed(0)
    vae = AutoencoderKLWan(
        base_dim=4,
        z_dim=LATENT_CHANNELS,
        in_channels=3 * VAE_PATCH * VAE_PATCH,
        out_channels=3 * VAE_PATCH * VAE_PATCH,
        is_residual=True,
        patch_size=VAE_PATCH,
        latents_mean=[0.0] * LATENT_CHANNELS,
        latents_std=[1.0] * LATENT_CHANNELS,
        dim_mult=[1],
        num_res_blocks=1,
        scale_factor_spatial=VAE_PATCH,
        scale_factor_temporal=1,
        temperal_downsample=[],
    )
    # The random encoder maps different pictures to nearly the same latents: spread them apart.
    scale_weights(vae.encoder.conv_out, factor=20.0)
    for module in (text_encoder, transformer, vae):
        module.eval()
    pipe = pipeline_class(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        transformer=transformer,
        processor=processor,
    )
    # The pipeline drops the system prompt by its length in the released tokenizer's tokens (34); in the
    # byte-level tokenizer's it is 146, and 34 would keep most of it in front of every prompt.
    system = pipe.prompt_template_encode["multiple_images"].split("{}")[0]
    pipe.prompt_template_encode_start_idx = dict.fromkeys(pipe.prompt_template_encode, len(tokenizer(system).input_ids))
    return pipe


def build_tiny_joyimage_edit(tiny_buckets: bool = True) -> JoyImageEditPipeline:
    """The tiny JoyImage Edit pipeline; with ``tiny_buckets`` it snaps sizes to :class:`TinyBucketProcessor`'s
    table (128x128 by default), else to the released ~1 MP one."""
    pipe = _build(JoyImageEditPipeline, JoyImageEditTransformer3DModel)
    if tiny_buckets:
        pipe.vae_image_processor = TinyBucketProcessor(vae_scale_factor=VAE_PATCH)
    return pipe


def build_tiny_joyimage_edit_plus() -> JoyImageEditPlusPipeline:
    return _build(JoyImageEditPlusPipeline, JoyImageEditPlusTransformer3DModel)


CASES = [
    TinyCase(
        name="joyimage-edit",
        pipeline_class="JoyImageEditPipeline",
        build=build_tiny_joyimage_edit,
        defaults={"steps": 3},  # the default size: the 128x128 bucket
        inputs=(("image", (64, 64)),),
    ),
    TinyCase(
        name="joyimage-edit-plus",
        pipeline_class="JoyImageEditPlusPipeline",
        build=build_tiny_joyimage_edit_plus,
        defaults={"width": 64, "height": 64, "steps": 4},
        inputs=(("image", (64, 64)),),
    ),
]
