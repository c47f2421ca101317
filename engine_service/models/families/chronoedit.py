"""ChronoEdit image editing: a Wan-style image-to-video transformer that edits through a short video.

The input image is the first frame; the edited picture is the last frame of the
video the pipeline returns. Without temporal reasoning (the pipeline's default)
it always makes 5 frames, so that is the only frame count accepted. The Wan VAE
compresses 4 frames into one latent frame and 8x spatially; the transformer
packs 2x2 latent patches into one token.
"""

from __future__ import annotations

from engine_service.models.spec import FamilySpec
from engine_service.models.video import mean_std, video_call_kwargs, video_preview

CHRONOEDIT = FamilySpec(
    name="chronoedit",
    pipeline_classes=("ChronoEditPipeline",),
    output_kind="video",
    latent_patch=2,
    default_width=832,
    default_height=480,
    default_steps=50,
    default_guidance_scale=5.0,
    block_lists=("blocks",),
    build_call_kwargs=video_call_kwargs(images={"image": "image"}),
    decode_latents=video_preview(mean_std, frame="last"),
    default_frames=5,
    frame_stride=4,
    frame_counts=(5,),
    uses_negative_prompt=True,
    input_roles=("image",),
    required_roles=("image",),
    call_defaults={"max_sequence_length": 512},
    context_parallel=True,
)
