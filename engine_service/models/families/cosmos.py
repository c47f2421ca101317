"""NVIDIA Cosmos world models (Cosmos 1, Cosmos-Predict2, Cosmos 2.5): known, not served.

Their pipelines refuse to run without NVIDIA's guardrail (``CosmosSafetyChecker``
from the ``cosmos_guardrail`` package, a condition of the model licence), and the
guardrail's own models come from the Hugging Face hub: it cannot be built offline
and so is neither tested nor claimed here.
"""

from __future__ import annotations

from engine_service.models.spec import FamilySpec
from engine_service.models.video import video_call_kwargs

COSMOS = FamilySpec(
    name="cosmos",
    pipeline_classes=(
        "CosmosTextToWorldPipeline",
        "CosmosVideoToWorldPipeline",
        "Cosmos2TextToImagePipeline",
        "Cosmos2VideoToWorldPipeline",
        "Cosmos2_5_PredictBasePipeline",
        "Cosmos2_5_TransferPipeline",
    ),
    output_kind="video",
    latent_patch=2,
    default_width=1280,
    default_height=704,
    default_steps=36,
    default_guidance_scale=7.0,
    block_lists=("transformer_blocks",),
    build_call_kwargs=video_call_kwargs(fps="fps"),
    default_frames=121,
    frame_stride=8,
    uses_negative_prompt=True,
    unsupported_reason=(
        "the pipeline refuses to run without NVIDIA's cosmos_guardrail safety checker, whose models come from "
        "the Hugging Face hub; it cannot be built offline, so the family is not tested"
    ),
)
