from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class OutputFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OUTPUT_FORMAT_UNSPECIFIED: _ClassVar[OutputFormat]
    OUTPUT_FORMAT_PNG: _ClassVar[OutputFormat]
    OUTPUT_FORMAT_JPEG: _ClassVar[OutputFormat]
    OUTPUT_FORMAT_WEBP: _ClassVar[OutputFormat]
    OUTPUT_FORMAT_MP4: _ClassVar[OutputFormat]
    OUTPUT_FORMAT_PNG_FRAMES: _ClassVar[OutputFormat]
OUTPUT_FORMAT_UNSPECIFIED: OutputFormat
OUTPUT_FORMAT_PNG: OutputFormat
OUTPUT_FORMAT_JPEG: OutputFormat
OUTPUT_FORMAT_WEBP: OutputFormat
OUTPUT_FORMAT_MP4: OutputFormat
OUTPUT_FORMAT_PNG_FRAMES: OutputFormat

class CachePolicy(_message.Message):
    __slots__ = ("preset", "fn_compute_blocks", "bn_compute_blocks", "residual_diff_threshold", "max_warmup_steps", "warmup_interval", "max_cached_steps", "max_continuous_cached_steps", "enable_separate_cfg", "steps_computation_mask", "steps_computation_policy", "taylorseer_order", "calibrator", "max_accumulated_residual_diff_threshold", "cfg_diff_compute_separate", "cache_type", "non_prune_block_ids", "enable_dynamic_prune_threshold", "teacache_coefficients", "magcache_ratios", "magcache_retention_ratio")
    PRESET_FIELD_NUMBER: _ClassVar[int]
    FN_COMPUTE_BLOCKS_FIELD_NUMBER: _ClassVar[int]
    BN_COMPUTE_BLOCKS_FIELD_NUMBER: _ClassVar[int]
    RESIDUAL_DIFF_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    MAX_WARMUP_STEPS_FIELD_NUMBER: _ClassVar[int]
    WARMUP_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    MAX_CACHED_STEPS_FIELD_NUMBER: _ClassVar[int]
    MAX_CONTINUOUS_CACHED_STEPS_FIELD_NUMBER: _ClassVar[int]
    ENABLE_SEPARATE_CFG_FIELD_NUMBER: _ClassVar[int]
    STEPS_COMPUTATION_MASK_FIELD_NUMBER: _ClassVar[int]
    STEPS_COMPUTATION_POLICY_FIELD_NUMBER: _ClassVar[int]
    TAYLORSEER_ORDER_FIELD_NUMBER: _ClassVar[int]
    CALIBRATOR_FIELD_NUMBER: _ClassVar[int]
    MAX_ACCUMULATED_RESIDUAL_DIFF_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    CFG_DIFF_COMPUTE_SEPARATE_FIELD_NUMBER: _ClassVar[int]
    CACHE_TYPE_FIELD_NUMBER: _ClassVar[int]
    NON_PRUNE_BLOCK_IDS_FIELD_NUMBER: _ClassVar[int]
    ENABLE_DYNAMIC_PRUNE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    TEACACHE_COEFFICIENTS_FIELD_NUMBER: _ClassVar[int]
    MAGCACHE_RATIOS_FIELD_NUMBER: _ClassVar[int]
    MAGCACHE_RETENTION_RATIO_FIELD_NUMBER: _ClassVar[int]
    preset: str
    fn_compute_blocks: int
    bn_compute_blocks: int
    residual_diff_threshold: float
    max_warmup_steps: int
    warmup_interval: int
    max_cached_steps: int
    max_continuous_cached_steps: int
    enable_separate_cfg: bool
    steps_computation_mask: _containers.RepeatedScalarFieldContainer[int]
    steps_computation_policy: str
    taylorseer_order: int
    calibrator: str
    max_accumulated_residual_diff_threshold: float
    cfg_diff_compute_separate: bool
    cache_type: str
    non_prune_block_ids: _containers.RepeatedScalarFieldContainer[int]
    enable_dynamic_prune_threshold: bool
    teacache_coefficients: _containers.RepeatedScalarFieldContainer[float]
    magcache_ratios: _containers.RepeatedScalarFieldContainer[float]
    magcache_retention_ratio: float
    def __init__(self, preset: _Optional[str] = ..., fn_compute_blocks: _Optional[int] = ..., bn_compute_blocks: _Optional[int] = ..., residual_diff_threshold: _Optional[float] = ..., max_warmup_steps: _Optional[int] = ..., warmup_interval: _Optional[int] = ..., max_cached_steps: _Optional[int] = ..., max_continuous_cached_steps: _Optional[int] = ..., enable_separate_cfg: _Optional[bool] = ..., steps_computation_mask: _Optional[_Iterable[int]] = ..., steps_computation_policy: _Optional[str] = ..., taylorseer_order: _Optional[int] = ..., calibrator: _Optional[str] = ..., max_accumulated_residual_diff_threshold: _Optional[float] = ..., cfg_diff_compute_separate: _Optional[bool] = ..., cache_type: _Optional[str] = ..., non_prune_block_ids: _Optional[_Iterable[int]] = ..., enable_dynamic_prune_threshold: _Optional[bool] = ..., teacache_coefficients: _Optional[_Iterable[float]] = ..., magcache_ratios: _Optional[_Iterable[float]] = ..., magcache_retention_ratio: _Optional[float] = ...) -> None: ...

class InputImage(_message.Message):
    __slots__ = ("data", "role", "controlnet_conditioning_scale")
    DATA_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CONTROLNET_CONDITIONING_SCALE_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    role: str
    controlnet_conditioning_scale: float
    def __init__(self, data: _Optional[bytes] = ..., role: _Optional[str] = ..., controlnet_conditioning_scale: _Optional[float] = ...) -> None: ...

class InputVideo(_message.Message):
    __slots__ = ("data", "role")
    DATA_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    role: str
    def __init__(self, data: _Optional[bytes] = ..., role: _Optional[str] = ...) -> None: ...

class LoraAdapter(_message.Message):
    __slots__ = ("name", "scale")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SCALE_FIELD_NUMBER: _ClassVar[int]
    name: str
    scale: float
    def __init__(self, name: _Optional[str] = ..., scale: _Optional[float] = ...) -> None: ...

class LoraInfo(_message.Message):
    __slots__ = ("name", "source", "rank", "layers", "components")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    RANK_FIELD_NUMBER: _ClassVar[int]
    LAYERS_FIELD_NUMBER: _ClassVar[int]
    COMPONENTS_FIELD_NUMBER: _ClassVar[int]
    name: str
    source: str
    rank: int
    layers: int
    components: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., source: _Optional[str] = ..., rank: _Optional[int] = ..., layers: _Optional[int] = ..., components: _Optional[_Iterable[str]] = ...) -> None: ...

class CameraTrajectory(_message.Message):
    __slots__ = ("action", "c2w", "intrinsics")
    ACTION_FIELD_NUMBER: _ClassVar[int]
    C2W_FIELD_NUMBER: _ClassVar[int]
    INTRINSICS_FIELD_NUMBER: _ClassVar[int]
    action: str
    c2w: _containers.RepeatedScalarFieldContainer[float]
    intrinsics: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, action: _Optional[str] = ..., c2w: _Optional[_Iterable[float]] = ..., intrinsics: _Optional[_Iterable[float]] = ...) -> None: ...

class GenerateRequest(_message.Message):
    __slots__ = ("model", "prompt", "negative_prompt", "width", "height", "num_inference_steps", "guidance_scale", "seed", "num_outputs", "num_frames", "fps", "input_images", "output_format", "output_quality", "cache", "request_id", "preview_every", "strength", "layers", "task_prompt", "loras", "input_videos", "camera")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    NEGATIVE_PROMPT_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    NUM_INFERENCE_STEPS_FIELD_NUMBER: _ClassVar[int]
    GUIDANCE_SCALE_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    NUM_OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    NUM_FRAMES_FIELD_NUMBER: _ClassVar[int]
    FPS_FIELD_NUMBER: _ClassVar[int]
    INPUT_IMAGES_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FORMAT_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_QUALITY_FIELD_NUMBER: _ClassVar[int]
    CACHE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PREVIEW_EVERY_FIELD_NUMBER: _ClassVar[int]
    STRENGTH_FIELD_NUMBER: _ClassVar[int]
    LAYERS_FIELD_NUMBER: _ClassVar[int]
    TASK_PROMPT_FIELD_NUMBER: _ClassVar[int]
    LORAS_FIELD_NUMBER: _ClassVar[int]
    INPUT_VIDEOS_FIELD_NUMBER: _ClassVar[int]
    CAMERA_FIELD_NUMBER: _ClassVar[int]
    model: str
    prompt: str
    negative_prompt: str
    width: int
    height: int
    num_inference_steps: int
    guidance_scale: float
    seed: int
    num_outputs: int
    num_frames: int
    fps: int
    input_images: _containers.RepeatedCompositeFieldContainer[InputImage]
    output_format: OutputFormat
    output_quality: int
    cache: CachePolicy
    request_id: str
    preview_every: int
    strength: float
    layers: int
    task_prompt: str
    loras: _containers.RepeatedCompositeFieldContainer[LoraAdapter]
    input_videos: _containers.RepeatedCompositeFieldContainer[InputVideo]
    camera: CameraTrajectory
    def __init__(self, model: _Optional[str] = ..., prompt: _Optional[str] = ..., negative_prompt: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., num_inference_steps: _Optional[int] = ..., guidance_scale: _Optional[float] = ..., seed: _Optional[int] = ..., num_outputs: _Optional[int] = ..., num_frames: _Optional[int] = ..., fps: _Optional[int] = ..., input_images: _Optional[_Iterable[_Union[InputImage, _Mapping]]] = ..., output_format: _Optional[_Union[OutputFormat, str]] = ..., output_quality: _Optional[int] = ..., cache: _Optional[_Union[CachePolicy, _Mapping]] = ..., request_id: _Optional[str] = ..., preview_every: _Optional[int] = ..., strength: _Optional[float] = ..., layers: _Optional[int] = ..., task_prompt: _Optional[str] = ..., loras: _Optional[_Iterable[_Union[LoraAdapter, _Mapping]]] = ..., input_videos: _Optional[_Iterable[_Union[InputVideo, _Mapping]]] = ..., camera: _Optional[_Union[CameraTrajectory, _Mapping]] = ...) -> None: ...

class Output(_message.Message):
    __slots__ = ("data", "mime_type", "width", "height", "num_frames", "size_bytes", "sha256")
    DATA_FIELD_NUMBER: _ClassVar[int]
    MIME_TYPE_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    NUM_FRAMES_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    mime_type: str
    width: int
    height: int
    num_frames: int
    size_bytes: int
    sha256: str
    def __init__(self, data: _Optional[bytes] = ..., mime_type: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., num_frames: _Optional[int] = ..., size_bytes: _Optional[int] = ..., sha256: _Optional[str] = ...) -> None: ...

class StepStat(_message.Message):
    __slots__ = ("step", "cached", "residual_diff", "cfg_cached", "cfg_residual_diff", "pruned_blocks", "calibrated")
    STEP_FIELD_NUMBER: _ClassVar[int]
    CACHED_FIELD_NUMBER: _ClassVar[int]
    RESIDUAL_DIFF_FIELD_NUMBER: _ClassVar[int]
    CFG_CACHED_FIELD_NUMBER: _ClassVar[int]
    CFG_RESIDUAL_DIFF_FIELD_NUMBER: _ClassVar[int]
    PRUNED_BLOCKS_FIELD_NUMBER: _ClassVar[int]
    CALIBRATED_FIELD_NUMBER: _ClassVar[int]
    step: int
    cached: bool
    residual_diff: float
    cfg_cached: bool
    cfg_residual_diff: float
    pruned_blocks: int
    calibrated: bool
    def __init__(self, step: _Optional[int] = ..., cached: _Optional[bool] = ..., residual_diff: _Optional[float] = ..., cfg_cached: _Optional[bool] = ..., cfg_residual_diff: _Optional[float] = ..., pruned_blocks: _Optional[int] = ..., calibrated: _Optional[bool] = ...) -> None: ...

class CacheStats(_message.Message):
    __slots__ = ("policy", "steps", "computed_steps", "cached_steps", "cfg_cached_steps", "pruned_ratio")
    POLICY_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    COMPUTED_STEPS_FIELD_NUMBER: _ClassVar[int]
    CACHED_STEPS_FIELD_NUMBER: _ClassVar[int]
    CFG_CACHED_STEPS_FIELD_NUMBER: _ClassVar[int]
    PRUNED_RATIO_FIELD_NUMBER: _ClassVar[int]
    policy: str
    steps: _containers.RepeatedCompositeFieldContainer[StepStat]
    computed_steps: int
    cached_steps: int
    cfg_cached_steps: int
    pruned_ratio: float
    def __init__(self, policy: _Optional[str] = ..., steps: _Optional[_Iterable[_Union[StepStat, _Mapping]]] = ..., computed_steps: _Optional[int] = ..., cached_steps: _Optional[int] = ..., cfg_cached_steps: _Optional[int] = ..., pruned_ratio: _Optional[float] = ...) -> None: ...

class Timings(_message.Message):
    __slots__ = ("queue_ms", "prepare_ms", "denoise_ms", "decode_ms", "encode_ms", "total_ms")
    QUEUE_MS_FIELD_NUMBER: _ClassVar[int]
    PREPARE_MS_FIELD_NUMBER: _ClassVar[int]
    DENOISE_MS_FIELD_NUMBER: _ClassVar[int]
    DECODE_MS_FIELD_NUMBER: _ClassVar[int]
    ENCODE_MS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_MS_FIELD_NUMBER: _ClassVar[int]
    queue_ms: float
    prepare_ms: float
    denoise_ms: float
    decode_ms: float
    encode_ms: float
    total_ms: float
    def __init__(self, queue_ms: _Optional[float] = ..., prepare_ms: _Optional[float] = ..., denoise_ms: _Optional[float] = ..., decode_ms: _Optional[float] = ..., encode_ms: _Optional[float] = ..., total_ms: _Optional[float] = ...) -> None: ...

class GenerateResponse(_message.Message):
    __slots__ = ("outputs", "cache_stats", "timings", "seed", "request_id", "model", "engine_id", "loras")
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    CACHE_STATS_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ENGINE_ID_FIELD_NUMBER: _ClassVar[int]
    LORAS_FIELD_NUMBER: _ClassVar[int]
    outputs: _containers.RepeatedCompositeFieldContainer[Output]
    cache_stats: CacheStats
    timings: Timings
    seed: int
    request_id: str
    model: str
    engine_id: str
    loras: _containers.RepeatedCompositeFieldContainer[LoraAdapter]
    def __init__(self, outputs: _Optional[_Iterable[_Union[Output, _Mapping]]] = ..., cache_stats: _Optional[_Union[CacheStats, _Mapping]] = ..., timings: _Optional[_Union[Timings, _Mapping]] = ..., seed: _Optional[int] = ..., request_id: _Optional[str] = ..., model: _Optional[str] = ..., engine_id: _Optional[str] = ..., loras: _Optional[_Iterable[_Union[LoraAdapter, _Mapping]]] = ...) -> None: ...

class QueuedEvent(_message.Message):
    __slots__ = ("position", "request_id", "engine_id")
    POSITION_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ENGINE_ID_FIELD_NUMBER: _ClassVar[int]
    position: int
    request_id: str
    engine_id: str
    def __init__(self, position: _Optional[int] = ..., request_id: _Optional[str] = ..., engine_id: _Optional[str] = ...) -> None: ...

class StartedEvent(_message.Message):
    __slots__ = ("seed", "total_steps", "queue_ms", "engine_id")
    SEED_FIELD_NUMBER: _ClassVar[int]
    TOTAL_STEPS_FIELD_NUMBER: _ClassVar[int]
    QUEUE_MS_FIELD_NUMBER: _ClassVar[int]
    ENGINE_ID_FIELD_NUMBER: _ClassVar[int]
    seed: int
    total_steps: int
    queue_ms: float
    engine_id: str
    def __init__(self, seed: _Optional[int] = ..., total_steps: _Optional[int] = ..., queue_ms: _Optional[float] = ..., engine_id: _Optional[str] = ...) -> None: ...

class StepEvent(_message.Message):
    __slots__ = ("step", "total_steps", "timestep", "cached", "residual_diff", "cfg_cached", "cfg_residual_diff", "elapsed_ms", "step_ms", "pruned_blocks", "calibrated")
    STEP_FIELD_NUMBER: _ClassVar[int]
    TOTAL_STEPS_FIELD_NUMBER: _ClassVar[int]
    TIMESTEP_FIELD_NUMBER: _ClassVar[int]
    CACHED_FIELD_NUMBER: _ClassVar[int]
    RESIDUAL_DIFF_FIELD_NUMBER: _ClassVar[int]
    CFG_CACHED_FIELD_NUMBER: _ClassVar[int]
    CFG_RESIDUAL_DIFF_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_MS_FIELD_NUMBER: _ClassVar[int]
    STEP_MS_FIELD_NUMBER: _ClassVar[int]
    PRUNED_BLOCKS_FIELD_NUMBER: _ClassVar[int]
    CALIBRATED_FIELD_NUMBER: _ClassVar[int]
    step: int
    total_steps: int
    timestep: float
    cached: bool
    residual_diff: float
    cfg_cached: bool
    cfg_residual_diff: float
    elapsed_ms: float
    step_ms: float
    pruned_blocks: int
    calibrated: bool
    def __init__(self, step: _Optional[int] = ..., total_steps: _Optional[int] = ..., timestep: _Optional[float] = ..., cached: _Optional[bool] = ..., residual_diff: _Optional[float] = ..., cfg_cached: _Optional[bool] = ..., cfg_residual_diff: _Optional[float] = ..., elapsed_ms: _Optional[float] = ..., step_ms: _Optional[float] = ..., pruned_blocks: _Optional[int] = ..., calibrated: _Optional[bool] = ...) -> None: ...

class PreviewEvent(_message.Message):
    __slots__ = ("step", "data", "mime_type", "width", "height")
    STEP_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    MIME_TYPE_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    step: int
    data: bytes
    mime_type: str
    width: int
    height: int
    def __init__(self, step: _Optional[int] = ..., data: _Optional[bytes] = ..., mime_type: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ...) -> None: ...

class ChunkEvent(_message.Message):
    __slots__ = ("output_index", "offset", "data", "last")
    OUTPUT_INDEX_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    output_index: int
    offset: int
    data: bytes
    last: bool
    def __init__(self, output_index: _Optional[int] = ..., offset: _Optional[int] = ..., data: _Optional[bytes] = ..., last: _Optional[bool] = ...) -> None: ...

class GenerateEvent(_message.Message):
    __slots__ = ("queued", "started", "step", "preview", "chunk", "completed")
    QUEUED_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    PREVIEW_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    queued: QueuedEvent
    started: StartedEvent
    step: StepEvent
    preview: PreviewEvent
    chunk: ChunkEvent
    completed: GenerateResponse
    def __init__(self, queued: _Optional[_Union[QueuedEvent, _Mapping]] = ..., started: _Optional[_Union[StartedEvent, _Mapping]] = ..., step: _Optional[_Union[StepEvent, _Mapping]] = ..., preview: _Optional[_Union[PreviewEvent, _Mapping]] = ..., chunk: _Optional[_Union[ChunkEvent, _Mapping]] = ..., completed: _Optional[_Union[GenerateResponse, _Mapping]] = ...) -> None: ...

class StatsRequest(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: str
    def __init__(self, model: _Optional[str] = ...) -> None: ...

class Duration(_message.Message):
    __slots__ = ("count", "total_ms")
    COUNT_FIELD_NUMBER: _ClassVar[int]
    TOTAL_MS_FIELD_NUMBER: _ClassVar[int]
    count: int
    total_ms: float
    def __init__(self, count: _Optional[int] = ..., total_ms: _Optional[float] = ...) -> None: ...

class ModelStats(_message.Message):
    __slots__ = ("model", "success", "failure", "cancelled", "rejected", "queue", "prepare", "denoise", "decode", "encode", "outputs", "steps", "computed_steps", "cached_steps", "last_request_unix_ms", "cancelled_steps", "lora_requests", "compile_graphs", "compiled_calls", "eager_calls")
    class LoraRequestsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    PREPARE_FIELD_NUMBER: _ClassVar[int]
    DENOISE_FIELD_NUMBER: _ClassVar[int]
    DECODE_FIELD_NUMBER: _ClassVar[int]
    ENCODE_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    COMPUTED_STEPS_FIELD_NUMBER: _ClassVar[int]
    CACHED_STEPS_FIELD_NUMBER: _ClassVar[int]
    LAST_REQUEST_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_STEPS_FIELD_NUMBER: _ClassVar[int]
    LORA_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    COMPILE_GRAPHS_FIELD_NUMBER: _ClassVar[int]
    COMPILED_CALLS_FIELD_NUMBER: _ClassVar[int]
    EAGER_CALLS_FIELD_NUMBER: _ClassVar[int]
    model: str
    success: Duration
    failure: Duration
    cancelled: Duration
    rejected: int
    queue: Duration
    prepare: Duration
    denoise: Duration
    decode: Duration
    encode: Duration
    outputs: int
    steps: int
    computed_steps: int
    cached_steps: int
    last_request_unix_ms: int
    cancelled_steps: int
    lora_requests: _containers.ScalarMap[str, int]
    compile_graphs: int
    compiled_calls: int
    eager_calls: int
    def __init__(self, model: _Optional[str] = ..., success: _Optional[_Union[Duration, _Mapping]] = ..., failure: _Optional[_Union[Duration, _Mapping]] = ..., cancelled: _Optional[_Union[Duration, _Mapping]] = ..., rejected: _Optional[int] = ..., queue: _Optional[_Union[Duration, _Mapping]] = ..., prepare: _Optional[_Union[Duration, _Mapping]] = ..., denoise: _Optional[_Union[Duration, _Mapping]] = ..., decode: _Optional[_Union[Duration, _Mapping]] = ..., encode: _Optional[_Union[Duration, _Mapping]] = ..., outputs: _Optional[int] = ..., steps: _Optional[int] = ..., computed_steps: _Optional[int] = ..., cached_steps: _Optional[int] = ..., last_request_unix_ms: _Optional[int] = ..., cancelled_steps: _Optional[int] = ..., lora_requests: _Optional[_Mapping[str, int]] = ..., compile_graphs: _Optional[int] = ..., compiled_calls: _Optional[int] = ..., eager_calls: _Optional[int] = ...) -> None: ...

class StatsResponse(_message.Message):
    __slots__ = ("models", "queue_depth", "running", "uptime_s", "device", "engine_id", "server")
    MODELS_FIELD_NUMBER: _ClassVar[int]
    QUEUE_DEPTH_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    UPTIME_S_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    ENGINE_ID_FIELD_NUMBER: _ClassVar[int]
    SERVER_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelStats]
    queue_depth: int
    running: int
    uptime_s: float
    device: str
    engine_id: str
    server: ServerInfo
    def __init__(self, models: _Optional[_Iterable[_Union[ModelStats, _Mapping]]] = ..., queue_depth: _Optional[int] = ..., running: _Optional[int] = ..., uptime_s: _Optional[float] = ..., device: _Optional[str] = ..., engine_id: _Optional[str] = ..., server: _Optional[_Union[ServerInfo, _Mapping]] = ...) -> None: ...

class ServerInfo(_message.Message):
    __slots__ = ("name", "version", "api", "build")
    class BuildEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    API_FIELD_NUMBER: _ClassVar[int]
    BUILD_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    api: str
    build: _containers.ScalarMap[str, str]
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., api: _Optional[str] = ..., build: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Limits(_message.Message):
    __slots__ = ("max_width", "max_height", "max_pixels", "max_steps", "max_outputs", "max_frames", "max_prompt_chars", "max_input_images", "max_input_image_bytes", "max_request_bytes", "max_queue", "max_input_pixels", "max_queued_input_pixels", "max_input_video_bytes", "max_input_video_frames", "max_input_video_pixels")
    MAX_WIDTH_FIELD_NUMBER: _ClassVar[int]
    MAX_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    MAX_PIXELS_FIELD_NUMBER: _ClassVar[int]
    MAX_STEPS_FIELD_NUMBER: _ClassVar[int]
    MAX_OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    MAX_FRAMES_FIELD_NUMBER: _ClassVar[int]
    MAX_PROMPT_CHARS_FIELD_NUMBER: _ClassVar[int]
    MAX_INPUT_IMAGES_FIELD_NUMBER: _ClassVar[int]
    MAX_INPUT_IMAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_REQUEST_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_QUEUE_FIELD_NUMBER: _ClassVar[int]
    MAX_INPUT_PIXELS_FIELD_NUMBER: _ClassVar[int]
    MAX_QUEUED_INPUT_PIXELS_FIELD_NUMBER: _ClassVar[int]
    MAX_INPUT_VIDEO_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_INPUT_VIDEO_FRAMES_FIELD_NUMBER: _ClassVar[int]
    MAX_INPUT_VIDEO_PIXELS_FIELD_NUMBER: _ClassVar[int]
    max_width: int
    max_height: int
    max_pixels: int
    max_steps: int
    max_outputs: int
    max_frames: int
    max_prompt_chars: int
    max_input_images: int
    max_input_image_bytes: int
    max_request_bytes: int
    max_queue: int
    max_input_pixels: int
    max_queued_input_pixels: int
    max_input_video_bytes: int
    max_input_video_frames: int
    max_input_video_pixels: int
    def __init__(self, max_width: _Optional[int] = ..., max_height: _Optional[int] = ..., max_pixels: _Optional[int] = ..., max_steps: _Optional[int] = ..., max_outputs: _Optional[int] = ..., max_frames: _Optional[int] = ..., max_prompt_chars: _Optional[int] = ..., max_input_images: _Optional[int] = ..., max_input_image_bytes: _Optional[int] = ..., max_request_bytes: _Optional[int] = ..., max_queue: _Optional[int] = ..., max_input_pixels: _Optional[int] = ..., max_queued_input_pixels: _Optional[int] = ..., max_input_video_bytes: _Optional[int] = ..., max_input_video_frames: _Optional[int] = ..., max_input_video_pixels: _Optional[int] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("name", "family", "pipeline_class", "is_default", "output_kind", "default_width", "default_height", "default_steps", "default_guidance_scale", "default_frames", "spatial_factor", "supports_negative_prompt", "input_roles", "source", "num_transformer_blocks", "parameters", "required_roles", "default_strength", "control_images", "repeated_roles", "refuses_guidance_scale", "default_layers", "max_layers", "outputs_alpha", "video_roles", "required_video_roles", "frames_from_video", "continues_video", "refuses_prompt", "requires_camera", "loras", "max_loras_per_request")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FAMILY_FIELD_NUMBER: _ClassVar[int]
    PIPELINE_CLASS_FIELD_NUMBER: _ClassVar[int]
    IS_DEFAULT_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_KIND_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_WIDTH_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_STEPS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_GUIDANCE_SCALE_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_FRAMES_FIELD_NUMBER: _ClassVar[int]
    SPATIAL_FACTOR_FIELD_NUMBER: _ClassVar[int]
    SUPPORTS_NEGATIVE_PROMPT_FIELD_NUMBER: _ClassVar[int]
    INPUT_ROLES_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    NUM_TRANSFORMER_BLOCKS_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_ROLES_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_STRENGTH_FIELD_NUMBER: _ClassVar[int]
    CONTROL_IMAGES_FIELD_NUMBER: _ClassVar[int]
    REPEATED_ROLES_FIELD_NUMBER: _ClassVar[int]
    REFUSES_GUIDANCE_SCALE_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_LAYERS_FIELD_NUMBER: _ClassVar[int]
    MAX_LAYERS_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_ALPHA_FIELD_NUMBER: _ClassVar[int]
    VIDEO_ROLES_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_VIDEO_ROLES_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FROM_VIDEO_FIELD_NUMBER: _ClassVar[int]
    CONTINUES_VIDEO_FIELD_NUMBER: _ClassVar[int]
    REFUSES_PROMPT_FIELD_NUMBER: _ClassVar[int]
    REQUIRES_CAMERA_FIELD_NUMBER: _ClassVar[int]
    LORAS_FIELD_NUMBER: _ClassVar[int]
    MAX_LORAS_PER_REQUEST_FIELD_NUMBER: _ClassVar[int]
    name: str
    family: str
    pipeline_class: str
    is_default: bool
    output_kind: str
    default_width: int
    default_height: int
    default_steps: int
    default_guidance_scale: float
    default_frames: int
    spatial_factor: int
    supports_negative_prompt: bool
    input_roles: _containers.RepeatedScalarFieldContainer[str]
    source: str
    num_transformer_blocks: int
    parameters: _containers.RepeatedScalarFieldContainer[str]
    required_roles: _containers.RepeatedScalarFieldContainer[str]
    default_strength: float
    control_images: int
    repeated_roles: _containers.RepeatedScalarFieldContainer[str]
    refuses_guidance_scale: bool
    default_layers: int
    max_layers: int
    outputs_alpha: bool
    video_roles: _containers.RepeatedScalarFieldContainer[str]
    required_video_roles: _containers.RepeatedScalarFieldContainer[str]
    frames_from_video: str
    continues_video: str
    refuses_prompt: bool
    requires_camera: bool
    loras: _containers.RepeatedCompositeFieldContainer[LoraInfo]
    max_loras_per_request: int
    def __init__(self, name: _Optional[str] = ..., family: _Optional[str] = ..., pipeline_class: _Optional[str] = ..., is_default: _Optional[bool] = ..., output_kind: _Optional[str] = ..., default_width: _Optional[int] = ..., default_height: _Optional[int] = ..., default_steps: _Optional[int] = ..., default_guidance_scale: _Optional[float] = ..., default_frames: _Optional[int] = ..., spatial_factor: _Optional[int] = ..., supports_negative_prompt: _Optional[bool] = ..., input_roles: _Optional[_Iterable[str]] = ..., source: _Optional[str] = ..., num_transformer_blocks: _Optional[int] = ..., parameters: _Optional[_Iterable[str]] = ..., required_roles: _Optional[_Iterable[str]] = ..., default_strength: _Optional[float] = ..., control_images: _Optional[int] = ..., repeated_roles: _Optional[_Iterable[str]] = ..., refuses_guidance_scale: _Optional[bool] = ..., default_layers: _Optional[int] = ..., max_layers: _Optional[int] = ..., outputs_alpha: _Optional[bool] = ..., video_roles: _Optional[_Iterable[str]] = ..., required_video_roles: _Optional[_Iterable[str]] = ..., frames_from_video: _Optional[str] = ..., continues_video: _Optional[str] = ..., refuses_prompt: _Optional[bool] = ..., requires_camera: _Optional[bool] = ..., loras: _Optional[_Iterable[_Union[LoraInfo, _Mapping]]] = ..., max_loras_per_request: _Optional[int] = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models", "limits", "engine_id", "server")
    MODELS_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    ENGINE_ID_FIELD_NUMBER: _ClassVar[int]
    SERVER_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    limits: Limits
    engine_id: str
    server: ServerInfo
    def __init__(self, models: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ..., limits: _Optional[_Union[Limits, _Mapping]] = ..., engine_id: _Optional[str] = ..., server: _Optional[_Union[ServerInfo, _Mapping]] = ...) -> None: ...

class CancelRequest(_message.Message):
    __slots__ = ("request_id",)
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    def __init__(self, request_id: _Optional[str] = ...) -> None: ...

class CancelResponse(_message.Message):
    __slots__ = ("state",)
    STATE_FIELD_NUMBER: _ClassVar[int]
    state: str
    def __init__(self, state: _Optional[str] = ...) -> None: ...
