"""AnyFlow text-to-video (``AnyFlowPipeline``): a flow-map-distilled Wan 2.1 transformer, one list of blocks.

The transformer takes two timesteps per token, the current one and the target of
the step (``r``), and predicts the mean velocity between them
(``FlowMapEulerDiscreteScheduler``), so few steps suffice. The Wan 2.1 VAE (4
frames per latent frame, 8x spatially) with 2x2 latent patches per token. The
pipeline keeps its latents frames-first (N, F, C, h, w). CFG, off at the
default guidance 1.0, batches the negative prompt into the same call. Its
video-continuation input (``video``, frames to continue) is not exposed: a
request's inputs are still images.

AnyFlow-FAR (``AnyFlowFARPipeline``) is known but not served. It samples the video
chunk by chunk (``chunk_partition`` of the transformer's config: 81 frames by default),
each chunk a whole loop of ``num_inference_steps``, which the engine can follow
(``FamilySpec.denoising_loops``). What does not fit is the call between the loops:
after each chunk but the last it runs the transformer once more, at timestep 0 over
the chunks made so far, to fill the attention key-value cache that the next chunks
attend to. The block cache takes that call for one more step and may reuse the middle
blocks' residual for it; a skipped block writes no keys and values, so the next chunk
would attend to an empty cache. (A tiny two-chunk check with DBCache at threshold 1
showed the middle blocks skipping that write.)
"""

from __future__ import annotations

from engine_service.models.spec import FamilySpec
from engine_service.models.video import frames_first, mean_std, video_call_kwargs, video_preview

ANYFLOW = FamilySpec(
    name="anyflow",
    pipeline_classes=("AnyFlowPipeline",),
    output_kind="video",
    latent_patch=2,
    default_width=832,
    default_height=480,
    default_steps=50,
    default_guidance_scale=1.0,
    block_lists=("blocks",),
    build_call_kwargs=video_call_kwargs(),
    decode_latents=video_preview(mean_std, latents=frames_first),
    default_frames=81,
    frame_stride=4,
    uses_negative_prompt=True,
    call_defaults={"max_sequence_length": 512},
)

ANYFLOW_FAR = FamilySpec(
    name="anyflow-far",
    pipeline_classes=("AnyFlowFARPipeline",),
    output_kind="video",
    latent_patch=2,
    default_width=832,
    default_height=480,
    default_steps=50,
    default_guidance_scale=1.0,
    block_lists=("blocks",),
    build_call_kwargs=video_call_kwargs(),
    default_frames=81,
    frame_stride=4,
    uses_negative_prompt=True,
    unsupported_reason=(
        "its chunks (chunk_partition) are whole denoising loops, which the engine follows, but after each chunk "
        "but the last it calls the transformer once more, at timestep 0 over the chunks made so far, to fill "
        "the attention key-value cache the next chunks attend to; the block cache takes that call for a step "
        "and may reuse the middle blocks' residual, and a skipped block writes no keys and values, so the next "
        "chunk would attend to an empty cache"
    ),
)
