"""Helios: a video sampled in two chunks (two denoising loops), each conditioned on the chunks before it;
Helios Pyramid: each chunk in two stages, at half and then full resolution (four denoising loops)."""

import torch
from diffusers import HeliosPipeline, HeliosPyramidPipeline, HeliosScheduler, HeliosTransformer3DModel
from tiny_pipelines import TINY_WAN_TRANSFORMER, tiny_umt5, tiny_wan_vae
from tiny_tokenizers import small_t5_tokenizer

from tiny_families import TinyCase, louder_vae

#: 9 frames of 16x16 in chunks of 2 latent frames (5 frames): 2 chunks, whose 10 frames are cut to 9.
VIDEO = {
    "width": 16,
    "height": 16,
    "frames": 9,
    "steps": 3,
    "call_defaults": {"max_sequence_length": 16, "num_latent_frames_per_chunk": 2},
}


#: 9 frames of 32x32 in 2 chunks, each in 2 stages of 2 steps: at 2x2 latent pixels, then at 4x4 (the
#: real model's 3 stages start at a quarter of its size).
PYRAMID = {**VIDEO, "width": 32, "height": 32, "steps": 2}


def build_helios(pipeline_class=HeliosPipeline, stages: int = 1) -> HeliosPipeline | HeliosPyramidPipeline:
    """A 2-block Helios transformer (short, mid and long history patches) with the Wan VAE; a scheduler of
    ``stages`` equal stages that takes the pipeline's shift (``mu``)."""
    torch.manual_seed(0)
    wan = {key: value for key, value in TINY_WAN_TRANSFORMER.items() if key != "rope_max_seq_len"}
    transformer = HeliosTransformer3DModel(**wan, in_channels=16, num_layers=2, rope_dim=(4, 4, 4)).eval()
    stage_range = [stage / stages for stage in range(stages + 1)]
    return pipeline_class(
        tokenizer=small_t5_tokenizer(),
        text_encoder=tiny_umt5(),
        vae=louder_vae(tiny_wan_vae()),
        scheduler=HeliosScheduler(stages=stages, stage_range=stage_range, use_dynamic_shifting=True),
        transformer=transformer,
    )


CASES = [
    TinyCase(
        name="helios",
        pipeline_class="HeliosPipeline",
        build=build_helios,
        defaults=VIDEO,
        inputs=(("image", (16, 16)),),
        loops=2,
        # The first frame of the second chunk: frames 5-9 of the joined 10, cut to 9.
        preview_frame=5,
    ),
    TinyCase(
        name="helios-pyramid",
        pipeline_class="HeliosPyramidPipeline",
        build=lambda: build_helios(HeliosPyramidPipeline, stages=2),
        defaults=PYRAMID,
        inputs=(("image", (32, 32)),),
        loops=4,
        preview_frame=5,
    ),
]
