"""What the engine needs to know about a diffusers pipeline family, as data.

A family entry says which pipeline classes it covers, what it produces, its
defaults, and two small functions: how a validated job becomes pipeline keyword
arguments, and how mid-run latents become a preview image. The engine core never
branches on the family; it reads these entries.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal

from engine_service.jobs import denoising_steps

if TYPE_CHECKING:
    from collections.abc import Sequence

    import torch
    from diffusers import DiffusionPipeline

    from engine_service.jobs import JobSpec

#: What a pipeline generates. The engine serves ``"image"`` and ``"video"``; the others name what a
#: known-but-refused pipeline makes (an audio or protein DiT), for the support matrix.
OutputKind = Literal["image", "video", "audio", "protein structure"]

#: (pipeline, the jobs of one call) -> keyword arguments for ``pipeline.__call__``. The jobs share
#: their batch key (size, steps, guidance, ...); the builder lists one prompt per output, in job order.
CallKwargsBuilder = Callable[["DiffusionPipeline", "Sequence[JobSpec]"], dict[str, Any]]
#: (pipeline, latents as seen by callback_on_step_end, job) -> images in [0, 1], shape (N, H, W, 3)
#: (linear light for a family that ``outputs_hdr``); for a video family, one frame of each video
#: (``engine_service.models.video.video_preview``).
LatentDecoder = Callable[["DiffusionPipeline", "torch.Tensor", "JobSpec"], "torch.Tensor"]
#: (pipeline, prompt, the model's call defaults) -> why the model cannot take this prompt, or ``None``
#: when it can.
PromptCheck = Callable[["DiffusionPipeline", str, "Mapping[str, Any]"], "str | None"]
#: (prompt, how many input images the request sends per role) -> why the prompt does not fit those
#: images, or ``None`` when it does.
PromptImagesCheck = Callable[[str, "Mapping[str, int]"], "str | None"]
#: pipeline -> the only frame count it makes.
NativeFrames = Callable[["DiffusionPipeline"], int]
#: pipeline -> the only (width, height) it renders.
NativeSize = Callable[["DiffusionPipeline"], tuple[int, int]]
#: the roles of a request's input images (or videos), in request order -> why the model cannot lay them
#: out, or ``None`` when it can.
RoleCheck = Callable[["Sequence[str]"], "str | None"]
#: (pipeline, the first ``image`` input's width, its height, the model's call defaults) -> the (width,
#: height) in pixels the pipeline renders for that input.
InputSize = Callable[["DiffusionPipeline", int, int, "Mapping[str, Any]"], tuple[int, int]]
#: (pipeline, the input video's width, its height, the model's call defaults) -> the (width, height) in pixels
#: the pipeline renders for that video and the denoising loops it runs per output, or why it cannot take it.
VideoSizePlan = Callable[["DiffusionPipeline", int, int, "Mapping[str, Any]"], "tuple[int, int, int] | str"]
#: (pipeline, width, height) -> why the pipeline would not render this size as asked, or ``None`` when it would.
SizeCheck = Callable[["DiffusionPipeline", int, int], "str | None"]
#: pipeline -> how many control images a request must send (one per ControlNet of the pipeline).
ControlCount = Callable[["DiffusionPipeline"], int]
#: (frames asked for, the model's call defaults) -> (denoising loops the pipeline runs, frames it makes).
LoopPlan = Callable[[int, "Mapping[str, Any]"], tuple[int, int]]
#: the model's call defaults -> the frames of its input video that a pipeline continues from.
HistoryFrames = Callable[["Mapping[str, Any]"], int]
#: (num_inference_steps, strength) -> the denoising steps an image-to-image (or video-to-video) pipeline runs at
#: that strength.
StrengthSteps = Callable[[int, float], int]
#: (pipeline, num_inference_steps, denoising loops, the model's call defaults) -> the steps of each loop
#: the pipeline runs, in order.
LoopSteps = Callable[["DiffusionPipeline", int, int, "Mapping[str, Any]"], tuple[int, ...]]
#: an action string (``GenerateRequest.camera.action``) -> the frames a camera moving along it covers; raises
#: ValueError saying what is wrong in it.
CameraActions = Callable[[str], int]
#: the model's call defaults -> the denoising steps of the fixed sigma schedule the pipeline runs.
ScheduleSteps = Callable[["Mapping[str, Any]"], int]
#: what ``pipeline.__call__`` returned -> the call's decoded images (N, H, W, 3) or videos (N, F, H, W, 3).
OutputReader = Callable[[Any], Any]


@dataclasses.dataclass(frozen=True)
class FamilySpec:
    """One family of diffusers pipelines that share a transformer architecture."""

    name: str
    """Short family name shown to users, e.g. ``"flux"``."""
    pipeline_classes: tuple[str, ...]
    """diffusers pipeline class names (``model_index.json`` ``_class_name``) this entry serves."""
    output_kind: OutputKind
    """``"image"`` or ``"video"`` (``"audio"`` and ``"protein structure"`` only on refused entries)."""
    latent_patch: int
    """Pixels of one transformer token per VAE latent pixel: the spatial factor is VAE scale x this."""
    default_width: int
    """Default output width in pixels when the request leaves it unset."""
    default_height: int
    """Default output height in pixels."""
    default_steps: int
    """Default number of denoising steps."""
    default_guidance_scale: float
    """Default guidance scale."""
    block_lists: tuple[str, ...]
    """Attribute names of the transformer's repeated block lists, in execution order."""
    build_call_kwargs: CallKwargsBuilder
    """Maps the jobs of one call to ``pipeline.__call__`` keyword arguments (without generators or callbacks)."""
    decode_latents: LatentDecoder | None = None
    """Turns mid-run latents into images for previews; ``None`` = the family has no previews."""
    default_frames: int = 1
    """Frames of a default video; 1 for image families."""
    frame_stride: int = 1
    """Video frame counts must be ``k * frame_stride + 1`` (the VAE's temporal compression)."""
    min_frames: int = 1
    """The fewest frames the pipeline makes correctly (Kandinsky 5 image-to-video: 17); fewer are
    INVALID_ARGUMENT."""
    frame_counts: tuple[int, ...] | None = None
    """The only frame counts the pipeline makes, when it ignores other requests (ChronoEdit: 5);
    ``None`` = any count of the ``frame_stride`` rule. Other counts are INVALID_ARGUMENT."""
    native_frames: NativeFrames | None = None
    """For a video pipeline whose checkpoint makes one frame count only (Latte: the length of its
    temporal position embedding, ``video_length``): that count, read from the pipeline. It is the
    default frame count and any other is INVALID_ARGUMENT. ``None`` = the rules above."""
    schedule_steps: ScheduleSteps | None = None
    """For a distilled pipeline that runs a fixed sigma schedule and takes no ``num_inference_steps``
    (LTX-2 DFR: its ``sigmas``, 8 by default): the steps that schedule runs, read from the model's call
    defaults (a model may set its own ``sigmas``). They are the model's steps (ListModels' default
    steps; a model default ``steps`` other than them fails to load), and a request's
    ``num_inference_steps`` other than them is INVALID_ARGUMENT instead of a count the pipeline would
    not run. ``None`` = the pipeline runs the request's steps."""
    takes_guidance: bool = True
    """Whether the model takes a guidance scale. ``False`` for a distilled pipeline whose call has no
    guidance input at all (FLUX.2 Klein KV): a request that sets ``guidance_scale`` is INVALID_ARGUMENT
    rather than silently ignored."""
    takes_prompt: bool = True
    """Whether the pipeline takes a prompt. ``False`` for one without any text input (Kandinsky 6 SR
    upscales its input video): a request must then leave ``prompt`` empty (anything else is
    INVALID_ARGUMENT rather than silently ignored), and ListModels says ``refuses_prompt``."""
    uses_negative_prompt: bool = False
    """Whether the pipeline takes ``negative_prompt`` with the request's guidance."""
    input_roles: tuple[str, ...] = ()
    """Roles of the input images it accepts (``"image"``, ``"mask"``, ...); empty = text only."""
    required_roles: tuple[str, ...] = ()
    """Roles a request must send (a subset of ``input_roles``); a missing one is INVALID_ARGUMENT."""
    repeated_roles: tuple[str, ...] = ()
    """Roles a request may send several images of, in order (reference images of FLUX.2, Qwen-Image
    Edit-Plus, ...). Any other role but ``control`` (one image per ControlNet) sent twice is
    INVALID_ARGUMENT on the second: the pipeline would use the first alone."""
    video_only_roles: tuple[str, ...] = ()
    """Input image roles the pipeline reads only for a video of more than one latent frame (EasyAnimate
    Control's reference image fills the reference channels of the first latent frame only when others
    follow it). A request for at most ``frame_stride`` frames (one latent frame) that sends one is
    INVALID_ARGUMENT on that image's role instead of the image being dropped."""
    video_roles: tuple[str, ...] = ()
    """Roles of the input videos it accepts (``"video"``: the video a video-to-video pipeline transforms);
    empty = none, and a request that sends one is INVALID_ARGUMENT. Each role at most once. The server
    decodes a video to a tuple of PIL RGB frames (``engine_service.models.inputs.video_of``)."""
    required_video_roles: tuple[str, ...] = ()
    """Video roles a request must send (a subset of ``video_roles``); a missing one is INVALID_ARGUMENT."""
    frames_from_video: str | None = None
    """The video role whose frame count the output has (``"video"``: a video-to-video pipeline that takes
    no ``num_frames`` and makes as many frames as it is given); ``None`` = the request's. A request that
    leaves ``num_frames`` unset gets that video's frames cut to the largest count of the ``frame_stride``
    rule; one that sets it gets that many of the video's first frames, and more than the video holds is
    INVALID_ARGUMENT. The family's builder passes the video's frames as the server cut them
    (``num_frames`` of them)."""
    continues_video: str | None = None
    """The video role a pipeline continues (``"video"``: SkyReels-V2 diffusion forcing video-to-video): its
    output is that video's frames, resized to the request's size, followed by the ``num_frames`` frames it
    samples, so it holds the video's frame count plus ``num_frames``. ``None`` = the output holds
    ``num_frames`` frames."""
    history_frames: HistoryFrames | None = None
    """For a family that continues a video (``continues_video``): how many of the video's last frames the
    pipeline continues from (SkyReels-V2: ``overlap_history``), read from the model's call defaults. A
    video with fewer frames is INVALID_ARGUMENT naming it. ``None`` = any frame count."""
    aligned_video_roles: tuple[str, ...] = ()
    """Video roles whose frames go frame by frame with the ``frames_from_video`` video (Wan-Animate's face,
    background and mask videos beside its pose video): each must hold as many frames as that video (at
    least ``num_frames`` when the request sets them), and is cut as that video is. Another count is
    INVALID_ARGUMENT on the video's data instead of a pipeline that pads or drops frames of it."""
    check_video_roles: RoleCheck | None = None
    """Refuses input videos the pipeline cannot take together by their roles (INVALID_ARGUMENT on
    ``input_videos`` with the reason), e.g. a mask video without the background video it masks;
    ``None`` = any that ``video_roles`` and ``required_video_roles`` allow."""
    min_input_side: int = 0
    """Smallest width or height, in pixels, the pipeline accepts for an input image (0 = any); a smaller
    image is INVALID_ARGUMENT naming it instead of a pipeline failure."""
    max_input_aspect: float = 0.0
    """Largest ratio of an input image's longer side to its shorter side the pipeline accepts (0 = any);
    a more extreme image is INVALID_ARGUMENT naming it instead of a pipeline failure."""
    call_defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """Extra fixed keyword arguments for ``pipeline.__call__`` (a model may override them)."""
    request_call_arguments: tuple[str, ...] = ()
    """Pipeline call arguments that ``build_call_kwargs`` fills from the request on some or every call,
    beyond those every family's calls get (``registry.ENGINE_CALL_ARGUMENTS``), e.g. Sana-WM's ``action``,
    ``c2w`` and ``intrinsics``: a model's ``call_defaults`` may not set them (the request's value would
    silently win, or the call would get both of two exclusive arguments)."""
    context_parallel: bool = False
    """Whether the family has a context-parallel plan (Ulysses / Ring)."""
    tensor_parallel: bool = False
    """Whether the family has a tensor-parallel plan."""
    prepare_pipeline: Callable[[DiffusionPipeline], None] | None = None
    """Called once on a loaded pipeline before it serves (e.g. to switch on a VAE mode the
    pipeline cannot decode without); ``None`` = nothing to do. Raises
    :class:`engine_service.errors.ModelLoadError` to refuse a checkpoint it cannot serve."""
    check_prompt: PromptCheck | None = None
    """Refuses prompts the model cannot take (INVALID_ARGUMENT on ``prompt`` with the reason);
    ``None`` = any prompt."""
    check_prompt_images: PromptImagesCheck | None = None
    """Refuses a prompt that does not fit the input images the request sends, for a pipeline whose
    prompt names them (OmniGen's ``<img><|image_1|></img>`` tags): INVALID_ARGUMENT on ``prompt`` with
    the reason, instead of a pipeline failure. ``None`` = any prompt goes with any images."""
    warmup_prompt: str = "warm-up"
    """The prompt of the warm-up request (it must pass ``check_prompt``)."""
    native_size: NativeSize | None = None
    """For pipelines that render one size only (no width/height arguments): that size, read from the
    pipeline. It is the default size and any other is INVALID_ARGUMENT. ``None`` = any size."""
    default_size: NativeSize | None = None
    """The default (width, height) read from the loaded pipeline, for a family whose sizes depend on
    the checkpoint (resolution buckets); it replaces ``default_width`` and ``default_height``, and a
    model's own defaults override it. ``None`` = the family's defaults."""
    check_size: SizeCheck | None = None
    """Refuses sizes the pipeline would not render as asked, e.g. a pipeline that snaps its output to
    resolution buckets (INVALID_ARGUMENT on ``width`` with the reason); ``None`` = any size of the
    spatial factor. The family's default size must pass it."""
    size_from_input: InputSize | None = None
    """For a pipeline that takes no width or height and renders a size it derives from its input image
    (LongCat-Image Edit, Qwen-Image Edit inpainting: about 1024x1024 in the image's aspect): that size
    for the request's first ``image``. A request without width and height gets it; one whose width or
    height differs, or whose image gives a size beyond the engine's limits, is INVALID_ARGUMENT on
    ``width`` naming it. ListModels reports default width and height 0. ``None`` = the request's size
    is rendered."""
    size_from_video: VideoSizePlan | None = None
    """For a pipeline that takes no width or height and renders a size it derives from its input video, in
    denoising loops whose count follows that size (Kandinsky 6 SR: the video's size x ``resolution_scale``,
    one loop per batch of tiles): that size and the loops per output for the video of role
    ``frames_from_video``, or why the pipeline cannot take a video of its size (INVALID_ARGUMENT naming
    it). Applied once the video decodes: a request's width or height that differs, or a size beyond the
    engine's limits, is INVALID_ARGUMENT on ``width``; the job runs loops x ``num_outputs`` loops (the
    pipeline samples its outputs one after another), each of its steps, and progress counts them all.
    The model's default width and height are the size of its warm-up video; ListModels reports 0.
    ``None`` = the request's size is rendered."""
    generator_per_output: bool = True
    """Whether ``__call__`` takes a list of generators, one per output. Without it the pipeline gets
    the job's one generator, and its jobs never join a batch (an output must not depend on its batch).
    Also ``False`` for a pipeline whose outputs depend on the other prompts of its call (Kandinsky 5
    pads them to the longest and attends to the padding)."""
    seeds_process_rng: bool = False
    """Whether the pipeline also draws noise from torch's process-wide random state, not only from the
    request's generator (e.g. ``vae.encode(image).latent_dist.sample()`` without a generator). The
    engine then seeds that state from the job's seed for the call, restoring it afterwards, and the
    family's jobs never join a batch: the same request and seed give the same output."""
    step_end_callback: bool = True
    """Whether ``__call__`` takes ``callback_on_step_end``. Without it the engine follows the steps
    through the scheduler's ``step`` (progress events, cancellation, per-step cache outcomes)."""
    default_strength: float | None = None
    """For image-to-image and inpainting pipelines: the ``strength`` a request gets when it sends none
    (the pipeline runs about ``strength x steps`` steps). ``None`` = the pipeline takes no strength, and
    a request that sends one is INVALID_ARGUMENT."""
    strength_steps: StrengthSteps | None = None
    """For an image-to-image or inpainting pipeline that cuts its schedule otherwise than diffusers'
    ``get_timesteps`` (``steps - int(steps - steps x strength)``): the steps it runs for
    ``(num_inference_steps, strength)`` (aMUSEd: ``int(steps x strength)``). Progress totals,
    previews, the cache's step mask and its per-step lookups count these (:meth:`steps_run`); a
    strength at which the pipeline would run no step is INVALID_ARGUMENT. ``None`` = diffusers' count."""
    full_strength_problem: str | None = None
    """Why the pipeline mishandles ``strength`` 1, for one that does (aMUSEd's image-to-image noises
    its input for the last timestep of its schedule at 1, masking no token): a request at strength 1
    is INVALID_ARGUMENT on ``strength`` with this reason. ``None`` = strength 1 runs as it should."""
    controlnet_pipeline: str | None = None
    """The diffusers pipeline class that runs this family's model with ControlNets attached
    (``serve --controlnet NAME=PATH:MODEL``); it must be a served family. ``None`` = no ControlNet
    can be attached (a directory that already holds a ``controlnet`` component is its own family)."""
    control_count: ControlCount | None = None
    """For ControlNet pipelines: how many ``"control"`` images a request must send, each with its own
    ``controlnet_conditioning_scale``. ``None`` = the pipeline has no ControlNet."""
    max_controlnets: int | None = None
    """For ControlNet pipelines whose multi-ControlNet model runs fewer nets than it is given: the most
    ControlNets one model may attach (``serve --controlnet NAME=PATH,PATH:MODEL``); more fail to load
    naming them. ``None`` = any number (or one, for a pipeline without a multi-ControlNet model)."""
    max_outputs: int | None = None
    """The most outputs one request may ask for, for a pipeline that makes fewer per call than its
    prompt list asks (Cosmos 3 makes one sample per call): more is INVALID_ARGUMENT on
    ``num_outputs``. ``None`` = the server's limit."""
    read_output: OutputReader | None = None
    """Reads the decoded outputs from what the pipeline returned, for a pipeline that does not return
    them as ``images`` (image) or ``frames`` (video) with a leading output axis; ``None`` = those."""
    denoising_loops: LoopPlan | None = None
    """For a pipeline that runs several whole denoising loops per call, each with its scheduler's
    timesteps set anew (Helios samples a video chunk by chunk): how many loops a request runs and how
    many frames they make. Progress counts the steps of every loop (``total_steps`` = steps x loops),
    and the cache starts a fresh run at each loop. A frame count the loops do not make is
    INVALID_ARGUMENT naming the count they make. For a family whose frames follow an input video
    (``frames_from_video``) and a request that leaves ``num_frames`` unset, the loops are counted from
    that video's frames once it is decoded (a video whose frames they do not make is INVALID_ARGUMENT
    on its data). ``None`` = one loop."""
    loops_on_scheduler_copies: bool = False
    """Whether the pipeline's denoising loops set the timesteps of fresh deep copies of its scheduler and
    never again its own (SkyReels-V2 diffusion forcing video-to-video: one copy per latent frame, set anew
    for every window). The cache then starts each loop's run at the first copy set after a step
    (:func:`engine_service.cache.start_runs_on_copies`); without it every loop after the first would
    continue the first one's run. ``False`` = each loop sets the scheduler's own timesteps."""
    loop_steps: LoopSteps | None = None
    """For a pipeline whose denoising loops do not each run the request's ``num_inference_steps``
    (LTX long multi-prompt: ``num_inference_steps - 1`` per window, as it steps ``timesteps[:-1]``):
    the steps of every loop the request runs, in order, from its steps and the loops
    ``denoising_loops`` counts (chunks or windows; a family may run several loops per chunk).
    Progress totals are their sum, and each loop is a run of the cache with its own step count
    (step mask, warm-up, last step). A request that leaves a loop without a step is
    INVALID_ARGUMENT on ``num_inference_steps``. ``None`` = each loop runs the request's steps
    (with a strength, the part of its schedule diffusers runs)."""
    takes_task_prompt: bool = False
    """Whether the pipeline takes a task prompt beside the prompt (VisualCloze: what every row of its
    in-context grid does; the prompt describes the target). A request must then send ``task_prompt``;
    any other model refuses one (INVALID_ARGUMENT on ``task_prompt``)."""
    check_roles: RoleCheck | None = None
    """Refuses input images the pipeline cannot lay out by their roles and count (INVALID_ARGUMENT on
    ``input_images`` with the reason), e.g. in-context example rows that are not whole; ``None`` = any
    that ``input_roles``, ``required_roles`` and ``repeated_roles`` allow."""
    default_layers: int | None = None
    """For a pipeline that splits its input image into RGBA layers (Qwen-Image Layered): the ``layers`` a
    request gets when it sends none. Each output of the request is then ``layers`` images, in the
    pipeline's order, and ``read_output`` returns them as (N, layers, H, W, 4). ``None`` = the pipeline
    takes no layers, and a request that sends them is INVALID_ARGUMENT."""
    max_layers: int = 0
    """The most ``layers`` one request may ask for (more is INVALID_ARGUMENT on ``layers``); set with
    ``default_layers``."""
    outputs_alpha: bool = False
    """Whether the pipeline's outputs keep their alpha channel (RGBA) and its input images are read with
    theirs (an opaque image gets an opaque one). PNG and WebP keep it; JPEG, which has none, is
    INVALID_ARGUMENT on ``output_format``. ``False`` = RGB: an RGBA output (a VAE that decodes alpha,
    as Qwen-Image 2.1's) is composited over white and input images are read as RGB."""
    outputs_hdr: bool = False
    """Whether the pipeline decodes high-dynamic-range video: linear light in [0, inf) (LTX-2 HDR's inverse
    LogC3 transform), not frames in [0, 1]. Its decoded frames stay float up to the encoder:
    ``exr_frames`` returns them as they are (half-float OpenEXR), while MP4 and PNG frames are their 8-bit
    SDR rendering (:func:`engine_service.runtime.encoding.sdr_rendering`); its ``decode_latents``
    returns linear light too. ``False`` = frames in [0, 1], and ``exr_frames`` is INVALID_ARGUMENT on
    ``output_format``."""
    strength_on_last_loop: bool = False
    """For a pipeline of several denoising loops that takes a strength: whether the strength cuts only
    its last loop (VisualCloze's upsampling pass after a whole generation pass), the others running
    every step. A job's ``loop_steps`` then say so (``num_inference_steps`` per loop, the last the part
    of its schedule the strength leaves), as ``loop_steps`` would. ``False`` = it cuts every loop."""
    camera_actions: CameraActions | None = None
    """For a camera-controlled world model (Sana-WM), whose every call moves the camera along a
    trajectory: the frames an action string covers by the pipeline's own grammar (raising ValueError
    for one it would refuse). Set = every request must send a camera trajectory (``camera``: an action
    string or one pose per frame, with intrinsics) covering exactly its frames, and ``job.camera``
    reaches the family's builder; ``None`` = the pipeline takes none, and a request that sends one is
    INVALID_ARGUMENT on ``camera``."""
    unsupported_reason: str | None = None
    """Set for a family the registry knows but does not serve: loading it fails with this reason,
    and the support matrix shows it. ``None`` = supported, which requires a tiny test case."""

    @property
    def takes_camera(self) -> bool:
        """Whether every request must send a camera trajectory (:attr:`camera_actions`)."""
        return self.camera_actions is not None

    def steps_run(self, num_inference_steps: int, strength: float | None) -> int:
        """Denoising steps one loop of the pipeline runs for ``num_inference_steps`` at ``strength``
        (``None`` = the pipeline takes none): :attr:`strength_steps`, or diffusers' count
        (:func:`engine_service.jobs.denoising_steps`)."""
        if strength is not None and self.strength_steps is not None:
            return self.strength_steps(num_inference_steps, strength)
        return denoising_steps(num_inference_steps, strength)

    @property
    def parameters(self) -> tuple[str, ...]:
        """Request parameters beyond the common ones that the family takes (``ModelInfo.parameters``)."""
        found = []
        if self.default_strength is not None:
            found.append("strength")
        if self.control_count is not None:
            found.append("controlnet_conditioning_scale")
        if self.default_layers is not None:
            found.append("layers")
        if self.takes_task_prompt:
            found.append("task_prompt")
        return tuple(found)
