"""Kandinsky 6 (``Kandinsky6TI2VAPipeline``, ``Kandinsky6SRPipeline``): known, not served.

The text/image-to-video(-and-audio) pipeline encodes prompts with a Qwen2.5-VL
processor, as Kandinsky 5 does: in transformers 5.24 building it needs
torchvision, which ditserve does not install (no torchvision build fits its torch
pin on CPU). The super-resolution pipeline upscales an input video, and a
request's inputs are still images.
"""

from __future__ import annotations

from engine_service.models.spec import FamilySpec
from engine_service.models.video import video_call_kwargs

_QWEN_VL_PROCESSOR = (
    "its Qwen2.5-VL processor (the tokenizer component) needs torchvision, which ditserve does not "
    "install; transformers cannot build the processor without it"
)

_COMMON = {
    "output_kind": "video",
    "latent_patch": 2,
    "default_width": 768,
    "default_height": 512,
    "default_guidance_scale": 5.0,
    "block_lists": ("visual_transformer_blocks",),
    "default_frames": 121,
    "frame_stride": 4,
}

KANDINSKY6 = FamilySpec(
    name="kandinsky6",
    pipeline_classes=("Kandinsky6TI2VAPipeline",),
    build_call_kwargs=video_call_kwargs(images={"image": "image"}, fps="frame_rate"),
    default_steps=50,
    uses_negative_prompt=True,
    input_roles=("image",),
    unsupported_reason=_QWEN_VL_PROCESSOR,
    **_COMMON,
)

KANDINSKY6_SR = FamilySpec(
    name="kandinsky6-sr",
    pipeline_classes=("Kandinsky6SRPipeline",),
    build_call_kwargs=video_call_kwargs(negative_prompt=False),
    default_steps=4,
    unsupported_reason=(
        "it upscales an input video (no prompt), while a request's inputs are still images (PNG or JPEG), never a video"
    ),
    **_COMMON,
)
