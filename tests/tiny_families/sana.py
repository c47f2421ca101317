"""Sana (and its ControlNet): 3 linear-attention blocks, a tiny Gemma-2 encoder, a 2x deep-compression autoencoder."""

import torch
from diffusers import (
    AutoencoderDC,
    FlowMatchEulerDiscreteScheduler,
    SanaControlNetModel,
    SanaControlNetPipeline,
    SanaPAGPipeline,
    SanaPipeline,
    SanaSprintImg2ImgPipeline,
    SanaSprintPipeline,
    SanaTransformer2DModel,
    SCMScheduler,
)
from tiny_tokenizers import small_gemma_tokenizer
from transformers import Gemma2Config, Gemma2Model

from tiny_families import TinyCase, scale_weights


def build_tiny_sana(seed: int = 0) -> SanaPipeline:
    tokenizer = small_gemma_tokenizer()
    torch.manual_seed(seed)
    transformer = SanaTransformer2DModel(
        patch_size=1,
        in_channels=4,
        out_channels=4,
        num_layers=3,
        num_attention_heads=2,
        attention_head_dim=4,
        num_cross_attention_heads=2,
        cross_attention_head_dim=4,
        cross_attention_dim=8,
        caption_channels=8,
        sample_size=32,
    ).eval()
    torch.manual_seed(seed)
    vae = AutoencoderDC(
        in_channels=3,
        latent_channels=4,
        attention_head_dim=2,
        encoder_block_types=("ResBlock", "EfficientViTBlock"),
        decoder_block_types=("ResBlock", "EfficientViTBlock"),
        encoder_block_out_channels=(8, 8),
        decoder_block_out_channels=(8, 8),
        encoder_qkv_multiscales=((), (5,)),
        decoder_qkv_multiscales=((), (5,)),
        encoder_layers_per_block=(1, 1),
        decoder_layers_per_block=[1, 1],
        downsample_block_type="conv",
        upsample_block_type="interpolate",
        decoder_norm_types="rms_norm",
        decoder_act_fns="silu",
        scaling_factor=0.41407,
    ).eval()
    torch.manual_seed(seed)
    text_encoder = Gemma2Model(
        Gemma2Config(
            head_dim=16,
            hidden_size=8,
            intermediate_size=64,
            num_attention_heads=2,
            num_hidden_layers=1,
            num_key_value_heads=2,
            vocab_size=len(tokenizer),
            attn_implementation="eager",
        )
    ).eval()
    return SanaPipeline(
        transformer=transformer,
        vae=vae,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0),
        text_encoder=text_encoder,
        tokenizer=tokenizer,
    )


CASES = [
    TinyCase(
        name="sana",
        pipeline_class="SanaPipeline",
        build=build_tiny_sana,
        # The prompt-enhancing system text and the aspect-ratio bins are for full-size models.
        defaults={
            "width": 32,
            "height": 32,
            "steps": 4,
            "call_defaults": {
                "max_sequence_length": 16,
                "complex_human_instruction": None,
                "use_resolution_binning": False,
            },
        },
    ),
]


def build_tiny_sana_controlnet() -> SanaControlNetPipeline:
    from tiny_families.flux import wake_controlnet

    base = build_tiny_sana()
    torch.manual_seed(0)
    # 2 ControlNet blocks: hints after the transformer's blocks 1 and 2.
    controlnet = SanaControlNetModel(
        patch_size=1,
        in_channels=4,
        out_channels=4,
        num_layers=2,
        num_attention_heads=2,
        attention_head_dim=4,
        num_cross_attention_heads=2,
        cross_attention_head_dim=4,
        cross_attention_dim=8,
        caption_channels=8,
        sample_size=32,
    )
    return SanaControlNetPipeline(**base.components, controlnet=wake_controlnet(controlnet))


CASES.append(
    TinyCase(
        name="sana-controlnet",
        pipeline_class="SanaControlNetPipeline",
        build=build_tiny_sana_controlnet,
        defaults=CASES[0].defaults,
        inputs=(("control", (32, 32)),),
    )
)


def build_tiny_sana_sprint(pipeline_class=SanaSprintPipeline) -> SanaSprintPipeline:
    """Sana's tiny components with a guidance-embedding transformer (qk-normed, as Sana Sprint's) and
    the sCM scheduler."""
    components = build_tiny_sana().components
    torch.manual_seed(0)
    transformer = SanaTransformer2DModel(
        patch_size=1,
        in_channels=4,
        out_channels=4,
        num_layers=3,
        num_attention_heads=2,
        attention_head_dim=4,
        num_cross_attention_heads=2,
        cross_attention_head_dim=4,
        cross_attention_dim=8,
        caption_channels=8,
        sample_size=32,
        qk_norm="rms_norm_across_heads",
        guidance_embeds=True,
    ).eval()
    # Embedded guidance moves the tiny image by about one level at default weights.
    scale_weights(transformer.time_embed, transformer.transformer_blocks, factor=3.0)
    return pipeline_class(**{**components, "transformer": transformer, "scheduler": SCMScheduler()})


_SPRINT_DEFAULTS = {
    "width": 32,
    "height": 32,
    "steps": 3,
    "call_defaults": {"max_sequence_length": 16, "complex_human_instruction": None, "use_resolution_binning": False},
}

CASES += [
    TinyCase(
        name="sana-sprint",
        pipeline_class="SanaSprintPipeline",
        build=build_tiny_sana_sprint,
        defaults=_SPRINT_DEFAULTS,
    ),
    TinyCase(
        name="sana-sprint-img2img",
        pipeline_class="SanaSprintImg2ImgPipeline",
        build=lambda: build_tiny_sana_sprint(SanaSprintImg2ImgPipeline),
        defaults=_SPRINT_DEFAULTS,
        inputs=(("image", (32, 32)),),
    ),
]

CASES.append(
    TinyCase(
        name="sana-pag",
        pipeline_class="SanaPAGPipeline",
        build=lambda: SanaPAGPipeline(**build_tiny_sana().components, pag_applied_layers=["transformer_blocks.1"]),
        defaults=CASES[0].defaults,
    )
)
