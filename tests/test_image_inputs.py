"""Editing and fill models through the contract: input images are checked before any work.

A tiny FLUX Fill pipeline (image + mask, both required) is served by a real
engine; requests without one of them, or with an undecodable one, get
INVALID_ARGUMENT naming the field, and the engine goes on serving. The same
holds for a FLUX.2 reference image below the family's minimum size.
"""

from __future__ import annotations

import pytest
import torch
from tiny_families import input_image
from tiny_families.flux import CASES
from tiny_families.flux2 import CASES as FLUX2_CASES

from client_sdk import Client, InputImage
from client_sdk.errors import InvalidArgumentError
from engine_service.config import Limits
from engine_service.models import model_from_pipeline
from engine_service.runtime.engine import AsyncEngine
from engine_service.server.background import BackgroundServer

FILL = next(case for case in CASES if case.pipeline_class == "FluxFillPipeline")


@pytest.fixture(scope="module")
def fill_client():
    model = model_from_pipeline("fill", FILL.build(), torch.device("cpu"), FILL.defaults)
    engine = AsyncEngine({"fill": model}, "fill", Limits(), "cpu")
    with BackgroundServer(engine) as server, Client(server.address, timeout=120) as client:
        yield client


def _violations(client: Client, images: list[InputImage]) -> list[tuple[str, str]]:
    with pytest.raises(InvalidArgumentError) as raised:
        client.generate("a red circle", input_images=images, seed=1)
    return [(v.field, v.description) for v in raised.value.field_violations]


def test_fill_without_its_image_or_mask_is_invalid_and_the_engine_still_serves(fill_client):
    image, mask = input_image("image", (32, 32)), input_image("mask", (32, 32))

    none = _violations(fill_client, [])
    assert [field for field, _ in none] == ["input_images", "input_images"]
    assert "role 'image'" in none[0][1] and "role 'mask'" in none[1][1]
    ((field, why),) = _violations(fill_client, [image])
    assert field == "input_images" and "role 'mask'" in why
    undecodable = InputImage(data=b"not a png", role="mask")
    assert [field for field, _ in _violations(fill_client, [image, undecodable])] == ["input_images[1].data"]
    misrolled = InputImage(data=image.data, role="control")
    assert [field for field, _ in _violations(fill_client, [image, mask, misrolled])] == ["input_images[2].role"]

    result = fill_client.generate("a red circle", input_images=[image, mask], seed=1)
    (output,) = result.outputs
    assert output.image.size == (32, 32) and result.cache_stats.policy == "none"


def test_a_reference_image_below_the_familys_minimum_or_too_elongated_is_invalid_and_the_engine_still_serves():
    klein = next(case for case in FLUX2_CASES if case.pipeline_class == "Flux2KleinPipeline")
    model = model_from_pipeline("klein", klein.build(), torch.device("cpu"), klein.defaults)
    engine = AsyncEngine({"klein": model}, "klein", Limits(), "cpu")
    with BackgroundServer(engine) as server, Client(server.address, timeout=120) as client:
        ((field, why),) = _violations(client, [input_image("image", (64, 64)), input_image("image", (80, 32))])
        assert field == "input_images[1].data" and "80x32" in why and "64" in why
        ((field, why),) = _violations(client, [input_image("image", (576, 64))])  # 9:1; the pipeline takes 8:1
        assert field == "input_images[0].data" and "576x64" in why and "8:1" in why
        result = client.generate("a red circle", input_images=[input_image("image", (64, 64))], seed=1)
        assert result.outputs[0].image.size == (32, 32)
