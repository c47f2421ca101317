"""Unit tests of the client SDK that need no server: request building, stream
reassembly, error mapping, value types, console rendering and import hygiene."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import pathlib
import re
import subprocess
import sys

import grpc
import pytest
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2

import client_sdk
from client_sdk import (
    CachePolicy,
    CacheStats,
    CameraTrajectory,
    Completed,
    Duration,
    InputImage,
    Output,
    Preview,
    Queued,
    Result,
    Started,
    Step,
    StepStat,
    Timings,
    _codec,
    console,
    errors,
)
from client_sdk._core import (
    CHANNEL_OPTIONS,
    StreamAssembler,
    build_request,
    check_health,
    merge_channel_options,
)
from client_sdk._proto import engine_pb2 as pb

REQUEST_OPTIONALS = (
    "width",
    "height",
    "num_inference_steps",
    "guidance_scale",
    "seed",
    "num_outputs",
    "num_frames",
    "fps",
    "output_quality",
)


# --- request building ----------------------------------------------------------


def test_build_request_leaves_unset_optionals_unset():
    request = build_request("a cat")
    assert request.prompt == "a cat"
    assert request.model == "" and request.negative_prompt == "" and request.request_id == ""
    assert not any(request.HasField(name) for name in REQUEST_OPTIONALS)
    assert not request.HasField("cache")
    assert request.output_format == pb.OUTPUT_FORMAT_UNSPECIFIED
    assert request.preview_every == 0 and len(request.input_images) == 0


def test_build_request_sets_explicit_values_including_zero():
    request = build_request(
        "a cat",
        model="flux",
        negative_prompt="blur",
        width=512,
        height=256,
        num_inference_steps=4,
        guidance_scale=3.5,
        seed=0,
        num_outputs=2,
        num_frames=9,
        fps=24,
        output_quality=80,
        request_id="req-1",
        preview_every=2,
    )
    assert all(request.HasField(name) for name in REQUEST_OPTIONALS)
    assert request.seed == 0 and request.width == 512 and request.guidance_scale == 3.5
    assert (request.model, request.negative_prompt, request.request_id) == ("flux", "blur", "req-1")
    assert request.preview_every == 2


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("png", pb.OUTPUT_FORMAT_PNG),
        ("jpeg", pb.OUTPUT_FORMAT_JPEG),
        ("JPG", pb.OUTPUT_FORMAT_JPEG),
        ("webp", pb.OUTPUT_FORMAT_WEBP),
        ("mp4", pb.OUTPUT_FORMAT_MP4),
        ("png_frames", pb.OUTPUT_FORMAT_PNG_FRAMES),
        ("exr_frames", pb.OUTPUT_FORMAT_EXR_FRAMES),
        ("EXR-frames", pb.OUTPUT_FORMAT_EXR_FRAMES),
        (pb.OUTPUT_FORMAT_WEBP, pb.OUTPUT_FORMAT_WEBP),
    ],
)
def test_output_format_names_and_numbers(name, expected):
    assert build_request("x", output_format=name).output_format == expected


@pytest.mark.parametrize("bad", ["gif", "", 99])
def test_unknown_output_format_raises_value_error(bad):
    with pytest.raises(ValueError, match="unknown output format"):
        build_request("x", output_format=bad)


def test_input_images_from_bytes_path_and_input_image(tmp_path):
    path = tmp_path / "in.png"
    path.write_bytes(b"from-file")
    request = build_request("x", input_images=[b"raw", path, str(path), InputImage(b"m", role="mask")])
    assert [(i.data, i.role) for i in request.input_images] == [
        (b"raw", "image"),
        (b"from-file", "image"),
        (b"from-file", "image"),
        (b"m", "mask"),
    ]
    assert InputImage.from_path(path, role="reference") == InputImage(b"from-file", "reference")
    single = build_request("x", input_images=b"one")
    assert [i.data for i in single.input_images] == [b"one"]
    with pytest.raises(TypeError):
        build_request("x", input_images=[123])


def test_a_camera_trajectory_is_sent_as_an_action_or_flat_row_major_poses(tmp_path):
    """Poses as nested lists, arrays or 16 flat numbers each all flatten row by row; a JSON file reads the
    same; no camera leaves the field unset; another type is a TypeError."""
    np = pytest.importorskip("numpy")
    pose = [[1.0, 0.0, 0.0, 0.5], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 2.0], [0.0, 0.0, 0.0, 1.0]]
    flat = [number for row in pose for number in row]
    lens = (800, 800.5, 640, 352)
    for poses in ([pose, pose], np.array([pose, pose]), [flat, flat]):
        request = build_request("x", camera=CameraTrajectory(lens, c2w=poses))
        assert list(request.camera.c2w) == flat * 2 and not request.camera.action
        assert list(request.camera.intrinsics) == [800.0, 800.5, 640.0, 352.0]
    action = build_request("x", camera=CameraTrajectory(lens, action="w-80,jw-40")).camera
    assert (action.action, list(action.c2w)) == ("w-80,jw-40", [])
    assert not build_request("x").HasField("camera")
    path = tmp_path / "poses.json"
    path.write_text(json.dumps({"c2w": [pose], "intrinsics": list(lens)}))
    one = build_request("x", camera=CameraTrajectory(lens, c2w=[pose])).camera
    assert CameraTrajectory.from_json(path).to_proto() == one
    path.write_text(json.dumps([pose]))  # a bare list of poses, as generate --camera-poses reads it
    assert dataclasses.replace(CameraTrajectory.from_json(path), intrinsics=lens).to_proto() == one
    for text, named in (('{"poses": []}', "poses"), (json.dumps({"c2w": [pose], "intrinsic": lens}), "intrinsic")):
        path.write_text(text)
        with pytest.raises(ValueError, match=f"unknown keys {named};"):
            CameraTrajectory.from_json(path)
    path.write_text("[")
    with pytest.raises(ValueError, match="poses.json"):
        CameraTrajectory.from_json(path)
    with pytest.raises(TypeError):
        build_request("x", camera="w-80")


def test_camera_numbers_that_are_strings_or_a_k_matrix_are_a_type_error():
    """Intrinsics as a string are not read digit by digit ("1234" is not 1, 2, 3, 4), a 3x3 K matrix is not
    the 4 numbers fx, fy, cx, cy, and poses hold numbers only: each a TypeError naming the field."""
    np = pytest.importorskip("numpy")
    pose = np.eye(4)
    for bad in ("1234", [[800, 0, 640], [0, 800, 352], [0, 0, 1]], 800, (True, 800, 640, 352)):
        with pytest.raises(TypeError, match="intrinsics"):
            CameraTrajectory(bad, action="w-8").to_proto()
    for poses in ("abc", [["1"] * 16]):
        with pytest.raises(TypeError, match="c2w"):
            CameraTrajectory((800, 800, 640, 352), c2w=poses).to_proto()
    lens = CameraTrajectory(np.array([800, 800, 640, 352], dtype=np.float32), c2w=[pose]).to_proto().intrinsics
    assert list(lens) == [800.0, 800.0, 640.0, 352.0]
    assert list(CameraTrajectory((np.float32(800), 800, 640, 352), action="w-8").to_proto().intrinsics)[0] == 800.0


def test_cache_policy_to_proto_sets_only_given_fields():
    policy = CachePolicy(
        preset="fast",
        fn_compute_blocks=1,
        enable_separate_cfg=False,
        steps_computation_mask=(1, 0, 1),
        residual_diff_threshold=0.0,
    )
    proto = policy.to_proto()
    assert proto.preset == "fast" and proto.HasField("fn_compute_blocks")
    assert proto.HasField("enable_separate_cfg") and proto.enable_separate_cfg is False
    assert proto.HasField("residual_diff_threshold") and not proto.HasField("bn_compute_blocks")
    assert not proto.HasField("taylorseer_order") and list(proto.steps_computation_mask) == [1, 0, 1]
    request = build_request("x", cache="ultra")
    assert request.HasField("cache") and request.cache.preset == "ultra"


def test_caller_channel_options_override_defaults():
    merged = dict(merge_channel_options([("grpc.keepalive_time_ms", 5000), ("grpc.primary_user_agent", "t")]))
    assert merged["grpc.keepalive_time_ms"] == 5000 and merged["grpc.primary_user_agent"] == "t"
    assert merged["grpc.max_receive_message_length"] == dict(CHANNEL_OPTIONS)["grpc.max_receive_message_length"]


def test_health_statuses_read_with_the_health_checking_messages():
    from grpc_health.v1 import health_pb2

    status = health_pb2.HealthCheckResponse
    assert check_health(status.SERVING, "t", "") is None
    assert check_health(status.NOT_SERVING, "t", "") == "health status NOT_SERVING"
    assert check_health(status.SERVICE_UNKNOWN, "t", "") == "health status SERVICE_UNKNOWN"
    with pytest.raises(errors.NotFoundError, match="no model named 'flux'"):
        check_health(status.SERVICE_UNKNOWN, "t", "flux")


def test_input_images_from_pil_numpy_pairs_and_mappings(tmp_path):
    import numpy as np
    from PIL import Image

    def decoded(item):
        image = Image.open(io.BytesIO(item.data))
        return item.role, image.size, image.getpixel((0, 0))

    pil = Image.new("RGB", (6, 4), (255, 0, 0))
    array = np.zeros((4, 6, 3), np.uint8)
    array[..., 1] = 255
    path = tmp_path / "mask.png"
    Image.new("L", (6, 4), 9).save(path)
    request = build_request("x", input_images=[pil, ("mask", array), ("reference", path)])
    assert [decoded(i) for i in request.input_images] == [
        ("image", (6, 4), (255, 0, 0)),
        ("mask", (6, 4), (0, 255, 0)),
        ("reference", (6, 4), 9),
    ]
    assert [decoded(i) for i in build_request("x", input_images=pil).input_images] == [("image", (6, 4), (255, 0, 0))]
    assert [decoded(i) for i in build_request("x", input_images=("mask", pil)).input_images] == [
        ("mask", (6, 4), (255, 0, 0))
    ]
    by_role = build_request("x", input_images={"image": array, "mask": InputImage(b"m")}).input_images
    assert [(i.role, i.data[:4]) for i in by_role] == [("image", b"\x89PNG"), ("mask", b"m")]
    with pytest.raises(ValueError, match="uint8"):
        build_request("x", input_images=array.astype(np.float32))
    with pytest.raises(ValueError, match="H x W x 3"):
        build_request("x", input_images=np.zeros((2, 4, 6, 3), np.uint8))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("dbcache:Fn_compute_blocks=4", CachePolicy(preset="dbcache", fn_compute_blocks=4)),
        ("dbcache:Fn=2,Bn=1,rdt=0.2,mcc=-1", CachePolicy("dbcache", 2, 1, 0.2, max_continuous_cached_steps=-1)),
        ("fast:max-warmup-steps=2", CachePolicy(preset="fast", max_warmup_steps=2)),
        (
            "F1B0_W8I1M0MC3_R0.12",
            CachePolicy("dbcache", 1, 0, 0.12, 8, 1, max_cached_steps=-1, max_continuous_cached_steps=3),
        ),
        (
            "DBCache_F8B0_W4MC3_R0.08:taylorseer_order=1",
            CachePolicy("dbcache", 8, 0, 0.08, 4, max_continuous_cached_steps=3, taylorseer_order=1),
        ),
    ],
)
def test_cache_policy_parse_reads_cache_dit_spellings_and_tags(text, expected):
    assert CachePolicy.parse(text) == expected


def test_cache_policy_parse_lists_the_valid_fields_for_an_unknown_one():
    with pytest.raises(
        ValueError, match="unknown cache policy field 'warp'; valid fields: fn_compute_blocks, "
    ) as info:
        CachePolicy.parse("fast:warp=1")
    assert "rdt (residual_diff_threshold)" in str(info.value)
    request = build_request("x", cache="dbcache:Fn=3")
    assert request.cache.preset == "dbcache" and request.cache.fn_compute_blocks == 3


def test_retry_policy_honours_retry_info_within_its_bounds():
    import random

    from client_sdk.retry import RetryPolicy, next_wait

    def error(cls, seconds=None, reason=""):
        details = []
        if seconds is not None:
            delay = duration_pb2.Duration()
            delay.FromMilliseconds(int(seconds * 1000))
            details.append(error_details_pb2.RetryInfo(retry_delay=delay))
        if reason:
            details.append(error_details_pb2.ErrorInfo(reason=reason, domain="ditserve"))
        return cls("x", details=tuple(details))

    policy = RetryPolicy(max_attempts=3, initial_backoff_s=0.5, max_backoff_s=4.0, jitter=0.25)
    rng = random.Random(0)
    queue_full = error(errors.ResourceExhaustedError, 2.0, "QUEUE_FULL")
    waits = [policy.delay(1, queue_full, rng) for _ in range(200)]
    assert 2.0 <= min(waits) and max(waits) <= 2.5 and len({round(w, 6) for w in waits}) > 100
    assert policy.delay(1, error(errors.ResourceExhaustedError, 60.0), rng) == 4.0
    backoffs = [policy.delay(3, error(errors.UnavailableError), rng) for _ in range(200)]
    assert 0.0 <= min(backoffs) and max(backoffs) <= 2.0
    assert next_wait(policy, 1, queue_full, None, 0.0) is not None
    assert next_wait(policy, 3, queue_full, None, 0.0) is None, "max_attempts counts the first call"
    assert next_wait(policy, 1, queue_full, 1.0, 0.0) is None, "no wait runs past the deadline"
    assert next_wait(None, 1, queue_full, None, 0.0) is None, "off unless asked for"
    out_of_memory = error(errors.ResourceExhaustedError, reason="DEVICE_OUT_OF_MEMORY")
    for never in (out_of_memory, error(errors.InvalidArgumentError), error(errors.InternalError)):
        assert next_wait(policy, 1, never, None, 0.0) is None
    for reason in ("RANK_LOST", "ENGINE_LOST"):
        assert next_wait(policy, 1, error(errors.UnavailableError, reason=reason), None, 0.0) is None


# --- stream reassembly ---------------------------------------------------------


def _chunk(index, offset, data, last=False):
    return pb.GenerateEvent(chunk=pb.ChunkEvent(output_index=index, offset=offset, data=data, last=last))


def _completed(*outputs):
    return pb.GenerateEvent(completed=pb.GenerateResponse(outputs=outputs, seed=5, request_id="r", model="m"))


def _output_meta(data, mime="video/mp4", sha=None):
    digest = sha if sha is not None else hashlib.sha256(data).hexdigest()
    return pb.Output(mime_type=mime, width=16, height=16, num_frames=3, size_bytes=len(data), sha256=digest)


def test_assembler_converts_progress_events():
    assembler = StreamAssembler()
    assert assembler.feed(pb.GenerateEvent(queued=pb.QueuedEvent(position=2, request_id="r"))) == Queued(2, "r")
    started = pb.StartedEvent(seed=9, total_steps=4, queue_ms=1.5)
    assert assembler.feed(pb.GenerateEvent(started=started)) == Started(9, 4, 1.5)
    plain = assembler.feed(pb.GenerateEvent(step=pb.StepEvent(step=0, total_steps=4, timestep=999.0)))
    assert isinstance(plain, Step) and plain.residual_diff is None and plain.cfg_cached is None
    step = pb.StepEvent(step=1, cached=True, residual_diff=0.0, cfg_cached=False)
    diffed = assembler.feed(pb.GenerateEvent(step=step))
    assert diffed.residual_diff == 0.0 and diffed.cfg_cached is False and diffed.cfg_residual_diff is None
    preview = assembler.feed(pb.GenerateEvent(preview=pb.PreviewEvent(step=1, data=b"p", width=4, height=4)))
    assert isinstance(preview, Preview) and preview.mime_type == "image/png"


def test_assembler_reassembles_chunked_output():
    payload = bytes(range(256)) * 40
    pieces = [payload[:4000], payload[4000:8000], payload[8000:]]
    inline = b"inline-png"
    assembler = StreamAssembler()
    offset = 0
    for i, piece in enumerate(pieces):
        assert assembler.feed(_chunk(1, offset, piece, last=i == 2)) is None
        offset += len(piece)
    inline_meta = _output_meta(inline, mime="image/png")
    inline_meta.data = inline
    event = assembler.feed(_completed(inline_meta, _output_meta(payload)))
    assert isinstance(event, Completed) and assembler.completed
    first, second = event.result.outputs
    assert first.data == inline and second.data == payload and second.verify()
    assert (event.result.seed, event.result.request_id, event.result.model) == (5, "r", "m")
    assembler.finish()


def test_assembler_rejects_corrupt_sha256():
    payload = b"x" * 3000
    assembler = StreamAssembler()
    for offset in (0, 1000, 2000):
        assembler.feed(_chunk(0, offset, payload[offset : offset + 1000], last=offset == 2000))
    with pytest.raises(errors.ChunkIntegrityError, match="sha256"):
        assembler.feed(_completed(_output_meta(payload, sha=hashlib.sha256(b"other").hexdigest())))


@pytest.mark.parametrize("offsets", [(0, 1000), (0, 2000, 1000, 1000)], ids=["missing-tail", "duplicate"])
def test_assembler_rejects_missing_or_repeated_chunks(offsets):
    payload = b"y" * 3000
    assembler = StreamAssembler()
    for offset in offsets:
        assembler.feed(_chunk(0, offset, payload[offset : offset + 1000]))
    with pytest.raises(errors.ChunkIntegrityError):
        assembler.feed(_completed(_output_meta(payload)))


def test_assembler_requires_a_completed_event():
    with pytest.raises(errors.DitServeError, match="without a completed event"):
        StreamAssembler().finish()


# --- error mapping -------------------------------------------------------------


class FakeRpcError(grpc.RpcError):
    """A stand-in for a failed grpc call, as raised by the sync and aio stubs."""

    def __init__(self, code, details, trailing=()):
        self._code, self._details, self._trailing = code, details, tuple(trailing)

    def code(self):
        return self._code

    def details(self):
        return self._details

    def trailing_metadata(self):
        return self._trailing


def _rich_error(code, message, *details, request_id=None):
    status = status_pb2.Status(code=code.value[0], message=message)
    for detail in details:
        packed = any_pb2.Any()
        packed.Pack(detail)
        status.details.append(packed)
    trailing = [("grpc-status-details-bin", status.SerializeToString())]
    if request_id is not None:
        trailing.append(("x-request-id", request_id))
    return FakeRpcError(code, message, trailing)


def test_invalid_argument_carries_field_violations():
    violation = error_details_pb2.BadRequest.FieldViolation
    bad = error_details_pb2.BadRequest(
        field_violations=[
            violation(field="width", description="must be a multiple of 16"),
            violation(field="seed", description="must be >= 0"),
        ]
    )
    rpc_error = _rich_error(grpc.StatusCode.INVALID_ARGUMENT, "invalid request", bad, request_id="r7")
    err = errors.from_rpc_error(rpc_error)
    assert type(err) is errors.InvalidArgumentError and err.code is grpc.StatusCode.INVALID_ARGUMENT
    assert err.request_id == "r7" and err.message == "invalid request"
    assert [(v.field, v.description) for v in err.field_violations] == [
        ("width", "must be a multiple of 16"),
        ("seed", "must be >= 0"),
    ]
    assert "width: must be a multiple of 16" in str(err) and "seed: must be >= 0" in str(err)


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (grpc.StatusCode.RESOURCE_EXHAUSTED, errors.ResourceExhaustedError),
        (grpc.StatusCode.UNAVAILABLE, errors.UnavailableError),
    ],
)
def test_retry_info_becomes_retry_after(code, cls):
    retry = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=2, nanos=500_000_000))
    err = errors.from_rpc_error(_rich_error(code, "busy", retry))
    assert type(err) is cls and err.retry_after == pytest.approx(2.5)
    assert errors.from_rpc_error(FakeRpcError(code, "busy")).retry_after is None


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (grpc.StatusCode.NOT_FOUND, errors.NotFoundError),
        (grpc.StatusCode.ALREADY_EXISTS, errors.AlreadyExistsError),
        (grpc.StatusCode.FAILED_PRECONDITION, errors.FailedPreconditionError),
        (grpc.StatusCode.UNIMPLEMENTED, errors.UnimplementedError),
        (grpc.StatusCode.UNAUTHENTICATED, errors.UnauthenticatedError),
        (grpc.StatusCode.PERMISSION_DENIED, errors.PermissionDeniedError),
        (grpc.StatusCode.DEADLINE_EXCEEDED, errors.DeadlineExceededError),
        (grpc.StatusCode.CANCELLED, errors.RequestCancelledError),
        (grpc.StatusCode.INTERNAL, errors.InternalError),
        (grpc.StatusCode.UNKNOWN, errors.APIError),
        (grpc.StatusCode.DATA_LOSS, errors.APIError),
    ],
)
def test_status_codes_map_to_classes(code, cls):
    err = errors.from_rpc_error(FakeRpcError(code, "boom", [("x-request-id", b"r1")]))
    assert type(err) is cls and isinstance(err, errors.DitServeError)
    assert err.code is code and err.details == () and err.request_id == "r1"


def test_inconsistent_trailer_falls_back_to_code_and_message():
    rich = _rich_error(grpc.StatusCode.NOT_FOUND, "unknown model", error_details_pb2.ResourceInfo(resource_name="m"))
    lying = FakeRpcError(grpc.StatusCode.INTERNAL, "something else", rich.trailing_metadata())
    err = errors.from_rpc_error(lying, request_id="mine")
    assert type(err) is errors.InternalError and err.details == () and err.request_id == "mine"
    assert errors.from_rpc_error(rich).details[0].resource_name == "m"


def test_error_without_call_attributes_is_unknown():
    err = errors.from_rpc_error(grpc.RpcError())
    assert type(err) is errors.APIError and err.code is grpc.StatusCode.UNKNOWN


def test_errors_raised_directly_get_their_code():
    assert errors.UnavailableError("down").code is grpc.StatusCode.UNAVAILABLE
    assert errors.APIError("?").code is grpc.StatusCode.UNKNOWN


# --- value types and console ---------------------------------------------------


def _output(data, mime):
    return Output(data, mime, 8, 8, 1, len(data), hashlib.sha256(data).hexdigest())


def _result(*outputs):
    stats = CacheStats("none", (), 0, 0)
    return Result(tuple(outputs), stats, Timings(1, 2, 3, 4, 5, 15), seed=1, request_id="r", model="m")


def test_result_save_names_files_by_template_and_extension(tmp_path):
    result = _result(_output(b"a", "image/png"), _output(b"b", "image/jpeg"), _output(b"c", "video/mp4"))
    paths = result.save(tmp_path / "new" / "dir", name="cat-{request_id}-{index}")
    assert [p.name for p in paths] == ["cat-r-0.png", "cat-r-1.jpg", "cat-r-2.mp4"]
    assert [p.read_bytes() for p in paths] == [b"a", b"b", b"c"]
    assert [p.name for p in result.save(tmp_path)] == ["1-0.png", "1-1.jpg", "1-2.mp4"], "default {seed}-{index}"
    assert "data" not in repr(result.outputs[0])
    for bad, words in (("{prompt}", "may use"), ("{seed}/x", "file name")):
        with pytest.raises(ValueError, match=words):
            result.save(tmp_path, name=bad)
    with pytest.raises(ValueError, match="same name"):
        _result(_output(b"a", "image/png"), _output(b"b", "image/png")).save(tmp_path, name="{seed}")


def test_output_image_decodes_with_pillow_and_refuses_video():
    image_module = pytest.importorskip("PIL.Image")
    buffer = io.BytesIO()
    image_module.new("RGB", (3, 2), "red").save(buffer, format="PNG")
    output = _output(buffer.getvalue(), "image/png")
    assert output.image.size == (3, 2) and _result(output).images[0].size == (3, 2)
    with pytest.raises(ValueError, match="not an image"):
        _ = _output(b"v", "video/mp4").image


def test_output_image_without_pillow_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ImportError, match="Pillow"):
        _ = _output(b"png", "image/png").image


def test_codec_model_list_and_durations():
    response = pb.ListModelsResponse(
        models=[
            pb.ModelInfo(name="a", input_roles=["image"]),  # default size 0 x 0: it follows the input image
            pb.ModelInfo(
                name="b", is_default=True, input_roles=["image", "mask"], default_width=512, default_height=256
            ),
        ],
        limits=pb.Limits(max_width=2048),
    )
    models = _codec.model_list_from_proto(response)
    assert models.default.name == "b" and models.default.input_roles == ("image", "mask")
    assert models.limits.max_width == 2048
    assert Duration(0, 0.0).mean_ms == 0.0 and Duration(4, 10.0).mean_ms == 2.5
    table = console.models_table(models)
    rows = {line.lstrip("* ").split()[0]: line for line in table.splitlines()[2:4]}
    assert "* b" in table and "512x256" in rows["b"] and "of input" in rows["a"] and "0x0" not in table
    # A video upscaler that refuses a prompt and a guidance scale shows neither a default scale nor a prompt.
    upscaler = pb.ModelInfo(
        name="sr",
        default_steps=4,
        video_roles=["video"],
        required_video_roles=["video"],
        frames_from_video="video",
        default_guidance_scale=1.0,
        refuses_guidance_scale=True,
        refuses_prompt=True,
    )
    listed = _codec.model_list_from_proto(pb.ListModelsResponse(models=[upscaler]))
    row = console.models_table(listed).splitlines()[2]
    assert re.search(r" of input +4 +- +of video ", row) and "video, no prompt" in row, row
    # An HDR video model says so in its kind: the one place a user of `ditserve models` learns exr_frames works.
    hdr = pb.ModelInfo(name="hdr", output_kind="video", outputs_hdr=True, video_roles=["reference"])
    plain = pb.ModelInfo(name="v", output_kind="video")
    listed = _codec.model_list_from_proto(pb.ListModelsResponse(models=[hdr, plain]))
    rows = console.models_table(listed).splitlines()[2:4]
    assert re.search(r"^  hdr +video \(HDR\) ", rows[0]) and "HDR" not in rows[1], rows


def test_step_table_with_and_without_step_events():
    steps = (StepStat(0, False, None, None, None), StepStat(1, True, 0.0312, None, None))
    stats = CacheStats("DBCache_F1B0", steps, computed_steps=1, cached_steps=1)
    plain = console.step_table(stats)
    lines = plain.splitlines()
    assert lines[0].split() == ["step", "timestep", "cached", "residual", "diff"]
    assert lines[2].split() == ["0", "-", "no", "-"] and lines[3].split() == ["1", "-", "yes", "0.0312"]
    assert lines[-1] == "computed 1 / cached 1 of 2 steps, policy DBCache_F1B0"
    events = [
        Step(0, 2, 1000.0, False, None, None, None, elapsed_ms=10.0, step_ms=10.0),
        Step(1, 2, 500.0, True, 0.0312, None, None, elapsed_ms=12.5, step_ms=2.5),
    ]
    timed = console.step_table(stats, events).splitlines()
    assert timed[0].split()[-2:] == ["step", "ms"]
    assert timed[3].split() == ["1", "500.00", "yes", "0.0312", "2.5"]


def test_timings_and_stats_rendering():
    assert console.timings_line(Timings(1, 2, 3, 4, 5, 15)).endswith("total 15.0 ms")
    model = pb.ModelStats(model="flux", success=pb.Duration(count=2, total_ms=30.0), steps=10, cached_steps=4)
    stats = _codec.stats_from_proto(pb.StatsResponse(models=[model], device="cpu", queue_depth=1))
    text = console.stats_table(stats)
    assert text.startswith("device cpu") and "flux" in text and "15.0" in text and "40%" in text


def test_progress_bar_follows_events():
    sink = io.StringIO()
    with console.ProgressBar(file=sink) as bar:
        bar.update(Queued(3, "r"))
        bar.update(Started(1, 2, 0.0))
        bar.update(Step(0, 2, 1.0, False, None, None, None, 1.0, 1.0))
        bar.update(Step(1, 2, 0.5, True, 0.01, None, None, 2.0, 1.0))
        bar.update(Completed(_result()))
    text = sink.getvalue()
    assert "queued #3" in text and "2/2" in text and "cached=yes" in text


def test_progress_bar_clears_its_line_when_the_stream_fails_before_a_step():
    failed, stepped = io.StringIO(), io.StringIO()
    for sink, steps in ((failed, 0), (stepped, 1)):
        with pytest.raises(RuntimeError), console.ProgressBar(file=sink) as bar:
            bar.update(Queued(1, "r"))
            for step in range(steps):
                bar.update(Step(step, 2, 1.0, False, None, None, None, 1.0, 1.0))
            raise RuntimeError("the stream failed")
    # The line is drawn, then blanked: the error that follows stands alone; after a step it stays.
    assert failed.getvalue().endswith("\r") and failed.getvalue().rstrip("\r").split("\r")[-1].strip() == ""
    assert stepped.getvalue().endswith("\n") and "1/2" in stepped.getvalue()


# --- import hygiene ------------------------------------------------------------


_IMPORT_ALL = """
import sys
{prelude}
import client_sdk, client_sdk.client, client_sdk.async_client, client_sdk.console
import client_sdk.errors, client_sdk.types, client_sdk._core, client_sdk._codec
heavy = [m for m in ("torch", "numpy", "diffusers", "engine_service", "PIL") if sys.modules.get(m) is not None]
assert not heavy, heavy
print("torch" in sys.modules)
"""


@pytest.mark.parametrize(
    ("prelude", "torch_key_present"),
    [("", "False"), ('sys.modules["torch"] = None  # any "import torch" now fails', "True")],
    ids=["clean", "torch-blocked"],
)
def test_sdk_imports_without_torch(prelude, torch_key_present):
    repo_root = pathlib.Path(client_sdk.__file__).resolve().parent.parent
    code = _IMPORT_ALL.format(prelude=prelude)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=repo_root)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == torch_key_present


@pytest.mark.parametrize("fps", [0, -1, float("nan"), float("inf")])
def test_input_video_from_frames_refuses_an_fps_it_cannot_state(fps):
    """An infinite fps made a 0 ms frame duration, which states no rate (the output silently got 16 fps)."""
    import numpy as np

    from client_sdk import InputVideo

    with pytest.raises(ValueError, match="fps must be positive and finite"):
        InputVideo.from_frames([np.zeros((8, 8, 3), np.uint8)] * 2, fps=fps)
