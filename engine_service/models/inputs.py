"""Input images of a job, by role, for a family's call-kwargs builder.

The server has already decoded them (PIL RGB) and checked their roles against
the family's ``input_roles`` and ``required_roles``; a job with input images
runs alone, so a builder reads them from its single job.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

    from engine_service.jobs import JobSpec


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


__all__ = ["control_kwargs", "controlnet_count", "image_of", "images_of"]
