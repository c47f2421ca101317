"""HunyuanDiT text-to-image (``HunyuanDiTPipeline``): one list of blocks with long skip connections.

The first half of the blocks feeds skips into the second half, so the cache keeps
the transformer's loop and stands in for each block (``PER_BLOCK_LAYOUTS`` in the
cache library). Two text encoders (a bilingual BERT-like CLIP and mT5); CFG runs
in the same batch. Latents are 8x VAE with 2x2 patches. The pipeline snaps sizes to
its trained resolutions and resizes the result back (``use_resolution_binning``).

Perturbed-attention guidance (``HunyuanDiTPAGPipeline``): the same transformer; each step the
pipeline adds a third batch branch whose self-attention in ``pag_applied_layers``
is replaced by identity, and moves the prediction away from it by ``pag_scale``
(3.0, the pipeline's default; a model may set another in its call defaults). It runs
only with CFG: at guidance 1 or below (where diffusers 0.42.1's call fails) PAG is off too.

ControlNet (``HunyuanDiTControlNetPipeline``: a HunyuanDiT directory with a ``controlnet``
component, or ``serve --controlnet`` on a HunyuanDiT model) takes one ``control`` image per
ControlNet, each with its ``controlnet_conditioning_scale``; the ControlNet's residuals join the
long skips into the second half of the blocks. The pipeline encodes the control image by
sampling the VAE's latent distribution from torch's process-wide random state, so the engine
seeds that state from the request's seed for the call (``seeds_process_rng``) and runs its jobs
alone.
"""

from __future__ import annotations

import dataclasses

from engine_service.models.inputs import control_kwargs, controlnet_count
from engine_service.models.pipeline_calls import text_to_image_with_negative
from engine_service.models.spec import FamilySpec

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
    build_call_kwargs=text_to_image_with_negative,
    uses_negative_prompt=True,
    call_defaults={"use_resolution_binning": True},
    controlnet_pipeline="HunyuanDiTControlNetPipeline",
)


def _pag_call_kwargs(pipe, jobs):
    kwargs = text_to_image_with_negative(pipe, jobs)
    if jobs[0].guidance_scale <= 1.0:
        # diffusers 0.42.1 sizes PAG's size and style conditions for three branches even without CFG's
        # unconditional one, and the call fails: without CFG the request runs without PAG.
        kwargs["pag_scale"] = 0.0
    return kwargs


HUNYUANDIT_PAG = dataclasses.replace(
    HUNYUANDIT,
    name="hunyuandit-pag",
    pipeline_classes=("HunyuanDiTPAGPipeline",),
    build_call_kwargs=_pag_call_kwargs,
    controlnet_pipeline=None,
)


def _controlnet_call_kwargs(pipe, jobs):
    return {**text_to_image_with_negative(pipe, jobs), **control_kwargs(pipe, jobs)}


HUNYUANDIT_CONTROLNET = dataclasses.replace(
    HUNYUANDIT,
    name="hunyuandit-controlnet",
    pipeline_classes=("HunyuanDiTControlNetPipeline",),
    build_call_kwargs=_controlnet_call_kwargs,
    input_roles=("control",),
    required_roles=("control",),
    control_count=controlnet_count,
    controlnet_pipeline=None,
    seeds_process_rng=True,
)
