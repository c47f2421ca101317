"""HunyuanDiT text-to-image (``HunyuanDiTPipeline``): one list of blocks with long skip connections.

The first half of the blocks feeds skips into the second half, so the cache keeps
the transformer's loop and stands in for each block (``PER_BLOCK_LAYOUTS`` in the
cache library). Two text encoders (a bilingual BERT-like CLIP and mT5); CFG runs
in the same batch. Latents are 8x VAE with 2x2 patches. The pipeline snaps sizes to
its trained resolutions and resizes the result back (``use_resolution_binning``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine_service.models.spec import FamilySpec

if TYPE_CHECKING:
    from collections.abc import Sequence

    from diffusers import DiffusionPipeline

    from engine_service.runtime.job import JobSpec


def _call_kwargs(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
    first = jobs[0]  # the batch key makes size, steps and guidance equal for every job
    return {
        "prompt": [job.prompt for job in jobs for _ in range(job.num_outputs)],
        "negative_prompt": [job.negative_prompt for job in jobs for _ in range(job.num_outputs)],
        "width": first.width,
        "height": first.height,
        "num_inference_steps": first.num_inference_steps,
        "guidance_scale": first.guidance_scale,
        "num_images_per_prompt": 1,
    }


HUNYUANDIT = FamilySpec(
    name="hunyuandit",
    pipeline_classes=("HunyuanDiTPipeline",),
    output_kind="image",
    latent_patch=2,
    default_width=1024,
    default_height=1024,
    default_steps=50,
    default_guidance_scale=5.0,
    block_lists=("blocks",),
    build_call_kwargs=_call_kwargs,
    uses_negative_prompt=True,
    call_defaults={"use_resolution_binning": True},
)
