"""A class-conditional model (DiT): the prompt names a class, the model renders one size."""

from __future__ import annotations

import pytest
import torch
from tiny_families.dit import build_tiny_dit

from client_sdk import Client
from client_sdk.errors import InvalidArgumentError
from engine_service.config import Limits
from engine_service.models import model_from_pipeline
from engine_service.runtime.engine import AsyncEngine
from engine_service.server.background import BackgroundServer


@pytest.fixture(scope="module")
def client():
    model = model_from_pipeline("dit", build_tiny_dit(), torch.device("cpu"), {"steps": 2})
    engine = AsyncEngine({"dit": model}, "dit", Limits(), "cpu")
    with BackgroundServer(engine) as server, Client(server.address, timeout=120) as client:
        yield client


def _fields(err: InvalidArgumentError) -> dict[str, str]:
    return {v.field: v.description for v in err.field_violations}


def test_the_prompt_names_a_class_by_name_synonym_or_index(client):
    by_name = client.generate("Golden Retriever", seed=1)
    by_index = client.generate(" 2 ", seed=1)
    assert by_name.outputs[0].sha256 == by_index.outputs[0].sha256
    synonym = client.generate("red disc", seed=1)
    assert synonym.outputs[0].sha256 == client.generate("0", seed=1).outputs[0].sha256
    assert synonym.outputs[0].image.size == (16, 16)


@pytest.mark.parametrize("prompt", ["a green triangle", "1000", "-1"])
def test_a_prompt_naming_no_class_is_invalid_and_the_server_keeps_serving(client, prompt):
    with pytest.raises(InvalidArgumentError) as info:
        client.generate(prompt)
    description = _fields(info.value)["prompt"]
    assert "class index 0-999" in description and "'a blue square'" in description
    assert client.generate("1").outputs


def test_a_size_other_than_the_native_one_is_invalid(client):
    with pytest.raises(InvalidArgumentError) as info:
        client.generate("1", width=32, height=32)
    assert "renders 16x16 only" in _fields(info.value)["width"]
    with pytest.raises(InvalidArgumentError) as info:
        client.generate("1", negative_prompt="blurry")
    assert "negative_prompt" in _fields(info.value)
    assert client.generate("1", width=16, height=16).outputs
