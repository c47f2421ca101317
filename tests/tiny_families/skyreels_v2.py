"""SkyReels-V2 text- and image-to-video: a 2-block Wan-style transformer with the Wan VAE; the diffusion-forcing
pipelines (one scheduler copy per latent frame; video-to-video continues a 7-frame video in two windows) on
the same parts, with a louder VAE."""

import torch
from diffusers import (
    SkyReelsV2DiffusionForcingImageToVideoPipeline,
    SkyReelsV2DiffusionForcingPipeline,
    SkyReelsV2DiffusionForcingVideoToVideoPipeline,
    SkyReelsV2ImageToVideoPipeline,
    SkyReelsV2Pipeline,
    SkyReelsV2Transformer3DModel,
    UniPCMultistepScheduler,
)
from tiny_pipelines import TINY_WAN_TRANSFORMER, tiny_clip_vision, tiny_umt5, tiny_wan_vae
from tiny_tokenizers import small_t5_tokenizer

from tiny_families import TinyCase, louder_vae

VIDEO = {"width": 16, "height": 16, "frames": 5, "steps": 4, "call_defaults": {"max_sequence_length": 16}}
#: Video-to-video: windows of 9 frames (3 latent) that overlap by 5 (2 latent), so each window adds one
#: latent frame: 13 new frames (4 latent) take two windows, each a loop of 3 steps.
CONTINUATION = {
    **VIDEO,
    "frames": 13,
    "steps": 3,
    "call_defaults": {"max_sequence_length": 16, "base_num_frames": 9, "overlap_history": 5},
}


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


def build_skyreels_v2_df(pipeline_class=SkyReelsV2DiffusionForcingPipeline):
    """Diffusion forcing (text- or image-to-video): the plain transformer (the image-to-video pipeline
    keeps the image's latent frame as the first frame instead of feeding it as channels)."""
    parts = _parts()
    parts["vae"] = louder_vae(parts["vae"])
    return pipeline_class(**parts, transformer=_transformer())


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
    TinyCase(
        name="skyreels-v2-df",
        pipeline_class="SkyReelsV2DiffusionForcingPipeline",
        build=build_skyreels_v2_df,
        defaults=VIDEO,
    ),
    TinyCase(
        name="skyreels-v2-df-i2v",
        pipeline_class="SkyReelsV2DiffusionForcingImageToVideoPipeline",
        build=lambda: build_skyreels_v2_df(SkyReelsV2DiffusionForcingImageToVideoPipeline),
        defaults=VIDEO,
        inputs=(("image", (16, 16)),),
    ),
    TinyCase(
        name="skyreels-v2-df-v2v",
        pipeline_class="SkyReelsV2DiffusionForcingVideoToVideoPipeline",
        build=lambda: build_skyreels_v2_df(SkyReelsV2DiffusionForcingVideoToVideoPipeline),
        defaults=CONTINUATION,
        videos=(("video", (16, 16), 7),),
        loops=2,
    ),
]
