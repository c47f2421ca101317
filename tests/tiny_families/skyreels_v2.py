"""SkyReels-V2 text- and image-to-video: a 2-block Wan-style transformer with the Wan VAE."""

import torch
from diffusers import (
    SkyReelsV2ImageToVideoPipeline,
    SkyReelsV2Pipeline,
    SkyReelsV2Transformer3DModel,
    UniPCMultistepScheduler,
)
from tiny_pipelines import TINY_WAN_TRANSFORMER, tiny_clip_vision, tiny_umt5, tiny_wan_vae
from tiny_tokenizers import small_t5_tokenizer

from tiny_families import TinyCase

VIDEO = {"width": 16, "height": 16, "frames": 5, "steps": 4, "call_defaults": {"max_sequence_length": 16}}


def _transformer(in_channels: int = 16, image_dim: int | None = None) -> SkyReelsV2Transformer3DModel:
    torch.manual_seed(0)
    return SkyReelsV2Transformer3DModel(
        **TINY_WAN_TRANSFORMER, in_channels=in_channels, num_layers=2, image_dim=image_dim
    ).eval()


def _parts() -> dict:
    vae = tiny_wan_vae()
    return {
        "tokenizer": small_t5_tokenizer(),
        "text_encoder": tiny_umt5(),
        "vae": vae,
        "scheduler": UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=8.0),
    }


def build_skyreels_v2_i2v() -> SkyReelsV2ImageToVideoPipeline:
    return SkyReelsV2ImageToVideoPipeline(
        **_parts(),
        **tiny_clip_vision(),
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
