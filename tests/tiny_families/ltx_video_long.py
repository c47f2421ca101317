"""LTX-Video long multi-prompt image-to-video: overlapping temporal windows, each a denoising loop."""

from diffusers import LTXEulerAncestralRFScheduler, LTXI2VLongMultiPromptPipeline

from tiny_families import TinyCase
from tiny_families.ltx_video import _build

#: 17 frames of 32x32: 3 latent frames of 4x4 with this VAE (8x temporal compression as the real one, 8x
#: spatial), in windows of 2 latent frames overlapping by 1: 2 windows, fused back into 3 latent frames.
#: Each window runs 3 - 1 = 2 steps; one spatial tile decodes the 4x4 latents.
VIDEO = {
    "width": 32,
    "height": 32,
    "frames": 17,
    "steps": 3,
    "call_defaults": {
        "max_sequence_length": 16,
        "temporal_tile_size": 16,
        "temporal_overlap": 8,
        "decode_horizontal_tiles": 1,
        "decode_vertical_tiles": 1,
    },
}


def build_ltx_long() -> LTXI2VLongMultiPromptPipeline:
    """LTX-Video's tiny components with 8x temporal compression, and the scheduler the pipeline prefers."""
    return _build(LTXI2VLongMultiPromptPipeline, LTXEulerAncestralRFScheduler(), scaling=(True, True, True, False))


CASES = [
    TinyCase(
        name="ltx-video-long",
        pipeline_class="LTXI2VLongMultiPromptPipeline",
        build=build_ltx_long,
        defaults=VIDEO,
        inputs=(("image", (32, 32)),),
        loops=2,
        loop_steps=2,
    ),
]
