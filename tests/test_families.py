"""Every supported model family, run through the engine from a tiny offline pipeline.

Each case (tests/tiny_families) is served by its own engine on a free port and
asked three times through the SDK: without cache, with residual threshold 0
(must give the uncached output bit for bit) and with threshold 1 (every step
after warmup is cached). Outputs are checked for kind and shape.
"""

from __future__ import annotations

import io

import pytest
import torch
from PIL import Image
from tiny_families import TinyCase, all_cases

from client_sdk import CachePolicy, Client, InputImage
from engine_service.config import Limits
from engine_service.models import model_from_pipeline
from engine_service.models.families import FAMILIES
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


def test_every_supported_pipeline_class_has_a_tiny_case():
    covered = {case.pipeline_class for case in CASES}
    claimed = {name for family in FAMILIES if family.unsupported_reason is None for name in family.pipeline_classes}
    assert claimed - covered == set(), "supported pipelines without a tiny test case"
    assert len({case.name for case in CASES}) == len(CASES), "tiny case names must be unique"


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

    steps = model.default_steps
    frames = model.default_frames if video else 1
    assert [o.sha256 for o in never.outputs] == [o.sha256 for o in plain.outputs]
    assert never.cache_stats.cached_steps == 0 and plain.cache_stats.policy == "none"
    assert always.cache_stats.cached_steps == steps - 1, always.cache_stats
    assert len(plain.outputs) == frames
    for output in plain.outputs:
        assert (output.mime_type, output.num_frames) == ("image/png", 1)
        assert output.image.size == (model.default_width, model.default_height)
    (result,) = always.outputs
    assert (result.width, result.height) == (model.default_width, model.default_height)
    assert (result.mime_type, result.num_frames) == (("video/mp4", frames) if video else ("image/png", 1))


def test_a_known_but_unsupported_pipeline_fails_to_load_naming_it_and_the_reason(tmp_path):
    from engine_service.models.registry import ModelLoadError, load_local_model

    unsupported = [
        (name, family) for family in FAMILIES if family.unsupported_reason for name in family.pipeline_classes
    ]
    assert unsupported, "no family is marked unsupported"
    for pipeline_class, family in unsupported:
        (tmp_path / "model_index.json").write_text(f'{{"_class_name": "{pipeline_class}"}}')
        with pytest.raises(ModelLoadError) as info:
            load_local_model("m", tmp_path, torch.device("cpu"), torch.float32)
        assert pipeline_class in str(info.value) and family.unsupported_reason in str(info.value)
