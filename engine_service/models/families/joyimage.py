"""JoyImage Edit (``JoyImageEditPipeline``): known, not served.

An instruction editor: a Qwen3-VL encoder reads the prompt with the input image,
and double-stream blocks denoise Wan-VAE latents beside the input image's
latents. diffusers 0.42.1's pipeline encodes that image by sampling the VAE's
latent distribution from the process-wide random state, not the request's
generator, so the same request and seed would give a different image each time.
"""

from __future__ import annotations

from engine_service.models.pipeline_calls import text_to_image_with_negative, with_input_images
from engine_service.models.spec import FamilySpec

JOYIMAGE_EDIT = FamilySpec(
    name="joyimage-edit",
    pipeline_classes=("JoyImageEditPipeline",),
    output_kind="image",
    latent_patch=2,
    default_width=1024,
    default_height=1024,
    default_steps=40,
    default_guidance_scale=4.0,
    block_lists=("double_blocks",),
    build_call_kwargs=with_input_images(text_to_image_with_negative, {"image": "image"}, strength=False),
    uses_negative_prompt=True,
    input_roles=("image",),
    required_roles=("image",),
    unsupported_reason=(
        "diffusers 0.42.1's pipeline encodes the input image by sampling the VAE's latent distribution from the "
        "process-wide random state, not the request's generator: the same request and seed give a different image "
        "each time"
    ),
)
