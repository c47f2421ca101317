"""Motif-Video text-to-video and image-to-video (``MotifVideoPipeline``, ``MotifVideoImage2VideoPipeline``).

Dual-stream then single-stream blocks (HunyuanVideo-like) over Wan-VAE latents
(8x spatial, 4x temporal) in 2x2 patches, conditioned on a T5Gemma 2 encoder.
CFG is run by the pipeline's guider as separate transformer calls; the request's
guidance scale becomes the guider's scale.

A checkpoint may end its single-stream list with ``num_decoder_layers`` decoder
blocks that read a copy of the hidden states taken before the dual-stream
blocks, with the encoder blocks' output as their context. The block cache
stands in for whole lists, so it cannot follow that split of one list into two
streams: loading such a checkpoint fails.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from engine_service.errors import ModelLoadError
from engine_service.models.families.hunyuan_video import guided
from engine_service.models.spec import FamilySpec
from engine_service.models.video import mean_std, video_call_kwargs, video_preview

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline


def _refuse_decoder_layers(pipe: DiffusionPipeline) -> None:
    """Raises ModelLoadError, which fails the load, for a transformer with decoder layers (see the module docstring)."""
    decoder_layers = pipe.transformer.config.num_decoder_layers
    if decoder_layers:
        raise ModelLoadError(
            f"MotifVideoPipeline with num_decoder_layers={decoder_layers} is not supported: the last single-stream "
            "blocks decode a copy of the input hidden states, a second stream the block cache cannot follow"
        )


MOTIF_VIDEO = FamilySpec(
    name="motif-video",
    pipeline_classes=("MotifVideoPipeline",),
    output_kind="video",
    latent_patch=2,
    default_width=1280,
    default_height=736,
    default_steps=50,
    default_guidance_scale=5.0,
    block_lists=("transformer_blocks", "single_transformer_blocks"),
    build_call_kwargs=guided(video_call_kwargs()),
    decode_latents=video_preview(mean_std),
    default_frames=121,
    frame_stride=4,
    uses_negative_prompt=True,
    prepare_pipeline=_refuse_decoder_layers,
)

MOTIF_VIDEO_I2V = dataclasses.replace(
    MOTIF_VIDEO,
    name="motif-video-i2v",
    pipeline_classes=("MotifVideoImage2VideoPipeline",),
    build_call_kwargs=guided(video_call_kwargs(images={"image": "image"})),
    decode_latents=video_preview(mean_std, frame="last"),
    input_roles=("image",),
    required_roles=("image",),
)
"""Image-to-video: the input image's latents fill the first latent frame of an extra condition input (with a
mask), and SigLIP features of it from the text encoder's vision tower join the text context."""
