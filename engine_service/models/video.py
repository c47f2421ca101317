"""Pipeline keyword arguments shared by the video families.

Most diffusers video pipelines take the same core arguments: one prompt (and
negative prompt) per output, size, frame count, steps, guidance, and
``num_videos_per_prompt``. A family entry builds its call-kwargs function from
:func:`video_call_kwargs` and names what differs: whether the pipeline takes a
negative prompt, which keyword receives the input image, and which one the frame
rate.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine_service.models.inputs import image_of

if TYPE_CHECKING:
    from collections.abc import Sequence

    from diffusers import DiffusionPipeline

    from engine_service.models.spec import CallKwargsBuilder
    from engine_service.runtime.job import JobSpec


def video_call_kwargs(
    *,
    negative_prompt: bool = True,
    images: dict[str, str] | None = None,
    fps: str | None = None,
    guidance: str = "guidance_scale",
) -> CallKwargsBuilder:
    """A call-kwargs builder for a video pipeline.

    ``negative_prompt``: the pipeline takes ``negative_prompt``. ``images``: input role ->
    pipeline keyword (``{"image": "image"}`` for image-to-video). ``fps``: the keyword that takes
    the request's frame rate, if the pipeline conditions on it. ``guidance``: the keyword that
    takes the request's guidance scale.
    """

    def build(pipe: DiffusionPipeline, jobs: Sequence[JobSpec]) -> dict[str, Any]:
        first = jobs[0]  # the batch key makes size, frames, steps and guidance equal for every job
        kwargs: dict[str, Any] = {
            "prompt": [job.prompt for job in jobs for _ in range(job.num_outputs)],
            "width": first.width,
            "height": first.height,
            "num_frames": first.num_frames,
            "num_inference_steps": first.num_inference_steps,
            guidance: first.guidance_scale,
            "num_videos_per_prompt": 1,
        }
        if negative_prompt:
            kwargs["negative_prompt"] = [job.negative_prompt for job in jobs for _ in range(job.num_outputs)]
        for role, keyword in (images or {}).items():
            image = image_of(jobs, role)
            if image is not None:
                kwargs[keyword] = image
        if fps is not None:
            kwargs[fps] = first.fps
        return kwargs

    return build


__all__ = ["video_call_kwargs"]
