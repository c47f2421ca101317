"""DiT (``DiTPipeline``, e.g. DiT-XL-2-256/512): class-conditional, no text encoder.

The prompt names the class: one of the model's class names (``id2label`` in
``model_index.json``; any of the comma-separated synonyms, case and surrounding
spaces ignored, e.g. ``"golden retriever"``) or the class index as a number
(``"207"``). Anything else is INVALID_ARGUMENT on ``prompt``. There is no negative
prompt: guidance is classifier-free against the null class, in the same batch.
The model renders one size only (its latent sample size x the VAE scale; 256 or
512 for DiT-XL-2), which is its default; the pipeline takes no step callback, so
the engine follows its scheduler's steps.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine_service.models.spec import FamilySpec

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from diffusers import DiffusionPipeline

    from engine_service.jobs import JobSpec


def class_id(pipe: DiffusionPipeline, prompt: str) -> int | None:
    """The class a prompt names (see the module docstring), or ``None``."""
    text = prompt.strip()
    num_classes = pipe.transformer.config.num_embeds_ada_norm
    if text.isdigit():
        index = int(text)
        return index if index < num_classes else None
    wanted = text.casefold()
    for name, index in pipe.labels.items():
        if name.casefold() == wanted:
            return int(index)
    return None


def _check_prompt(pipe: DiffusionPipeline, prompt: str, call_defaults: Mapping[str, Any]) -> str | None:
    if class_id(pipe, prompt) is not None:
        return None
    num_classes = pipe.transformer.config.num_embeds_ada_norm
    examples = ", ".join(repr(name) for name in list(pipe.labels)[:3])
    named = f"one of its class names (e.g. {examples}) or " if examples else ""
    return f"this class-conditional model takes {named}a class index 0-{num_classes - 1}; got {prompt.strip()!r}"


def _native_size(pipe: DiffusionPipeline) -> tuple[int, int]:
    vae_scale = 2 ** (len(pipe.vae.config.block_out_channels) - 1)
    size = pipe.transformer.config.sample_size * vae_scale
    return size, size


def _call_kwargs(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
    first = jobs[0]
    return {
        "class_labels": [class_id(pipe, job.prompt) for job in jobs for _ in range(job.num_outputs)],
        "num_inference_steps": first.num_inference_steps,
        "guidance_scale": first.guidance_scale,
    }


DIT = FamilySpec(
    name="dit",
    pipeline_classes=("DiTPipeline",),
    output_kind="image",
    latent_patch=2,
    default_width=256,
    default_height=256,
    default_steps=50,
    default_guidance_scale=4.0,
    block_lists=("transformer_blocks",),
    build_call_kwargs=_call_kwargs,
    check_prompt=_check_prompt,
    warmup_prompt="0",
    native_size=_native_size,
    step_end_callback=False,
)
