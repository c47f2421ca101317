"""OmniGen (``OmniGenPipeline``): known, not served.

Its multimodal processor is built in the pipeline's constructor from torchvision
transforms, and ditserve does not install torchvision, so the pipeline cannot be
constructed here: the only torchvision for torch 2.13.0 on the package registries
(0.28.0) is a CUDA build whose ``_C.so`` needs ``libtorch_cuda.so`` and
``libc10_cuda.so``, which the CPU torch lacks.
"""

from __future__ import annotations

from engine_service.models.pipeline_calls import text_to_image
from engine_service.models.spec import FamilySpec

OMNIGEN = FamilySpec(
    name="omnigen",
    pipeline_classes=("OmniGenPipeline",),
    output_kind="image",
    latent_patch=2,
    default_width=1024,
    default_height=1024,
    default_steps=50,
    default_guidance_scale=2.5,
    block_lists=("layers",),
    build_call_kwargs=text_to_image,
    input_roles=("reference",),
    unsupported_reason=(
        "the pipeline builds its image processor from torchvision transforms, and ditserve does not install "
        "torchvision: the only torchvision for torch 2.13.0 on the package registries (0.28.0) is a CUDA build "
        "that does not load with the CPU torch"
    ),
)
