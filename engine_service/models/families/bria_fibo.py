"""Bria Fibo (``BriaFiboPipeline``): FLUX-style double- then single-stream blocks fed a different
text-encoder layer each.

A SmolLM3 text encoder; every block replaces half of the text states with its own
projected encoder layer, in the transformer's loop, so the cache stands in for each
block (two groups: the double-stream and the single-stream list). Fibo is trained on
structured (JSON) captions; any prompt text is accepted. Latents are 16x Wan 2.2 VAE
latents, one token each (sizes multiples of 16). CFG runs in one batch with the
negative prompt (an empty one is the encoder's begin-of-text token) above guidance 1.

Fibo Edit (``BriaFiboEditPipeline``) takes one required ``image`` (encoded at its own
size, up to about 1024x1024) and an optional ``mask`` of its size (the masked region is
regenerated). Its prompt must be a JSON object with an ``edit_instruction``; any other
prompt is sent as ``{"edit_instruction": prompt}``.

Fibo 2 (``BriaFibo2Pipeline``) is another architecture: a Qwen3-VL encoder whose layer
bundles feed a Perceiver (gist tokens) and the main list's injection blocks, which read
their own bundle in the transformer's loop (the cache stands in for each block of the
main list; the noise refiner before it is no part of the stack). Served for
text-to-image: a JSON caption is put in the form Fibo 2 was trained with, and the text
of its ``text_render`` entries is drawn and shown to the encoder as images from the
step whose noise level is 0.9 or less. CFG as a second transformer call above
guidance 1; an empty negative prompt is the pipeline's default (an empty caption).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from engine_service.models.inputs import image_of
from engine_service.models.pipeline_calls import text_to_image_with_negative
from engine_service.models.spec import FamilySpec

if TYPE_CHECKING:
    from collections.abc import Sequence

    from diffusers import DiffusionPipeline

    from engine_service.jobs import JobSpec


def _edit_instruction(prompt: str) -> str:
    """``prompt`` if it is a JSON object with an ``edit_instruction``, else one made of it."""
    try:
        parsed = json.loads(prompt)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and "edit_instruction" in parsed:
        return prompt
    return json.dumps({"edit_instruction": prompt})


def _edit_call_kwargs(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
    kwargs = text_to_image_with_negative(pipe, jobs)
    kwargs["prompt"] = [_edit_instruction(prompt) for prompt in kwargs["prompt"]]
    return {**kwargs, "image": image_of(jobs, "image"), "mask": image_of(jobs, "mask")}


_COMMON: dict[str, Any] = {
    "output_kind": "image",
    "latent_patch": 1,
    "default_width": 1024,
    "default_height": 1024,
    "default_steps": 50,
    "default_guidance_scale": 5.0,
    "block_lists": ("transformer_blocks", "single_transformer_blocks"),
    "uses_negative_prompt": True,
}

BRIA_FIBO = FamilySpec(
    name="bria-fibo",
    pipeline_classes=("BriaFiboPipeline",),
    build_call_kwargs=text_to_image_with_negative,
    **_COMMON,
)


def _fibo2_call_kwargs(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
    kwargs = text_to_image_with_negative(pipe, jobs)
    if not any(kwargs["negative_prompt"]):
        kwargs["negative_prompt"] = None  # the pipeline's own: an empty caption
    return kwargs


BRIA_FIBO2 = FamilySpec(
    name="bria-fibo2",
    pipeline_classes=("BriaFibo2Pipeline",),
    output_kind="image",
    latent_patch=2,
    default_width=1024,
    default_height=1024,
    default_steps=30,
    default_guidance_scale=5.0,
    block_lists=("layers",),
    build_call_kwargs=_fibo2_call_kwargs,
    uses_negative_prompt=True,
)

BRIA_FIBO_EDIT = FamilySpec(
    name="bria-fibo-edit",
    pipeline_classes=("BriaFiboEditPipeline",),
    build_call_kwargs=_edit_call_kwargs,
    input_roles=("image", "mask"),
    required_roles=("image",),
    **_COMMON,
)
