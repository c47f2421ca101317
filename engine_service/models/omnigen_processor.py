"""OmniGen's multimodal processor without torchvision.

``OmniGenPipeline.__init__`` builds an ``OmniGenMultiModalProcessor``, which its module
imports only when torchvision is installed, and that processor builds its image transform
from torchvision: ``transforms.Compose([Lambda(crop_image), ToTensor(), Normalize(0.5, 0.5)])``.
ditserve does not install torchvision (no CPU torchvision build fits its torch pin), so the
pipeline cannot even be constructed.

:class:`OmniGenProcessorWithoutTorchvision` is the real processor with that transform written
out in torch: the same ``crop_image`` (center crop to multiples of 16, at most
``max_image_size`` on a side), then what ``ToTensor`` does with an 8-bit PIL image (HWC ->
CHW, ``/ 255`` in the default float dtype), then ``Normalize(mean=0.5, std=0.5)`` in place
(``(x - 0.5) / 0.5``, values in [-1, 1]). Prompt parsing, the image tags and the collator
are the real class's code. :func:`provide_omnigen_processor` puts it where the pipeline
module looks for the processor, so the real ``OmniGenPipeline`` class constructs and loads
(``from_pretrained``) unchanged. Checked against diffusers 0.42.1 and torchvision 0.28's
``ToTensor`` and ``Normalize``.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch
from diffusers.pipelines.omnigen.processor_omnigen import OmniGenCollator, OmniGenMultiModalProcessor, crop_image


def image_tensor(image: Any, max_image_size: int) -> torch.Tensor:
    """An input image as OmniGen's processor hands it to the VAE.

    ``image``: a PIL image of an 8-bit mode (the engine sends RGB). Returns a (C, H, W) tensor of
    the default float dtype in [-1, 1], H and W the image's size after ``crop_image`` (multiples of
    16, at most ``max_image_size``). Equal to torchvision's
    ``Normalize([0.5] * 3, [0.5] * 3, inplace=True)(ToTensor()(crop_image(image, max_image_size)))``.
    """
    array = np.array(crop_image(image, max_image_size), dtype=np.uint8, copy=True)
    if array.ndim == 2:  # a one-channel mode: ToTensor keeps its single channel
        array = array[:, :, None]
    pixels = torch.from_numpy(array).permute(2, 0, 1).contiguous().to(torch.get_default_dtype()).div(255)
    return pixels.sub_(0.5).div_(0.5)


class OmniGenProcessorWithoutTorchvision(OmniGenMultiModalProcessor):
    """``OmniGenMultiModalProcessor`` whose image transform is :func:`image_tensor` instead of torchvision's."""

    def __init__(self, text_tokenizer: Any, max_image_size: int = 1024):
        self.text_tokenizer = text_tokenizer
        self.collator = OmniGenCollator()
        self.reset_max_image_size(max_image_size)

    def reset_max_image_size(self, max_image_size: int) -> None:
        self.max_image_size = max_image_size
        self.image_transform = functools.partial(image_tensor, max_image_size=max_image_size)


def provide_omnigen_processor() -> None:
    """Make ``OmniGenPipeline`` constructible without torchvision: where its module did not import the
    real processor (torchvision missing), give it :class:`OmniGenProcessorWithoutTorchvision` under the
    real name. Idempotent; with torchvision installed it changes nothing."""
    from diffusers.pipelines.omnigen import pipeline_omnigen

    if not hasattr(pipeline_omnigen, "OmniGenMultiModalProcessor"):
        pipeline_omnigen.OmniGenMultiModalProcessor = OmniGenProcessorWithoutTorchvision


__all__ = ["OmniGenProcessorWithoutTorchvision", "image_tensor", "provide_omnigen_processor"]
