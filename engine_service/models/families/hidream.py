"""HiDream-I1 text-to-image (``HiDreamImagePipeline``): double-stream then single-stream blocks.

Four text encoders (two CLIPs, T5, Llama 3.1); every block takes its own Llama
layer's state, concatenated to the tokens before the block and cut off after it,
so the cache keeps the transformer's loop and stands in for each block
(``PER_BLOCK_LAYOUTS``); its wrapper blocks hide their forward pattern, stated in
``LAYOUT_PATTERNS``. Each list is its own cache group. CFG runs in the same batch.

The pipeline renders every request at its native pixel area (1024 x 1024 for
HiDream-I1), keeping the requested aspect ratio: a request of another area gets
an image of that native area back, not of the requested size.
"""

from __future__ import annotations

from engine_service.models.pipeline_calls import text_to_image_with_negative
from engine_service.models.spec import FamilySpec

HIDREAM = FamilySpec(
    name="hidream",
    pipeline_classes=("HiDreamImagePipeline",),
    output_kind="image",
    latent_patch=2,
    default_width=1024,
    default_height=1024,
    default_steps=50,
    default_guidance_scale=5.0,
    block_lists=("double_stream_blocks", "single_stream_blocks"),
    build_call_kwargs=text_to_image_with_negative,
    uses_negative_prompt=True,
    call_defaults={"max_sequence_length": 128},
)
