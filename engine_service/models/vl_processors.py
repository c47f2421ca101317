"""Qwen-VL processors without their video processor, for hosts without torchvision.

Qwen-Image's editors, Qwen-Image 2.1, Nucleus-MoE, Bria Fibo and JoyImage Edit Plus (``processor``), LongCat-Image
(``text_processor``) and Kandinsky 5/6 (``tokenizer``) take a Qwen-VL processor as a pipeline
component: ``Qwen2VLProcessor``, ``Qwen2_5_VLProcessor`` or ``Qwen3VLProcessor``. In
transformers 5.24 these processors always build a video processor too, and every Qwen-VL video
processor requires torchvision, so ``from_pretrained`` of such a processor raises on a host
without torchvision, which ditserve does not install (no CPU torchvision build fits its torch
pin).

The classes here are the real processors with the video processor dropped: their ``__init__``
takes no ``video_processor``, so ``ProcessorMixin`` treats the image processor and the
tokenizer as their only parts, and ``from_pretrained`` loads exactly those (the tokenizer, the
image processor from ``preprocessor_config.json`` or, as transformers 5 saves it,
``processor_config.json``, in its PIL backend when torchvision is missing, and the chat
template) as the real class would. What is dropped: video inputs
(``videos=``), which no diffusers pipeline passes; text and image processing is the real
class's code. Checked against transformers 5.24.0 and diffusers 0.42.1.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Mapping
from typing import Any

from transformers import Qwen2_5_VLProcessor, Qwen2VLProcessor, Qwen3VLProcessor
from transformers.processing_utils import ProcessorMixin
from transformers.utils import is_torchvision_available


class _WithoutVideo:
    """Mixin placed before a Qwen-VL processor class: its ``__init__`` signature lacks
    ``video_processor``, so ``ProcessorMixin.get_attributes()`` yields ``image_processor`` and
    ``tokenizer`` only (what ``from_pretrained``, ``save_pretrained`` and ``__call__`` use)."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        # The real ``__init__`` sets the image/video/vision token ids, then hands its three parts to
        # ``ProcessorMixin.__init__``, which pairs them with this class's two attributes: the
        # missing video processor (``None``) is left out.
        super().__init__(image_processor, tokenizer, None, chat_template=chat_template)


class ImageOnlyQwen2VLProcessor(_WithoutVideo, Qwen2VLProcessor):
    """``Qwen2VLProcessor`` (Qwen-Image's editors, LongCat-Image) without its video processor."""


class ImageOnlyQwen2_5_VLProcessor(_WithoutVideo, Qwen2_5_VLProcessor):  # noqa: N801 (transformers' name)
    """``Qwen2_5_VLProcessor`` (Kandinsky 5 and 6) without its video processor."""


class ImageOnlyQwen3VLProcessor(_WithoutVideo, Qwen3VLProcessor):
    """``Qwen3VLProcessor`` (Qwen-Image 2.1, Nucleus-MoE, Bria Fibo, JoyImage Edit Plus) without its video processor."""


#: The processor class a ``model_index.json`` names -> its image-only stand-in.
IMAGE_ONLY_PROCESSORS: Mapping[str, type[ProcessorMixin]] = {
    "Qwen2VLProcessor": ImageOnlyQwen2VLProcessor,
    "Qwen2_5_VLProcessor": ImageOnlyQwen2_5_VLProcessor,
    "Qwen3VLProcessor": ImageOnlyQwen3VLProcessor,
}


def image_only_processors(directory: str | pathlib.Path, index: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The components of the pipeline directory ``directory`` to load image-only, loaded.

    A component is loaded here when ``model_index.json`` (``index``, read from ``directory`` when
    not given) names one of :data:`IMAGE_ONLY_PROCESSORS` from ``transformers`` and torchvision is
    missing; the result maps component name -> processor, to pass to
    ``DiffusionPipeline.from_pretrained(directory, **result)``. With torchvision installed it is
    empty: the real class loads, video processor included. Nothing is fetched from a hub
    (``local_files_only``). Raises what ``ProcessorMixin.from_pretrained`` raises for a broken
    component folder (``OSError``, ``ValueError``)."""
    if is_torchvision_available():
        return {}
    directory = pathlib.Path(directory)
    if index is None:
        index = json.loads((directory / "model_index.json").read_text())
    loaded = {}
    for component, entry in index.items():
        if component.startswith("_") or not isinstance(entry, list) or len(entry) != 2:
            continue
        library, class_name = entry
        stand_in = IMAGE_ONLY_PROCESSORS.get(class_name) if library == "transformers" else None
        if stand_in is not None:
            loaded[component] = stand_in.from_pretrained(str(directory / component), local_files_only=True)
    return loaded
