"""ChronoEdit image editing through a 5-frame video: a 2-block Wan-style transformer, a CLIP vision encoder."""

import torch
from diffusers import (
    AutoencoderKLWan,
    ChronoEditPipeline,
    ChronoEditTransformer3DModel,
    FlowMatchEulerDiscreteScheduler,
)
from tiny_pipelines import TINY_T5
from tiny_tokenizers import small_t5_tokenizer
from transformers import (
    CLIPImageProcessor,
    CLIPVisionConfig,
    CLIPVisionModelWithProjection,
    UMT5Config,
    UMT5EncoderModel,
)

from tiny_families import TinyCase


def build_chronoedit() -> ChronoEditPipeline:
    torch.manual_seed(0)
    vae = AutoencoderKLWan(
        base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True]
    ).eval()
    torch.manual_seed(0)
    text_encoder = UMT5EncoderModel(UMT5Config(**TINY_T5)).eval()
    torch.manual_seed(0)
    transformer = ChronoEditTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=12,
        in_channels=36,
        out_channels=16,
        text_dim=32,
        freq_dim=256,
        ffn_dim=32,
        num_layers=2,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32,
        image_dim=4,
    ).eval()
    torch.manual_seed(0)
    image_encoder = CLIPVisionModelWithProjection(
        CLIPVisionConfig(
            hidden_size=4,
            projection_dim=4,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=32,
            intermediate_size=16,
            patch_size=1,
        )
    ).eval()
    return ChronoEditPipeline(
        tokenizer=small_t5_tokenizer(),
        text_encoder=text_encoder,
        image_encoder=image_encoder,
        image_processor=CLIPImageProcessor(crop_size=32, size=32),
        transformer=transformer,
        vae=vae,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0),
    )


CASES = [
    TinyCase(
        name="chronoedit",
        pipeline_class="ChronoEditPipeline",
        build=build_chronoedit,
        defaults={"width": 16, "height": 16, "steps": 4, "call_defaults": {"max_sequence_length": 16}},
        inputs=(("image", (16, 16)),),
    ),
]
