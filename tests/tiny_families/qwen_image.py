"""Qwen-Image: text-to-image, Edit (one image), Edit-Plus (one or more images), image-to-image,
inpainting, ControlNet, ControlNet inpainting and Edit inpainting.

A 2-layer ``QwenImageTransformer2DModel``, a 16x ``AutoencoderKLQwenImage`` (the edit pipelines encode
input images at about 1024x1024 whatever the output size: 16x keeps that to 1024 tokens) and
a tiny Qwen2.5-VL text encoder (2 text and 2 vision layers, width 16, a
263-token byte-level vocabulary) with a Qwen2-VL processor for the edit
pipelines' image prompts, built from diffusers' own test configurations.
"""

from __future__ import annotations

import torch
from diffusers import (
    AutoencoderKLQwenImage,
    FlowMatchEulerDiscreteScheduler,
    QwenImageControlNetInpaintPipeline,
    QwenImageControlNetModel,
    QwenImageControlNetPipeline,
    QwenImageEditInpaintPipeline,
    QwenImageEditPipeline,
    QwenImageEditPlusPipeline,
    QwenImageImg2ImgPipeline,
    QwenImageInpaintPipeline,
    QwenImageLayeredPipeline,
    QwenImagePipeline,
    QwenImageTransformer2DModel,
)
from tiny_tokenizers import qwen_vl_tokenizer
from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2VLProcessor
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

from engine_service.models.vl_processors import ImageOnlyQwen2VLProcessor
from tiny_families import TinyCase, louder_vae

LATENT_CHANNELS = 4


def tiny_qwen25_vl(tokenizer) -> Qwen2_5_VLForConditionalGeneration:
    """A Qwen2.5-VL of 2 text and 2 vision layers, width 16, for ``tokenizer`` (a :func:`qwen_vl_tokenizer`:
    its vision markers become the config's token ids), with the caller's random weights."""
    token = tokenizer.convert_tokens_to_ids
    return Qwen2_5_VLForConditionalGeneration(
        Qwen2_5_VLConfig(
            text_config={
                "hidden_size": 16,
                "intermediate_size": 16,
                "num_hidden_layers": 2,
                "num_attention_heads": 2,
                "num_key_value_heads": 2,
                "rope_scaling": {"mrope_section": [1, 1, 2], "rope_type": "default", "type": "default"},
                "rope_theta": 1000000.0,
                "vocab_size": len(tokenizer),
                "bos_token_id": 0,
                "eos_token_id": 0,
            },
            vision_config={
                "depth": 2,
                "hidden_size": 16,
                "intermediate_size": 16,
                "num_heads": 2,
                "out_hidden_size": 16,
            },
            hidden_size=16,
            vocab_size=len(tokenizer),
            image_token_id=token("<|image_pad|>"),
            video_token_id=token("<|video_pad|>"),
            vision_start_token_id=token("<|vision_start|>"),
            vision_end_token_id=token("<|vision_end|>"),
        )
    )


def _components(
    seed: int = 0, vae_dim: int = 2, vae_mult: tuple[int, ...] = (1,) * 5, *, layered: bool = False
) -> dict:
    """The pipeline components; ``vae_dim`` and ``vae_mult`` set the VAE's channels (``base_dim`` x each
    of the five multipliers, one per level). ``layered``: Qwen-Image Layered's RGBA VAE (4 image
    channels) and its transformer's layer-aware rotary embedding and RGB-or-layer timestep condition, with
    8 latent channels: the pipeline takes a 4-channel input for latents already encoded when the VAE's
    ``z_dim`` is 4."""
    latent_channels = 2 * LATENT_CHANNELS if layered else LATENT_CHANNELS
    tokenizer = qwen_vl_tokenizer()
    torch.manual_seed(seed)
    transformer = QwenImageTransformer2DModel(
        patch_size=2,
        in_channels=latent_channels * 4,
        out_channels=latent_channels,
        num_layers=2,
        attention_head_dim=16,
        num_attention_heads=3,
        joint_attention_dim=16,
        guidance_embeds=False,
        axes_dims_rope=(8, 4, 4),
        use_layer3d_rope=layered,
        use_additional_t_cond=layered,
    )
    torch.manual_seed(seed)
    vae = AutoencoderKLQwenImage(
        input_channels=4 if layered else 3,
        base_dim=vae_dim,
        z_dim=latent_channels,
        dim_mult=list(vae_mult),
        num_res_blocks=1,
        temperal_downsample=[False, True, True, True],
        latents_mean=[0.0] * latent_channels,
        latents_std=[1.0] * latent_channels,
    )
    louder_vae(vae)
    torch.manual_seed(seed)
    text_encoder = tiny_qwen25_vl(tokenizer)
    for module in (transformer, vae, text_encoder):
        module.eval()
    return {
        "transformer": transformer,
        "vae": vae,
        "scheduler": FlowMatchEulerDiscreteScheduler(),
        "text_encoder": text_encoder,
        "tokenizer": tokenizer,
    }


def _processor(tokenizer) -> Qwen2VLProcessor:
    # Few vision patches: the edit pipelines show the encoder the image at about 1024x1024 (Edit) or 384x384
    # (Edit-Plus); capping the pixels keeps the tiny vision tower cheap.
    images = Qwen2VLImageProcessorPil(min_pixels=56 * 56, max_pixels=56 * 56)
    return ImageOnlyQwen2VLProcessor(image_processor=images, tokenizer=tokenizer)


def _drop_system_prompt(pipe):
    """The pipelines drop the first 34 (64 for the editors) hidden states: the system prompt in Qwen's
    tokenizer. This byte-level one spells it in over a hundred, so the prompt would fall past the
    ``max_sequence_length`` cut (every prompt encoding alike) or, in the editors, drown among the template's
    states: drop what it spells."""
    template = pipe.prompt_template_encode
    system = template[: template.index("<|im_start|>user\n") + len("<|im_start|>user\n")]
    pipe.prompt_template_encode_start_idx = len(pipe.tokenizer(system).input_ids)
    return pipe


def build_tiny_qwen_image() -> QwenImagePipeline:
    return _drop_system_prompt(QwenImagePipeline(**_components()))


def build_tiny_qwen_image_edit() -> QwenImageEditPipeline:
    components = _components()
    return _drop_system_prompt(QwenImageEditPipeline(**components, processor=_processor(components["tokenizer"])))


def build_tiny_qwen_image_edit_plus() -> QwenImageEditPlusPipeline:
    components = _components()
    pipe = QwenImageEditPlusPipeline(**components, processor=_processor(components["tokenizer"]))
    return _drop_system_prompt(pipe)


def build_tiny_qwen_image_img2img() -> QwenImageImg2ImgPipeline:
    return _drop_system_prompt(QwenImageImg2ImgPipeline(**_components()))


def build_tiny_qwen_image_inpaint() -> QwenImageInpaintPipeline:
    return _drop_system_prompt(QwenImageInpaintPipeline(**_components()))


def _controlnet(extra_condition_channels: int = 0) -> QwenImageControlNetModel:
    from tiny_families.flux import wake_controlnet

    torch.manual_seed(0)
    controlnet = QwenImageControlNetModel(
        patch_size=2,
        in_channels=LATENT_CHANNELS * 4,
        out_channels=LATENT_CHANNELS,
        num_layers=1,  # one residual, added after both transformer blocks
        attention_head_dim=16,
        num_attention_heads=3,
        joint_attention_dim=16,
        axes_dims_rope=(8, 4, 4),
        extra_condition_channels=extra_condition_channels,
    )
    return wake_controlnet(controlnet)


def build_tiny_qwen_image_controlnet() -> QwenImageControlNetPipeline:
    return _drop_system_prompt(QwenImageControlNetPipeline(**_components(), controlnet=_controlnet()))


def build_tiny_qwen_image_controlnet_inpaint() -> QwenImageControlNetInpaintPipeline:
    """An inpainting ControlNet: its condition is the masked control image's latents and the mask, packed
    2x2 (4 mask channels beside the latents' 16)."""
    controlnet = _controlnet(extra_condition_channels=4)
    return _drop_system_prompt(QwenImageControlNetInpaintPipeline(**_components(), controlnet=controlnet))


def build_tiny_qwen_image_edit_inpaint() -> QwenImageEditInpaintPipeline:
    """Its VAE works at about 1024x1024 pixels whatever the input: one channel at full size, where
    a 2-channel RMS norm (over the channel axis) costs ten times a 1-channel one on CPU."""
    components = _components(vae_dim=1, vae_mult=(1, 2, 2, 2, 2))
    pipe = QwenImageEditInpaintPipeline(**components, processor=_processor(components["tokenizer"]))
    return _drop_system_prompt(pipe)


def build_tiny_qwen_image_layered() -> QwenImageLayeredPipeline:
    """Its RGBA VAE works at about 640x640 pixels whatever the input (the pipeline's smaller resolution):
    one channel at full size, as the Edit inpainting case's."""
    components = _components(vae_dim=1, vae_mult=(1, 2, 2, 2, 2), layered=True)
    pipe = QwenImageLayeredPipeline(**components, processor=_processor(components["tokenizer"]))
    return _drop_system_prompt(pipe)


TEXT = {"max_sequence_length": 16}
CASES = [
    TinyCase(
        name="qwen-image",
        pipeline_class="QwenImagePipeline",
        build=build_tiny_qwen_image,
        defaults={"width": 32, "height": 32, "steps": 4, "call_defaults": TEXT},
    ),
    TinyCase(
        name="qwen-image-edit",
        pipeline_class="QwenImageEditPipeline",
        build=build_tiny_qwen_image_edit,
        # No true CFG (as Lightning runs): the 1024x1024 image encoding dominates the cost.
        defaults={"width": 32, "height": 32, "steps": 3, "guidance_scale": 1.0, "call_defaults": TEXT},
        inputs=(("image", (32, 32)),),
    ),
    TinyCase(
        name="qwen-image-edit-plus",
        pipeline_class="QwenImageEditPlusPipeline",
        build=build_tiny_qwen_image_edit_plus,
        defaults={"width": 32, "height": 32, "steps": 3, "guidance_scale": 1.0, "call_defaults": TEXT},
        inputs=(("image", (32, 32)), ("image", (48, 32))),  # several images, of different sizes
    ),
    # 4 steps at the default strength 0.6: the pipeline runs the last 3.
    TinyCase(
        name="qwen-image-img2img",
        pipeline_class="QwenImageImg2ImgPipeline",
        build=build_tiny_qwen_image_img2img,
        defaults={"width": 32, "height": 32, "steps": 4, "call_defaults": TEXT},
        inputs=(("image", (32, 32)),),
    ),
    TinyCase(
        name="qwen-image-inpaint",
        pipeline_class="QwenImageInpaintPipeline",
        build=build_tiny_qwen_image_inpaint,
        defaults={"width": 32, "height": 32, "steps": 4, "call_defaults": TEXT},
        inputs=(("image", (32, 32)), ("mask", (32, 32))),
    ),
    TinyCase(
        name="qwen-image-controlnet",
        pipeline_class="QwenImageControlNetPipeline",
        build=build_tiny_qwen_image_controlnet,
        defaults={"width": 32, "height": 32, "steps": 4, "call_defaults": TEXT},
        inputs=(("control", (32, 32)),),
    ),
    TinyCase(
        name="qwen-image-controlnet-inpaint",
        pipeline_class="QwenImageControlNetInpaintPipeline",
        build=build_tiny_qwen_image_controlnet_inpaint,
        defaults={"width": 32, "height": 32, "steps": 4, "call_defaults": TEXT},
        inputs=(("control", (32, 32)), ("mask", (32, 32))),
    ),
    # Renders 1440x736 whatever it is sent (about 1024x1024 in the 2:1 input's aspect); no true CFG by default,
    # 3 steps at the default strength 0.6: the pipeline runs the last 2 (one preview, at about 1 MP).
    TinyCase(
        name="qwen-image-edit-inpaint",
        pipeline_class="QwenImageEditInpaintPipeline",
        build=build_tiny_qwen_image_edit_inpaint,
        defaults={"steps": 3, "guidance_scale": 1.0, "call_defaults": TEXT},
        inputs=(("image", (64, 32)), ("mask", (64, 32))),
    ),
    # Splits its 2:1 input into 2 RGBA layers at 896x448 (about 640x640 in its aspect), whatever it is sent;
    # no true CFG by default, 2 steps (one preview).
    TinyCase(
        name="qwen-image-layered",
        pipeline_class="QwenImageLayeredPipeline",
        build=build_tiny_qwen_image_layered,
        defaults={"steps": 2, "guidance_scale": 1.0, "layers": 2, "call_defaults": TEXT},
        inputs=(("image", (64, 32)),),
    ),
]
