"""SkyReels-V2 text- and image-to-video: a 2-block Wan-style transformer with the Wan VAE."""

import torch
from diffusers import (
    AutoencoderKLWan,
    SkyReelsV2ImageToVideoPipeline,
    SkyReelsV2Pipeline,
    SkyReelsV2Transformer3DModel,
    UniPCMultistepScheduler,
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

VIDEO = {"width": 16, "height": 16, "frames": 5, "steps": 4, "call_defaults": {"max_sequence_length": 16}}


def _transformer(in_channels: int = 16, image_dim: int | None = None) -> SkyReelsV2Transformer3DModel:
    torch.manual_seed(0)
    return SkyReelsV2Transformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=12,
        in_channels=in_channels,
        out_channels=16,
        text_dim=32,
        freq_dim=256,
        ffn_dim=32,
        num_layers=2,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32,
        image_dim=image_dim,
    ).eval()


def _parts() -> dict:
    torch.manual_seed(0)
    vae = AutoencoderKLWan(
        base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True]
    ).eval()
    torch.manual_seed(0)
    text_encoder = UMT5EncoderModel(UMT5Config(**TINY_T5)).eval()
    return {
        "tokenizer": small_t5_tokenizer(),
        "text_encoder": text_encoder,
        "vae": vae,
        "scheduler": UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=8.0),
    }


def build_skyreels_v2_i2v() -> SkyReelsV2ImageToVideoPipeline:
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
    return SkyReelsV2ImageToVideoPipeline(
        **_parts(),
        image_processor=CLIPImageProcessor(crop_size=32, size=32),
        image_encoder=image_encoder,
        transformer=_transformer(in_channels=36, image_dim=4),
    )


CASES = [
    TinyCase(
        name="skyreels-v2",
        pipeline_class="SkyReelsV2Pipeline",
        build=lambda: SkyReelsV2Pipeline(**_parts(), transformer=_transformer()),
        defaults=VIDEO,
    ),
    TinyCase(
        name="skyreels-v2-i2v",
        pipeline_class="SkyReelsV2ImageToVideoPipeline",
        build=build_skyreels_v2_i2v,
        defaults=VIDEO,
        inputs=(("image", (16, 16)),),
    ),
]
