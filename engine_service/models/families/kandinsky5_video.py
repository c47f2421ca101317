"""Kandinsky 5 video (``Kandinsky5T2VPipeline``, ``Kandinsky5I2VPipeline``): known, not served.

Both pipelines encode prompts with a Qwen2.5-VL processor. In transformers 5.24
building that processor needs torchvision (its video processor), which ditserve
does not install, so no checkpoint of these pipelines loads here. Were it served,
only its visual blocks would cache (its text blocks refine the prompt once per step).
"""

from __future__ import annotations

from engine_service.models.spec import FamilySpec
from engine_service.models.video import video_call_kwargs

KANDINSKY5_VIDEO = FamilySpec(
    name="kandinsky5-video",
    pipeline_classes=("Kandinsky5T2VPipeline", "Kandinsky5I2VPipeline"),
    output_kind="video",
    latent_patch=2,
    default_width=768,
    default_height=512,
    default_steps=50,
    default_guidance_scale=5.0,
    block_lists=("visual_transformer_blocks",),
    build_call_kwargs=video_call_kwargs(images={"image": "image"}),
    default_frames=121,
    frame_stride=4,
    uses_negative_prompt=True,
    input_roles=("image",),
    unsupported_reason=(
        "its Qwen2.5-VL processor (the tokenizer component) needs torchvision, which ditserve does not "
        "install; transformers cannot build the processor without it"
    ),
)
