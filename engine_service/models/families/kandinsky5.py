"""Kandinsky 5 image (``Kandinsky5T2IPipeline``, ``Kandinsky5I2IPipeline``): known, not served.

Both pipelines encode prompts (and, for I2I, the input image) with a Qwen2.5-VL
processor. In transformers 5.24 building that processor needs torchvision (its video
processor), which ditserve does not install, so no checkpoint of these pipelines
loads here. Were it served, only its visual blocks would cache (its two text blocks
refine the prompt once per step and are cheap).
"""

from __future__ import annotations

from engine_service.models.pipeline_calls import text_to_image_with_negative
from engine_service.models.spec import FamilySpec

_REASON = (
    "its Qwen2.5-VL processor (the tokenizer component) needs torchvision, which ditserve does not "
    "install; transformers cannot build the processor without it"
)

KANDINSKY5_IMAGE = FamilySpec(
    name="kandinsky5-image",
    pipeline_classes=("Kandinsky5T2IPipeline", "Kandinsky5I2IPipeline"),
    output_kind="image",
    latent_patch=2,
    default_width=1024,
    default_height=1024,
    default_steps=50,
    default_guidance_scale=3.5,
    block_lists=("visual_transformer_blocks",),
    build_call_kwargs=text_to_image_with_negative,
    uses_negative_prompt=True,
    input_roles=("image",),
    unsupported_reason=_REASON,
)
