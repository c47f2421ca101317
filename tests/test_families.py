"""Every supported model family, run through the engine from a tiny offline pipeline.

Each case (tests/tiny_families) is served by its own engine on a free port and
asked three times through the SDK: without cache, with residual threshold 0
(must give the uncached output bit for bit) and with threshold 1 (every step
after warmup is cached: all but one per expert). Outputs are checked for kind and shape.
Requests the family's rules refuse (a frame count off its rule, a missing required
input image) get INVALID_ARGUMENT naming the field, and the engine keeps serving.
"""

from __future__ import annotations

import hashlib
import io
import json

import grpc
import imageio.v3 as iio
import pytest
import torch
from PIL import Image
from tiny_families import TinyCase, all_cases

from client_sdk import CachePolicy, Client, InputImage
from client_sdk._proto import engine_pb2, engine_pb2_grpc
from client_sdk.errors import InvalidArgumentError
from engine_service.config import Limits, ServerConfig
from engine_service.models import model_from_pipeline
from engine_service.models.families import FAMILIES
from engine_service.models.registry import ModelLoadError, load_local_model
from engine_service.runtime.engine import AsyncEngine
from engine_service.server.background import BackgroundServer

CASES = all_cases()
NEVER_CACHE = CachePolicy(preset="dbcache", residual_diff_threshold=0.0)
ALWAYS_CACHE = CachePolicy(
    preset="dbcache", residual_diff_threshold=1.0, max_warmup_steps=1, warmup_interval=1, max_continuous_cached_steps=-1
)


def _input_image(role: str, size: tuple[int, int]) -> InputImage:
    """A deterministic test picture (a mask is white on its right half)."""
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


def _bad_requests(family, frames: int, images: list[InputImage]) -> list[tuple[dict, str]]:
    """Requests the family's rules refuse, with the field each must be refused for."""
    bad = []
    if family.output_kind == "video" and (family.frame_stride > 1 or family.frame_counts is not None):
        bad.append(({"num_frames": frames + 1}, "num_frames"))
    if family.required_roles:
        bad.append(({"input_images": [i for i in images if i.role not in family.required_roles]}, "input_images"))
    return bad


def _violated_fields(client: Client, request: dict) -> set[str]:
    with pytest.raises(InvalidArgumentError) as raised:
        client.generate("a red circle", **request)
    return {violation.field for violation in raised.value.field_violations}


def test_every_supported_pipeline_class_has_a_tiny_case():
    covered = {case.pipeline_class for case in CASES}
    claimed = {name for family in FAMILIES if family.unsupported_reason is None for name in family.pipeline_classes}
    assert claimed - covered == set(), "supported pipelines without a tiny test case"
    assert len({case.name for case in CASES}) == len(CASES), "tiny case names must be unique"


@pytest.mark.parametrize(
    "pipeline_class",
    [name for family in FAMILIES if family.unsupported_reason is not None for name in family.pipeline_classes],
)
def test_a_known_unsupported_pipeline_fails_to_load_naming_it_and_why(tmp_path, pipeline_class):
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": pipeline_class}))
    family = next(f for f in FAMILIES if pipeline_class in f.pipeline_classes)
    with pytest.raises(ModelLoadError) as raised:
        load_local_model("m", tmp_path, torch.device("cpu"), torch.float32)
    assert pipeline_class in str(raised.value) and family.unsupported_reason in str(raised.value)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_family_runs_through_the_engine_with_and_without_cache(case: TinyCase):
    pipeline = case.build()
    assert type(pipeline).__name__ == case.pipeline_class
    model = model_from_pipeline(case.name, pipeline, torch.device("cpu"), case.defaults)
    engine = AsyncEngine({case.name: model}, case.name, Limits(), "cpu")
    video = model.family.output_kind == "video"
    request = {
        "model": case.name,
        "seed": 3,
        "input_images": [_input_image(role, size) for role, size in case.inputs],
        # Frames as PNGs compare exactly; the MP4 path is checked by the always-cached request.
        "output_format": "png_frames" if video else "png",
    }
    with BackgroundServer(engine) as server, Client(server.address, timeout=300) as client:
        plain = client.generate("a red circle", **request)
        never = client.generate("a red circle", cache=NEVER_CACHE, **request)
        always = client.generate("a red circle", cache=ALWAYS_CACHE, **{**request, "output_format": None})
        bad = _bad_requests(model.family, model.default_frames, request["input_images"])
        refused = [_violated_fields(client, {**request, **fields}) for fields, _ in bad]
        again = client.generate("a red circle", **request)  # still serving, same output

    assert refused == [{field} for _, field in bad]
    assert [o.sha256 for o in again.outputs] == [o.sha256 for o in plain.outputs]
    steps = model.default_steps
    frames = model.default_frames if video else 1
    assert [o.sha256 for o in never.outputs] == [o.sha256 for o in plain.outputs]
    assert never.cache_stats.cached_steps == 0 and plain.cache_stats.policy == "none"
    assert always.cache_stats.cached_steps == steps - case.experts, always.cache_stats
    assert len(plain.outputs) == frames
    for output in plain.outputs:
        assert (output.mime_type, output.num_frames) == ("image/png", 1)
        assert output.image.size == (model.default_width, model.default_height)
    (result,) = always.outputs
    assert (result.width, result.height) == (model.default_width, model.default_height)
    assert (result.mime_type, result.num_frames) == (("video/mp4", frames) if video else ("image/png", 1))


def test_a_streamed_video_arrives_in_chunks_and_reassembles_to_the_generated_mp4():
    case = next(c for c in CASES if c.name == "wan")
    model = model_from_pipeline(case.name, case.build(), torch.device("cpu"), case.defaults)
    engine = AsyncEngine({case.name: model}, case.name, Limits(), "cpu")
    # Chunks of 1 KiB so that a tiny MP4 takes several (the 1 MiB default is tested in test_generate).
    config = ServerConfig(port=0, stream_chunk_bytes=1024)
    request = engine_pb2.GenerateRequest(prompt="a red circle", model=case.name, seed=5)
    with BackgroundServer(engine, config) as server, grpc.insecure_channel(server.address) as channel:
        stub = engine_pb2_grpc.EngineStub(channel)
        generated = stub.Generate(request, timeout=120).outputs[0]
        events = list(stub.Stream(request, timeout=120))
    chunks = [e.chunk for e in events if e.HasField("chunk")]
    streamed = events[-1].completed.outputs[0]
    assert generated.mime_type == streamed.mime_type == "video/mp4" and streamed.data == b""
    assert len(chunks) > 1 and all(len(c.data) <= 1024 for c in chunks) and chunks[-1].last
    assert [c.offset for c in chunks] == [1024 * i for i in range(len(chunks))]
    data = b"".join(c.data for c in chunks)
    assert data == generated.data and hashlib.sha256(data).hexdigest() == streamed.sha256
    frames = iio.imread(data, extension=".mp4", plugin="FFMPEG")
    assert frames.shape == (model.default_frames, model.default_height, model.default_width, 3)
