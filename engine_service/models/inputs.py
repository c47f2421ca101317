"""Input images of a job, by role, for a family's call-kwargs builder.

The server has already decoded them (PIL RGB) and checked their roles against
the family's ``input_roles`` and ``required_roles``; a job with input images
runs alone, so a builder reads them from its single job.
"""

from __future__ import annotations

import inspect
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from engine_service.jobs import JobSpec
    from engine_service.models.spec import InputSize


def images_of(jobs: Sequence[JobSpec], role: str) -> list[Any]:
    """The images sent with ``role``, in request order (empty when none was sent)."""
    return [image for job in jobs for r, image in job.input_images if r == role]


def image_of(jobs: Sequence[JobSpec], role: str) -> Any | None:
    """The first image sent with ``role``, or ``None``."""
    found = images_of(jobs, role)
    return found[0] if found else None


def controlnet_count(pipe: Any) -> int:
    """ControlNets of a pipeline: the nets of a multi-ControlNet model (``nets``), else one."""
    nets = getattr(pipe.controlnet, "nets", None)
    return len(nets) if nets is not None else 1


def control_kwargs(pipe: Any, jobs: Sequence[JobSpec]) -> dict[str, Any]:
    """``control_image`` and ``controlnet_conditioning_scale`` for a ControlNet pipeline: one image
    and scale for a single ControlNet, lists in ControlNet order for a multi-ControlNet model."""
    images = images_of(jobs, "control")
    scales = list(jobs[0].controlnet_conditioning_scales)
    if getattr(pipe.controlnet, "nets", None) is None:
        return {"control_image": images[0], "controlnet_conditioning_scale": scales[0]}
    return {"control_image": images, "controlnet_conditioning_scale": scales}


def area_in_input_aspect(area: int) -> InputSize:
    """The size rule of a diffusers editor that renders about ``area`` pixels in its input image's aspect
    (a ``FamilySpec.size_from_input``).

    Such a pipeline calls its own module's ``calculate_dimensions(area, width / height)`` (its first two
    values: width, height in pixels, rounded to a multiple of 16 or 32 by the module's rule) and its
    latents keep whole 2x2 patches, so the decoded image is that size floored to a multiple of
    ``2 x vae_scale_factor``. ``area`` is the literal the pipeline's ``__call__`` passes (1024 x 1024 in
    diffusers 0.42.1's LongCat-Image Edit and Qwen-Image Edit inpainting).
    """

    def size(pipe: Any, width: int, height: int, call_defaults: Mapping[str, Any]) -> tuple[int, int]:
        return _rendered(pipe, area, width, height)

    return size


def resolution_in_input_aspect(pipe: Any, width: int, height: int, call_defaults: Mapping[str, Any]) -> tuple[int, int]:
    """The size rule (a ``FamilySpec.size_from_input``) of a diffusers pipeline that renders about
    ``resolution`` x ``resolution`` pixels in its input image's aspect, ``resolution`` being its call
    argument (Qwen-Image Layered: 640 by default, or 1024), read from the model's call defaults or else
    the signature's default; sides as :func:`area_in_input_aspect`."""
    resolution = call_defaults.get("resolution")
    if resolution is None:
        resolution = inspect.signature(type(pipe).__call__).parameters["resolution"].default
    return _rendered(pipe, resolution * resolution, width, height)


def _rendered(pipe: Any, area: int, width: int, height: int) -> tuple[int, int]:
    rendered = sys.modules[type(pipe).__module__].calculate_dimensions(area, width / height)
    step = 2 * pipe.vae_scale_factor
    return rendered[0] // step * step, rendered[1] // step * step


__all__ = [
    "area_in_input_aspect",
    "control_kwargs",
    "controlnet_count",
    "image_of",
    "images_of",
    "resolution_in_input_aspect",
]
