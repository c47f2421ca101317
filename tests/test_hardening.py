"""No request can take the engine down: hostile inputs get the right status and resources stay bounded.

One engine serves a tiny FLUX Kontext pipeline (it takes an optional input image) with small
limits, so every request that passes validation is cheap. Each test sends what a careless or
hostile client would, checks the status and that no message carries exception text, a class
name or a heap address, and that the engine still serves. The last test is a property-based
fuzz of the whole request surface.
"""

from __future__ import annotations

import asyncio
import io
import re

import grpc
import pytest
import torch
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from tiny_families import input_image
from tiny_families.flux import CASES

from client_sdk._proto import engine_pb2 as pb
from client_sdk._proto import engine_pb2_grpc
from engine_service.config import Limits, ServerConfig
from engine_service.errors import excerpt
from engine_service.jobs import JobStatus, PreviewEvent
from engine_service.models import model_from_pipeline
from engine_service.runtime.engine import AsyncEngine
from engine_service.server import validation
from engine_service.server.background import BackgroundServer

KONTEXT = next(case for case in CASES if case.pipeline_class == "FluxKontextPipeline")
SIDE = 64
LIMITS = Limits(
    max_width=SIDE,
    max_height=SIDE,
    max_pixels=SIDE * SIDE,
    max_steps=4,
    max_outputs=2,
    max_frames=8,
    max_prompt_chars=256,
    max_input_images=2,
    max_input_image_bytes=256 * 1024,
    max_queue=2,
    max_input_pixels=SIDE * SIDE,
    max_queued_input_pixels=2 * SIDE * SIDE,
)
#: What no status message may carry: a heap address, an exception class name, a Python repr of an object.
LEAKS = re.compile(r"0x[0-9a-fA-F]{6,}|\b\w+(Error|Exception)\b|<[\w.]+ object|<class |Traceback")
CLIENT_CODES = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.UNAUTHENTICATED,
}


@pytest.fixture(scope="module")
def server():
    model = model_from_pipeline("kontext", KONTEXT.build(), torch.device("cpu"), KONTEXT.defaults)
    engine = AsyncEngine({"kontext": model}, "kontext", LIMITS, "cpu")
    background = BackgroundServer(engine, ServerConfig(host="127.0.0.1", port=0)).start()
    yield background
    background.stop()


@pytest.fixture(scope="module")
def channel(server):
    with grpc.insecure_channel(server.address) as ch:
        yield ch


@pytest.fixture(scope="module")
def stub(channel):
    return engine_pb2_grpc.EngineStub(channel)


def _encoded(image: Image.Image, fmt: str, **save) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save)
    return buffer.getvalue()


def _picture(size=(32, 32)) -> Image.Image:
    return Image.new("RGB", size, (40, 90, 200))


def _status(call) -> tuple[grpc.StatusCode, str, list]:
    """(code, message, details) of a finished call or its RpcError."""
    try:
        call()
    except grpc.RpcError as err:
        status = rpc_status.from_call(err)
        return err.code(), err.details() or "", list(status.details) if status else []
    return grpc.StatusCode.OK, "", []


def _violations(details) -> list[tuple[str, str]]:
    out = []
    for detail in details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            out.extend((v.field, v.description) for v in bad.field_violations)
    return out


def _assert_serves(stub) -> None:
    reply = stub.Generate(pb.GenerateRequest(prompt="a cat", num_inference_steps=1), timeout=300)
    assert reply.outputs and reply.outputs[0].width == 32


# -- cache policy knobs: bounded by the steps and blocks before any work ------------------------------------


@pytest.mark.parametrize(
    "field", ["max_warmup_steps", "warmup_interval", "max_cached_steps", "max_continuous_cached_steps"]
)
def test_a_huge_cache_step_count_is_invalid_argument(stub, field):
    cache = pb.CachePolicy(preset="dbcache", **{field: 2_000_000})
    code, message, details = _status(lambda: stub.Generate(pb.GenerateRequest(prompt="a", cache=cache), timeout=60))
    assert code == grpc.StatusCode.INVALID_ARGUMENT, message
    assert [f for f, _ in _violations(details)] == [f"cache.{field}"]
    assert "between" in message and str(LIMITS.max_steps) in message


def test_step_counts_above_the_requests_steps_act_as_its_steps(stub):
    cache = pb.CachePolicy(preset="dbcache", max_warmup_steps=4, max_cached_steps=4, residual_diff_threshold=1.0)
    reply = stub.Generate(pb.GenerateRequest(prompt="a cat", num_inference_steps=2, cache=cache), timeout=300)
    # The plan that ran counts 2 warm-up steps and at most 2 cached steps: the request's steps.
    assert "_W2I1M2" in reply.cache_stats.policy, reply.cache_stats.policy
    assert reply.cache_stats.cached_steps == 0


def test_many_prune_ids_are_refused_without_echoing_them(stub):
    cache = pb.CachePolicy(preset="dbcache", cache_type="dbprune", non_prune_block_ids=[10**6] * 10_000)
    code, message, details = _status(lambda: stub.Generate(pb.GenerateRequest(prompt="a", cache=cache), timeout=60))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in _violations(details)] == ["cache.non_prune_block_ids"]
    assert len(message) < 300, message


# -- input images: header checked before decoding, only PNG and JPEG, truncation refused --------------------


def _truncated_jpeg_claiming(side: int) -> bytes:
    data = bytearray(_encoded(Image.new("RGB", (256, 256), "red"), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = side.to_bytes(2, "big") * 2
    return bytes(data[:647])


BAD_IMAGES = {
    "8000x8000 PNG bomb": (lambda: _encoded(Image.new("1", (8000, 8000)), "PNG"), "exceeds the limit"),
    "647-byte JPEG claiming 13000x13000": (lambda: _truncated_jpeg_claiming(13000), "exceeds the limit"),
    "647-byte JPEG claiming 60000x60000": (lambda: _truncated_jpeg_claiming(60000), "exceeds the limit"),
    "truncated PNG": (lambda: _encoded(Image.effect_noise((32, 32), 64), "PNG")[:-200], "truncated"),
    "truncated JPEG": (lambda: _encoded(Image.effect_noise((32, 32), 64), "JPEG")[:-200], "truncated"),
    "8x8, under the spatial factor": (lambda: _encoded(_picture((8, 8)), "PNG"), "too small"),
    "GIF": (lambda: _encoded(_picture(), "GIF"), "not a PNG or JPEG"),
    "BMP": (lambda: _encoded(_picture(), "BMP"), "not a PNG or JPEG"),
    "TIFF": (lambda: _encoded(_picture(), "TIFF"), "not a PNG or JPEG"),
    "WebP": (lambda: _encoded(_picture(), "WEBP"), "not a PNG or JPEG"),
    "PPM": (lambda: _encoded(_picture(), "PPM"), "not a PNG or JPEG"),
    "random bytes": (lambda: bytes(range(256)) * 4, "not a PNG or JPEG"),
}


@pytest.mark.parametrize("case", list(BAD_IMAGES))
def test_a_bad_input_image_is_invalid_argument_naming_it(stub, case):
    make, words = BAD_IMAGES[case]
    request = pb.GenerateRequest(prompt="a cat", input_images=[pb.InputImage(data=make())])
    code, message, details = _status(lambda: stub.Generate(request, timeout=120))
    assert code == grpc.StatusCode.INVALID_ARGUMENT, message
    assert [(f, words in why) for f, why in _violations(details)] == [("input_images[0].data", True)], message
    assert not LEAKS.search(message), message


def test_good_png_and_jpeg_inputs_run(stub):
    for fmt in ("PNG", "JPEG"):
        request = pb.GenerateRequest(
            prompt="a cat", num_inference_steps=1, input_images=[pb.InputImage(data=_encoded(_picture(), fmt))]
        )
        assert stub.Generate(request, timeout=300).outputs


def test_queued_decoded_images_are_bounded(server):
    """Waiting requests hold at most max_queued_input_pixels of decoded images together."""
    from engine_service.errors import QueueFull

    engine = server.engine
    model = engine.models["kontext"]
    full = input_image("image", (SIDE, SIDE)).data

    def spec():
        request = pb.GenerateRequest(prompt="a cat", input_images=[pb.InputImage(data=full)])
        return validation.validate(request, model, LIMITS)

    async def scenario():
        # Queued (the engine loop has not run yet): together they hold the limit.
        queued = [engine.submit(spec()) for _ in range(LIMITS.max_queued_input_pixels // (SIDE * SIDE))]
        try:
            with pytest.raises(QueueFull) as info:
                engine.submit(spec())
            return info.value.retry_after
        finally:
            for job in queued:
                engine.cancel_job(job, "cancelled by the test")

    assert server.call(scenario(), timeout=60) >= 1.0


# -- slow consumers: what an unread stream holds is bounded, and undelivered results count ------------------


def test_finished_unread_results_count_against_the_queue(server):
    from engine_service.errors import QueueFull

    engine = server.engine
    model = engine.models["kontext"]
    request = pb.GenerateRequest(prompt="a cat", num_inference_steps=1)

    async def scenario():
        jobs = [engine.submit(validation.validate(request, model, LIMITS)) for _ in range(LIMITS.max_queue)]
        while any(job.status is not JobStatus.FINISHED for job in jobs):
            await asyncio.sleep(0.05)
        # Nobody read them: their results still count against max_queue.
        with pytest.raises(QueueFull):
            engine.submit(validation.validate(request, model, LIMITS))
        for job in jobs:
            async for _ in engine.events(job):
                pass
        # Read now: the queue takes work again.
        extra = engine.submit(validation.validate(request, model, LIMITS))
        return [event async for event in engine.events(extra)][-1]

    assert server.call(scenario(), timeout=600).result.outputs


def test_unread_previews_coalesce_to_the_newest(server):
    engine = server.engine
    model = engine.models["kontext"]
    request = pb.GenerateRequest(prompt="a cat", num_inference_steps=4, preview_every=1)

    async def scenario():
        job = engine.submit(validation.validate(request, model, LIMITS))
        while job.status is not JobStatus.FINISHED:
            await asyncio.sleep(0.05)
        return [event.step for event in [e async for e in engine.events(job)] if isinstance(event, PreviewEvent)]

    # Previews follow steps 0, 1 and 2 (the last step's image is the result): only the newest waited.
    assert server.call(scenario(), timeout=600) == [2]


# -- statuses and messages ---------------------------------------------------------------------------------


def test_a_pipeline_failure_is_internal_without_exception_text(server, stub):
    vae = server.engine.models["kontext"].pipeline.vae
    vae.to(torch.float64)  # the float32 latents no longer fit the VAE: the pipeline raises inside diffusers
    try:
        code, message, _ = _status(lambda: stub.Generate(pb.GenerateRequest(prompt="a cat"), timeout=300))
    finally:
        vae.to(torch.float32)
    assert code == grpc.StatusCode.INTERNAL
    assert not LEAKS.search(message) and "dtype" not in message.lower() and "double" not in message.lower(), message
    _assert_serves(stub)


def test_long_strings_are_refused_and_never_echoed_whole(stub):
    long = "m" * 5000
    for request in (pb.GenerateRequest(prompt="a", model=long), pb.GenerateRequest(prompt="a", request_id=long)):
        code, message, _ = _status(lambda request=request: stub.Generate(request, timeout=60))
        assert code == grpc.StatusCode.INVALID_ARGUMENT, message
        assert len(message) < 300, message
    role = pb.GenerateRequest(prompt="a", input_images=[pb.InputImage(data=_encoded(_picture(), "PNG"), role=long)])
    code, message, _ = _status(lambda: stub.Generate(role, timeout=60))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and len(message) < 300, message
    code, message, _ = _status(lambda: stub.Cancel(pb.CancelRequest(request_id=long), timeout=60))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and len(message) < 300, message
    code, message, _ = _status(lambda: stub.Generate(pb.GenerateRequest(prompt="a", model="n" * 200), timeout=60))
    assert code == grpc.StatusCode.NOT_FOUND and len(message) < 300, message


@pytest.mark.parametrize("method", ["Generate", "Stream", "Cancel", "Stats"])
def test_a_garbage_body_is_invalid_argument(channel, stub, method):
    identity = channel.unary_stream if method == "Stream" else channel.unary_unary
    call = identity(f"/ditserve.v1.Engine/{method}")  # no serializers: the bytes go as they are
    body = b"\xff\xff\xff\xff\x0f garbage"

    def send():
        reply = call(body, timeout=30)
        if method == "Stream":
            list(reply)

    code, message, _ = _status(send)
    assert code == grpc.StatusCode.INVALID_ARGUMENT, message
    assert not LEAKS.search(message), message
    _assert_serves(stub)


def test_cancel_takes_a_well_formed_id_and_names_no_other_request(stub):
    code, _, _ = _status(lambda: stub.Cancel(pb.CancelRequest(request_id="no such request"), timeout=30))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    code, _, _ = _status(lambda: stub.Cancel(pb.CancelRequest(request_id="nobody-runs-this"), timeout=30))
    assert code == grpc.StatusCode.NOT_FOUND
    reply = stub.Generate(pb.GenerateRequest(prompt="a cat", num_inference_steps=1), timeout=300)
    # A server-assigned id is 128 random bits: it cannot be guessed, only learned from its own caller.
    assert re.fullmatch(r"[0-9a-f]{32}", reply.request_id)
    code, _, _ = _status(lambda: stub.Cancel(pb.CancelRequest(request_id=reply.request_id), timeout=30))
    assert code == grpc.StatusCode.NOT_FOUND


# -- the fuzz: random requests over every field --------------------------------------------------------------

INT32 = st.one_of(
    st.integers(-(2**31), 2**31 - 1), st.sampled_from([-1, 0, 1, 2, 3, 4, 16, 32, 64, 65, 2**31 - 1, -(2**31)])
)
FLOATS = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=32), st.sampled_from([0.0, 1.0, 3.5, -1.0]))
TEXT = st.one_of(st.text(max_size=40), st.sampled_from(["", "a cat", "x" * 3000, "\x00\ud7ff\u202e"]))


def _image_bytes() -> st.SearchStrategy[bytes]:
    def render(fmt: str, size: tuple[int, int], cut: int) -> bytes:
        data = _encoded(Image.effect_noise(size, 40).convert("RGB"), fmt)
        return data[: len(data) - cut] if cut else data

    sides = st.integers(1, 96)
    rendered = st.builds(
        render,
        st.sampled_from(["PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP"]),
        st.tuples(sides, sides),
        st.sampled_from([0, 0, 0, 1, 50, 300]),
    )
    claimed = st.integers(1, 60000).map(_truncated_jpeg_claiming)
    png_header = st.binary(max_size=200).map(lambda tail: b"\x89PNG\r\n\x1a\n" + tail)
    return st.one_of(rendered, claimed, png_header, st.binary(max_size=300))


def _optional(strategy):
    return st.one_of(st.none(), strategy)


CACHE = st.builds(
    lambda preset, ints, floats, strings, mask, ids, bools: pb.CachePolicy(
        preset=preset,
        **{k: v for k, v in {**ints, **floats, **bools}.items() if v is not None},
        **strings,
        steps_computation_mask=mask,
        non_prune_block_ids=ids,
    ),
    st.sampled_from(["", "none", "default", "dbcache", "slow", "fast", "ultra", "bogus"]),
    st.fixed_dictionaries(
        {}.fromkeys(
            [
                "fn_compute_blocks",
                "bn_compute_blocks",
                "max_warmup_steps",
                "warmup_interval",
                "max_cached_steps",
                "max_continuous_cached_steps",
                "taylorseer_order",
            ],
            _optional(INT32),
        )
    ),
    st.fixed_dictionaries(
        {}.fromkeys(["residual_diff_threshold", "max_accumulated_residual_diff_threshold"], _optional(FLOATS))
    ),
    st.fixed_dictionaries(
        {
            "steps_computation_policy": st.sampled_from(["", "static", "dynamic", "x"]),
            "calibrator": st.sampled_from(["", "none", "taylorseer", "foca", "x"]),
            "cache_type": st.sampled_from(["", "dbcache", "dbprune", "x"]),
        }
    ),
    st.lists(st.sampled_from([0, 1, 2, -1]), max_size=6),
    st.lists(INT32, max_size=6),
    st.fixed_dictionaries(
        {}.fromkeys(
            ["enable_separate_cfg", "cfg_diff_compute_separate", "enable_dynamic_prune_threshold"],
            _optional(st.booleans()),
        )
    ),
)

REQUESTS = st.builds(
    lambda scalars, ints, images, cache, fmt, preview, request_id: pb.GenerateRequest(
        **scalars,
        **{k: v for k, v in ints.items() if v is not None},
        input_images=images,
        output_format=fmt,
        preview_every=preview,
        request_id=request_id,
        **({"cache": cache} if cache is not None else {}),
    ),
    st.fixed_dictionaries(
        {
            "model": st.one_of(st.sampled_from(["", "kontext"]), TEXT),
            "prompt": st.one_of(st.just("a cat"), TEXT),
            "negative_prompt": st.one_of(st.just(""), TEXT),
        }
    ),
    st.fixed_dictionaries(
        {
            **{}.fromkeys(["width", "height", "num_outputs", "num_frames", "fps", "output_quality"], _optional(INT32)),
            "num_inference_steps": _optional(st.one_of(st.integers(1, 2), INT32)),
            "guidance_scale": _optional(FLOATS),
            "seed": _optional(st.one_of(st.integers(-(2**63), 2**63 - 1), st.just(1))),
        }
    ),
    st.lists(
        st.builds(
            lambda data, role: pb.InputImage(data=data, role=role),
            _image_bytes(),
            st.one_of(st.sampled_from(["", "image", "mask"]), TEXT),
        ),
        max_size=3,
    ),
    _optional(CACHE),
    st.one_of(st.integers(0, 6), INT32),
    st.one_of(st.just(0), INT32),
    st.one_of(st.just(""), st.sampled_from(["fuzz-1", "a" * 129]), TEXT),
)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        import os

        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.timeout(600)
def test_fuzzed_requests_get_client_statuses_and_the_engine_stays_bounded(server, stub):
    """Random requests over every field: only client statuses, clean messages, bounded memory."""
    _assert_serves(stub)
    rss_before = _rss_bytes()
    seen: dict[grpc.StatusCode, int] = {}

    @settings(
        max_examples=60,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    )
    @given(request=REQUESTS, streaming=st.booleans())
    def one(request: pb.GenerateRequest, streaming: bool) -> None:
        if streaming:
            code, message, _ = _status(lambda: list(stub.Stream(request, timeout=300)))
        else:
            code, message, _ = _status(lambda: stub.Generate(request, timeout=300))
        seen[code] = seen.get(code, 0) + 1
        assert code in CLIENT_CODES, (code, message)
        # The client's own strings come back quoted (``excerpt``): only the rest must be clean.
        own = [request.model, request.prompt, request.negative_prompt, request.request_id]
        unechoed = message
        for value in [*own, *(image.role for image in request.input_images)]:
            unechoed = unechoed.replace(excerpt(value), "") if value else unechoed
        assert not LEAKS.search(unechoed), message
        assert "metadata" not in message, message

    one()
    _assert_serves(stub)
    growth = _rss_bytes() - rss_before
    assert growth < 400 * 1024 * 1024, f"RSS grew {growth / 2**20:.0f} MiB over the fuzz"
    assert grpc.StatusCode.INVALID_ARGUMENT in seen, seen
