"""Ideogram 4 text-to-image (``Ideogram4Pipeline``).

One list of single-stream blocks (``layers``) over one packed sequence per image:
the text tokens (hidden states tapped from 13 decoder layers of a Qwen3-VL
language model, concatenated per token) followed by the image tokens (FLUX.2 VAE
latents patchified 2x2, so 16x per token). CFG is asymmetric: a second,
separately trained ``unconditional_transformer`` denoises the image tokens alone
with zeroed text features at every step, and the two velocities are blended.

The pipeline takes a per-step ``guidance_schedule`` (its default: 7.0 for 45
steps, then 3.0 for the last 3) or one ``guidance_scale`` for every step. The
engine sends the request's ``guidance_scale`` as that constant scale (default 7.0,
the schedule's main value); ``1.0`` uses the conditional prediction alone (the
unconditional transformer still runs).

The cache works on both transformers: the unconditional one is the CFG branch of
each step (``CFG_TRANSFORMERS`` of the cache), with contexts and decisions of its
own, as a second CFG call of one transformer would have (``cfg_cached`` in step
events); threshold 0 gives the uncached output bit for bit. The prompt upsampler (``prompt_upsampling``, an
optional sampling head) is off: a request's prompt is encoded as sent. A prompt longer
than ``max_sequence_length`` tokens (2048 by default) in the model's chat template is
INVALID_ARGUMENT on ``prompt`` (the pipeline would raise).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from engine_service.models.pipeline_calls import text_to_image
from engine_service.models.spec import FamilySpec

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from diffusers import DiffusionPipeline

    from engine_service.jobs import JobSpec


#: ``Ideogram4Pipeline.__call__``'s default ``max_sequence_length``.
_MAX_SEQUENCE_LENGTH = 2048


def _call_kwargs(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
    # A constant scale replaces the default schedule; the pipeline refuses both at once.
    return {**text_to_image(pipe, jobs), "guidance_schedule": None}


def _prompt_tokens(pipe: DiffusionPipeline, prompt: str) -> int:
    """The tokens of ``prompt`` as the pipeline encodes it: one user message in the chat template."""
    messages = [{"role": "user", "content": [{"type": "text", "text": prompt}]}]
    text = pipe.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return len(pipe.tokenizer(text, add_special_tokens=False)["input_ids"])


def _check_prompt(pipe: DiffusionPipeline, prompt: str, call_defaults: Mapping[str, Any]) -> str | None:
    limit = call_defaults.get("max_sequence_length", _MAX_SEQUENCE_LENGTH)
    tokens = _prompt_tokens(pipe, prompt)
    if tokens > limit:
        return f"is {tokens} tokens long in the model's chat template; the model takes at most {limit}"
    return None


def _decode_latents(pipe: DiffusionPipeline, latents: torch.Tensor, job: JobSpec) -> torch.Tensor:
    """Latents are (N, tokens, 4 x VAE channels): undo the VAE's batch-norm statistics and the 2x2
    patchify (as the pipeline does before decoding), then decode."""
    vae, patch = pipe.vae, pipe.patch_size
    mean = vae.bn.running_mean.view(1, 1, -1).to(latents)
    std = torch.sqrt(vae.bn.running_var + vae.config.batch_norm_eps).view(1, 1, -1).to(latents)
    z = latents * std + mean
    grid_h = job.height // (pipe.vae_scale_factor * patch)
    grid_w = job.width // (pipe.vae_scale_factor * patch)
    channels = z.shape[-1] // (patch * patch)
    z = z.view(z.shape[0], grid_h, grid_w, patch, patch, channels).permute(0, 5, 1, 3, 2, 4)
    z = z.reshape(z.shape[0], channels, grid_h * patch, grid_w * patch)
    decoded = vae.decode(z.to(vae.dtype), return_dict=False)[0]
    return (decoded.float() / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1)


IDEOGRAM4 = FamilySpec(
    name="ideogram4",
    pipeline_classes=("Ideogram4Pipeline",),
    output_kind="image",
    latent_patch=2,
    default_width=2048,
    default_height=2048,
    default_steps=48,
    default_guidance_scale=7.0,
    block_lists=("layers",),
    build_call_kwargs=_call_kwargs,
    decode_latents=_decode_latents,
    call_defaults={"prompt_upsampling": False},
    check_prompt=_check_prompt,
)
