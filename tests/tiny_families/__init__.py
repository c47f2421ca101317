"""Tiny offline pipelines, one module per model family, each listing the cases tests/test_families.py runs.

A module defines ``CASES``: a list of TinyCase. Every pipeline class that a
supported family entry (engine_service/models/families) claims must be built by
one case here; tests/test_families.py checks that, so a family is never claimed
without being run.
"""

from __future__ import annotations

import dataclasses
import importlib
import io
import pkgutil
from collections.abc import Callable, Mapping
from typing import Any

import torch
from PIL import Image

from client_sdk import CameraTrajectory, InputImage, InputVideo


@dataclasses.dataclass(frozen=True)
class TinyCase:
    """One tiny pipeline and how to request from it."""

    name: str
    """Test id and served model name, e.g. ``"flux-fill"``."""
    pipeline_class: str
    """The diffusers pipeline class ``build`` returns."""
    build: Callable[[], Any]
    """Builds the pipeline with fixed-seed random weights, every module in eval mode."""
    defaults: Mapping[str, Any]
    """Model defaults for ``model_from_pipeline``: width, height, steps, frames, call_defaults."""
    inputs: tuple[tuple[str, tuple[int, int]], ...] = ()
    """Input images a request sends, as ``(role, (width, height))``."""
    videos: tuple[tuple[str, tuple[int, int], int], ...] = ()
    """Input videos a request sends, as ``(role, (width, height), frames)``."""
    prompt: str = "a red circle"
    """The prompt requests send (OmniGen's names each reference image it sends: ``<img><|image_1|></img>``)."""
    strength: float | None = None
    """The ``strength`` a request sends (``None`` = the family's default)."""
    experts: int = 1
    """Transformers that take turns over the steps (Wan 2.2: 2). Each caches in its own context and
    warms up on the first step it runs, so with threshold 1 the run caches ``steps - experts`` steps."""
    loops: int = 1
    """Whole denoising loops a request runs (Helios: one per chunk of the video; Helios Pyramid: one per
    stage of each chunk), each of the model's steps (or ``loop_steps``) and each a fresh run of the cache:
    with threshold 1 the run caches ``loops x (steps - experts)`` steps."""
    loop_steps: int | None = None
    """Steps each loop runs when they are not the model's steps (LTX long: one fewer per window), so the
    run has ``loops x loop_steps`` steps; ``None`` = the model's steps (or its strength's share of them)."""
    preview_frame: int | None = None
    """The video frame that a preview of the last step's latents shows, for a pipeline that samples its video
    in chunks (the first frame of the last chunk); ``None`` = the first frame, or the last for a family that
    takes input images."""
    task_prompt: str | None = None
    """The ``task_prompt`` a request sends (in-context models: VisualCloze); ``None`` = none."""
    camera: CameraTrajectory | None = None
    """The camera trajectory a request sends (camera-controlled world models: Sana-WM); ``None`` = none."""
    other_camera: CameraTrajectory | None = None
    """Another trajectory over as many frames, which must change the output; with ``camera``."""
    reshaped_steps: int = 0
    """Steps after the warm-up whose block input changes shape (Qwen-Image 2.1 runs only the target image's
    tokens once its text keys and values are kept): the cache computes them, so with threshold 1 the run
    caches that many steps fewer."""


def scale_weights(*modules: Any, factor: float) -> None:
    """Multiply every parameter of ``modules`` by ``factor``, in place. Default-initialized tiny blocks
    barely move the pixels; scaled up, another prompt, guidance scale or input image changes the image
    by many uint8 levels, so tests can see them."""
    import torch

    with torch.no_grad():
        for module in modules:
            for param in module.parameters():
                param.mul_(factor)


def louder_vae(vae: torch.nn.Module, gain: float = 2.0) -> torch.nn.Module:
    """Multiplies a Wan-style VAE's 3-D convolution weights by ``gain``. At init scale its few-channel
    layers decode every latent to nearly the same picture (a change of guidance, cache or input image
    would not reach a uint8 pixel); at 2x they pass it on without saturating."""
    with torch.no_grad():
        for weight in vae.parameters():
            if weight.dim() == 5:
                weight.mul_(gain)
    return vae


def tiny_qwen3vl_config(
    tokenizer: Any, *, layers: int = 2, width: int = 16, max_positions: int = 1024, **vision: Any
) -> Any:
    """A Qwen3-VL config of 2-head, 8-wide layers (``layers`` text layers of ``width``) for ``tokenizer``
    (its vision markers become the config's token ids); ``vision`` adds or overrides vision settings
    on a one-block, 16-wide vision tower whose output is ``width`` wide."""
    from transformers import Qwen3VLConfig

    token = tokenizer.convert_tokens_to_ids
    return Qwen3VLConfig(
        text_config={
            "hidden_size": width,
            "intermediate_size": 16,
            "num_hidden_layers": layers,
            "num_attention_heads": 2,
            "num_key_value_heads": 2,
            "head_dim": 8,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 1000000.0,
                "mrope_section": [1, 1, 2],
                "mrope_interleaved": True,
            },
            "vocab_size": len(tokenizer),
            "max_position_embeddings": max_positions,
        },
        vision_config={
            "depth": 1,
            "hidden_size": 16,
            "intermediate_size": 16,
            "num_heads": 2,
            "out_hidden_size": width,
            **vision,
        },
        image_token_id=token("<|image_pad|>"),
        video_token_id=token("<|video_pad|>"),
        vision_start_token_id=token("<|vision_start|>"),
        vision_end_token_id=token("<|vision_end|>"),
    )


def all_cases() -> list[TinyCase]:
    """Every case of every module in this package, in module order."""
    cases: list[TinyCase] = []
    for module_info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        cases.extend(module.CASES)
    return cases


def input_image(role: str, size: tuple[int, int]) -> InputImage:
    """A deterministic test picture as a request sends it (PNG); a mask is white on its right half."""
    width, height = size
    if role == "mask":
        image = Image.new("L", size, 0)
        image.paste(255, (width // 2, 0, width, height))
    else:
        image = Image.new("RGB", size, (40, 90, 200))
        image.paste((230, 200, 30), (width // 4, height // 4, 3 * width // 4, 3 * height // 4))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return InputImage(data=buffer.getvalue(), role=role)


def video_frames(size: tuple[int, int], frames: int, *, other: bool = False) -> list[Image.Image]:
    """A deterministic test video's frames: a square that moves right frame by frame over a plain
    ground (``other``: other colours, the square moving down)."""
    width, height = size
    ground, square = ((200, 40, 90), (20, 220, 120)) if other else ((40, 90, 200), (230, 200, 30))
    pictures = []
    for index in range(frames):
        image = Image.new("RGB", size, ground)
        shift = index * max(width // (2 * frames), 1)
        box = (shift, height // 4, shift + width // 2, 3 * height // 4)
        if other:
            box = (width // 4, shift, 3 * width // 4, shift + height // 2)
        image.paste(square, box)
        pictures.append(image)
    return pictures


def input_video(role: str, size: tuple[int, int], frames: int, *, other: bool = False) -> InputVideo:
    """A deterministic test video as a request sends it (lossless animated PNG; see ``video_frames``)."""
    return InputVideo.from_frames(video_frames(size, frames, other=other), role)
