"""EasyAnimate text-to-video, image-to-video (its inpainting pipeline) and control video: 2 blocks, a tiny
Qwen2-VL, a tiny MagVIT VAE."""

import torch
from diffusers import (
    AutoencoderKLMagvit,
    EasyAnimateControlPipeline,
    EasyAnimateInpaintPipeline,
    EasyAnimatePipeline,
    EasyAnimateTransformer3DModel,
    FlowMatchEulerDiscreteScheduler,
)
from tiny_tokenizers import byte_level_qwen2_tokenizer
from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

from tiny_families import TinyCase

#: The pipeline sends chat messages whose content is a list of typed parts, as Qwen2-VL's template reads them.
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% for part in message['content'] %}{{ part['text'] }}{% endfor %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_easyanimate(pipeline_class=EasyAnimatePipeline, in_channels=None):
    """From diffusers' EasyAnimate test configuration, with 2 blocks. The inpainting transformer takes the
    noise, the mask latents and the masked video latents (4 + 4 + 4 channels), as EasyAnimate V5 does; the
    control transformer the noise, the control video's latents and the reference image's (4 + 4 + 4).
    ``in_channels`` replaces that count (a checkpoint the engine refuses)."""
    conditioned = pipeline_class is not EasyAnimatePipeline
    torch.manual_seed(0)
    transformer = EasyAnimateTransformer3DModel(
        num_attention_heads=2,
        attention_head_dim=16,
        in_channels=in_channels or (12 if conditioned else 4),
        out_channels=4,
        time_embed_dim=2,
        text_embed_dim=16,
        num_layers=2,
        sample_width=16,
        sample_height=16,
        patch_size=2,
        resize_inpaint_mask_directly=False,
    )
    torch.manual_seed(0)
    vae = AutoencoderKLMagvit(
        in_channels=3,
        out_channels=3,
        down_block_types=("SpatialDownBlock3D",) + ("SpatialTemporalDownBlock3D",) * 3,
        up_block_types=("SpatialUpBlock3D",) + ("SpatialTemporalUpBlock3D",) * 3,
        block_out_channels=(8, 8, 8, 8),
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=2,
        spatial_group_norm=False,
    )
    torch.manual_seed(0)
    text_encoder = Qwen2VLForConditionalGeneration(
        Qwen2VLConfig(
            text_config={
                "hidden_size": 16,
                "intermediate_size": 16,
                "num_hidden_layers": 2,
                "num_attention_heads": 2,
                "num_key_value_heads": 2,
                "rope_scaling": {"mrope_section": [1, 1, 2], "rope_type": "default", "type": "default"},
                "vocab_size": 300,
                "bos_token_id": 0,
                "eos_token_id": 0,
            },
            vision_config={"depth": 2, "embed_dim": 16, "hidden_size": 16, "num_heads": 2, "patch_size": 2},
            vocab_size=300,
            vision_start_token_id=298,
            vision_end_token_id=299,
            vision_token_id=297,
            image_token_id=296,
            video_token_id=295,
        )
    )
    for module in (transformer, vae, text_encoder):
        module.eval()
    tokenizer = byte_level_qwen2_tokenizer()
    tokenizer.chat_template = CHAT_TEMPLATE
    return pipeline_class(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(),
    )


VIDEO = {"width": 32, "height": 32, "frames": 5, "steps": 3}

CASES = [
    TinyCase(name="easyanimate", pipeline_class="EasyAnimatePipeline", build=build_easyanimate, defaults=VIDEO),
    TinyCase(
        name="easyanimate-i2v",
        pipeline_class="EasyAnimateInpaintPipeline",
        build=lambda: build_easyanimate(EasyAnimateInpaintPipeline),
        defaults=VIDEO,
        inputs=(("image", (32, 32)),),
    ),
    TinyCase(
        name="easyanimate-control",
        pipeline_class="EasyAnimateControlPipeline",
        build=lambda: build_easyanimate(EasyAnimateControlPipeline),
        defaults=VIDEO,
        inputs=(("reference", (32, 32)),),
        videos=(("control", (32, 32), 5),),
    ),
]
