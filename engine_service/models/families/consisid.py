"""ConsisID identity-preserving text-to-video (a CogVideoX derivative): known, not served.

Each request needs a face image turned into identity features by face models
outside diffusers (insightface / facexlib detectors and an EVA-CLIP encoder, with
OpenCV), whose weights come from the Hugging Face hub; they cannot be built
offline, so the family is neither tested nor claimed here.
"""

from __future__ import annotations

from engine_service.models.spec import FamilySpec
from engine_service.models.video import video_call_kwargs

CONSISID = FamilySpec(
    name="consisid",
    pipeline_classes=("ConsisIDPipeline",),
    output_kind="video",
    latent_patch=2,
    default_width=720,
    default_height=480,
    default_steps=50,
    default_guidance_scale=6.0,
    block_lists=("transformer_blocks",),
    build_call_kwargs=video_call_kwargs(images={"image": "image"}),
    default_frames=49,
    frame_stride=4,
    uses_negative_prompt=True,
    input_roles=("image",),
    required_roles=("image",),
    unsupported_reason=(
        "its face identity features come from face models outside diffusers (insightface / facexlib, "
        "EVA-CLIP, OpenCV) whose weights are on the Hugging Face hub; they cannot be built offline"
    ),
)
