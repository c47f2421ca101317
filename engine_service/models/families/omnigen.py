"""OmniGen (``OmniGenPipeline``): text-to-image, and editing or composing from reference images.

One transformer (a Phi-3-style decoder, ``layers``) reads the prompt's tokens with the
reference images' VAE latents put in place of their tags, a time token, then the image
tokens it denoises. A prompt names its references in order as ``<img><|image_1|></img>``,
``<img><|image_2|></img>`` ...: a request sends them as ``reference`` images, and a
prompt whose tags are not exactly ``1..n`` for its ``n`` references (or that names an image
when none is sent) is INVALID_ARGUMENT on ``prompt``, where the pipeline would fail an assertion.

CFG is built into every call, in one batch: without references two branches (prompt and
the processor's fixed negative prompt: ``guidance_scale``), with references three (prompt,
negative prompt, references alone: ``img_guidance_scale``, 1.6 unless a model's call
defaults set it; requests do not carry it). The builder passes ``input_images=None`` for a
text-only request, as the pipeline counts three branches for any list. Jobs run alone: the transformer's rotary
embedding takes the positions of the batch's first row for every row, so an output would
depend on the prompt lengths of its neighbours; and the pipeline samples the references'
VAE latents from torch's process-wide random state (seeded per job). A job's rows, all its
branches, are then the cache's one sample group. As in cache-dit, the cache decides on the
whole sequence, whose prompt and reference tokens (attending causally to themselves only) come
out of every step the same.

The output is the request's size (default 1024 x 1024): the engine passes
``use_input_image_size_as_output=False`` on every call (a model's call defaults cannot turn it
on), as the size it would render is not the one the engine checked; send a reference's size
(after the pipeline's crop to multiples of 16) as width and height to keep it. A reference more
elongated than 128:1 is INVALID_ARGUMENT: scaled as the pipeline scales it, it could outgrow the
transformer's patch positions (192 a side in the released checkpoint).

The pipeline's constructor needs a processor that its module imports only with torchvision:
:mod:`engine_service.models.omnigen_processor` provides one without it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from engine_service.models.inputs import images_of
from engine_service.models.pipeline_calls import text_to_image
from engine_service.models.spec import FamilySpec

if TYPE_CHECKING:
    from collections.abc import Sequence

    import torch
    from diffusers import DiffusionPipeline

    from engine_service.jobs import JobSpec

#: How the processor finds an image tag (diffusers' ``processor_omnigen``): the number is the reference's.
_TAG = re.compile(r"<\|image_(\d+)\|>")


def _call_kwargs(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
    kwargs = text_to_image(pipe, jobs)
    references = images_of(jobs, "reference")
    # One list of references per prompt; None (not an empty list) keeps a text-only call at two branches.
    kwargs["input_images"] = [references for _ in kwargs["prompt"]] if references else None
    kwargs["use_input_image_size_as_output"] = False
    return kwargs


def _check_prompt_images(prompt: str, sent: Mapping[str, int]) -> str | None:
    """Why the prompt's image tags do not name exactly the ``reference`` images sent, or ``None``."""
    count = sent.get("reference", 0)
    named = sorted({int(number) for number in _TAG.findall(prompt)})
    wanted = range(1, count + 1)
    if set(named) <= set(wanted) and all(f"<img><|image_{k}|></img>" in prompt for k in wanted):
        return None
    if count and named == list(wanted):  # the right numbers, some not written as the processor's full tag
        partial = ", ".join(f"<img><|image_{k}|></img>" for k in wanted if f"<img><|image_{k}|></img>" not in prompt)
        return f"does not name {partial} in full: write each reference image's tag as <img><|image_k|></img>"
    shown = ", ".join(f"<|image_{k}|>" for k in named) or "no image"
    if count == 0:
        return f"names {shown} but the request sends no reference image; send one per tag, or no tag"
    tags = "<img><|image_1|></img>" + (f" to <img><|image_{count}|></img>" if count > 1 else "")
    return f"names {shown} for {count} reference image(s); it must name {tags}, each at least once, and no other"


def _decode_latents(pipe: DiffusionPipeline, latents: torch.Tensor, job: JobSpec) -> torch.Tensor:
    """Previews as the pipeline decodes its result: latents / scaling factor (no shift), VAE, [0, 1]."""
    decoded = pipe.vae.decode((latents / pipe.vae.config.scaling_factor).to(pipe.vae.dtype), return_dict=False)[0]
    return (decoded / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1)


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
    build_call_kwargs=_call_kwargs,
    decode_latents=_decode_latents,
    input_roles=("reference",),
    repeated_roles=("reference",),
    # The pipeline scales a reference down to 1024 on its longer side, then up to 16 on its shorter: a
    # more elongated one than 128:1 could pass the released transformer's 192 patch positions a side.
    max_input_aspect=128,
    check_prompt_images=_check_prompt_images,
    generator_per_output=False,
    seeds_process_rng=True,
)
