"""ChronoEdit image editing through a 5-frame video: a 2-block Wan-style transformer, a CLIP vision encoder."""

import torch
from diffusers import (
    ChronoEditPipeline,
    ChronoEditTransformer3DModel,
    FlowMatchEulerDiscreteScheduler,
)
from tiny_pipelines import TINY_WAN_TRANSFORMER, tiny_clip_vision, tiny_umt5, tiny_wan_vae
from tiny_tokenizers import small_t5_tokenizer

from tiny_families import TinyCase, louder_vae


def build_chronoedit() -> ChronoEditPipeline:
    vae = louder_vae(tiny_wan_vae())  # at init scale a change of guidance would not reach a pixel
    text_encoder = tiny_umt5()
    torch.manual_seed(0)
    transformer = ChronoEditTransformer3DModel(**TINY_WAN_TRANSFORMER, in_channels=36, num_layers=2, image_dim=4).eval()
    return ChronoEditPipeline(
        tokenizer=small_t5_tokenizer(),
        text_encoder=text_encoder,
        **tiny_clip_vision(),
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
