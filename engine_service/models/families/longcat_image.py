"""LongCat-Image text-to-image (``LongCatImagePipeline``): FLUX-like double- then single-stream blocks.

A Qwen2.5-VL text encoder (quoted text in a prompt is tokenized character by
character, for rendering); CFG with a negative prompt as a second transformer call,
its result renormalized to the conditional prediction's norm (``enable_cfg_renorm``).
Like FLUX it packs 2x2 latent patches of a 16-channel 8x VAE into one token, and both
block lists cache as one group. The pipeline can first rewrite the prompt with its
text encoder (``enable_prompt_rewrite``, up to 512 generated tokens): off here, so a
request's prompt is used as written; a model may turn it on in its ``ditserve.json``.
The pipeline has no step callback: the engine follows its scheduler's steps.

LongCat-Image Edit (``LongCatImageEditPipeline``) is known but not served: it takes no
width or height.
"""

from __future__ import annotations

from engine_service.models.pipeline_calls import text_to_image_with_negative
from engine_service.models.spec import FamilySpec

_COMMON = {
    "output_kind": "image",
    "latent_patch": 2,
    "default_width": 1024,
    "default_height": 1024,
    "default_steps": 50,
    "default_guidance_scale": 4.5,
    "block_lists": ("transformer_blocks", "single_transformer_blocks"),
    "uses_negative_prompt": True,
    "step_end_callback": False,
}

LONGCAT_IMAGE = FamilySpec(
    name="longcat-image",
    pipeline_classes=("LongCatImagePipeline",),
    build_call_kwargs=text_to_image_with_negative,
    call_defaults={"enable_prompt_rewrite": False},
    **_COMMON,
)

LONGCAT_IMAGE_EDIT = FamilySpec(
    name="longcat-image-edit",
    pipeline_classes=("LongCatImageEditPipeline",),
    build_call_kwargs=text_to_image_with_negative,
    input_roles=("image",),
    required_roles=("image",),
    unsupported_reason=(
        "diffusers 0.42.1's pipeline takes no width or height: it renders at about 1024x1024 in the input "
        "image's aspect whatever the request's size; the engine's sizes, previews and cache plans follow the "
        "request's width and height"
    ),
    **_COMMON,
)
