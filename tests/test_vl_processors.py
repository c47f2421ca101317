"""Pipeline directories with a Qwen-VL processor load and serve without torchvision.

Released Qwen-Image Edit, Qwen-Image 2.1 and Kandinsky 5 / 6 checkpoints name the real
``Qwen2VLProcessor`` / ``Qwen3VLProcessor`` / ``Qwen2_5_VLProcessor`` in ``model_index.json``
and ship a ``video_preprocessor_config.json``; in transformers 5.24 those processors build a
video processor, which needs torchvision. The tiny
pipelines are saved, their processor folders laid out as a released checkpoint's, loaded as
``--model NAME=PATH`` loads them, and must generate what the pipeline built in code generates.
"""

from __future__ import annotations

import json
import pathlib

import pytest
import torch
from tiny_families import input_image
from tiny_families.kandinsky5 import CASES as KANDINSKY5_CASES
from tiny_families.kandinsky6 import CASES as KANDINSKY6_CASES
from tiny_families.qwen_image import CASES as QWEN_IMAGE_CASES
from tiny_families.qwen_image21 import CASES as QWEN_IMAGE21_CASES
from tiny_tokenizers import qwen_vl_tokenizer
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

from client_sdk import Client
from engine_service.config import Limits
from engine_service.models import load_local_model, model_from_pipeline
from engine_service.models.vl_processors import ImageOnlyQwen2_5_VLProcessor, image_only_processors
from engine_service.runtime.engine import AsyncEngine
from engine_service.server.background import BackgroundServer

#: Served case -> the processor's component, and the processor class and video processor a released
#: checkpoint names.
RELEASED = {
    "qwen-image-edit": ("processor", "Qwen2VLProcessor", "Qwen2VLVideoProcessor"),
    "qwen-image-2.1": ("processor", "Qwen3VLProcessor", "Qwen3VLVideoProcessor"),
    "kandinsky5-i2i": ("tokenizer", "Qwen2_5_VLProcessor", "Qwen2VLVideoProcessor"),
    "kandinsky6": ("tokenizer", "Qwen2_5_VLProcessor", "Qwen2VLVideoProcessor"),
}
#: Attributes the tiny cases set in code, which save_pretrained does not keep: the start of the prompt
#: after the system prompt their byte-level tokenizer spells, and Kandinsky 5's tiny sizes.
SET_IN_CODE = ("prompt_template_encode_start_idx", "resolutions")
CASES = {
    case.name: case
    for case in [*QWEN_IMAGE_CASES, *QWEN_IMAGE21_CASES, *KANDINSKY5_CASES, *KANDINSKY6_CASES]
    if case.name in RELEASED
}


def _as_released(directory: pathlib.Path, component: str, processor_class: str, video_class: str) -> None:
    """Lay out ``directory/component`` as a released checkpoint's processor folder: ``save_pretrained``
    names the class it was given (the image-only one) and writes the image processor into
    ``processor_config.json``; released folders name the real class and hold ``preprocessor_config.json``
    and ``video_preprocessor_config.json``."""
    index = json.loads((directory / "model_index.json").read_text())
    index[component] = ["transformers", processor_class]
    (directory / "model_index.json").write_text(json.dumps(index))
    folder = directory / component
    saved = json.loads((folder / "processor_config.json").read_text())
    (folder / "processor_config.json").unlink()
    image = {**saved["image_processor"], "processor_class": processor_class}
    (folder / "preprocessor_config.json").write_text(json.dumps(image))
    video = {key: value for key, value in image.items() if key != "image_processor_type"}
    (folder / "video_preprocessor_config.json").write_text(json.dumps({**video, "video_processor_type": video_class}))
    tokenizer = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({**tokenizer, "processor_class": processor_class}))


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    cpu = torch.device("cpu")
    models = {}
    for name, (component, processor_class, video_class) in RELEASED.items():
        case = CASES[name]
        built = case.build()
        directory = tmp_path_factory.mktemp(name)
        built.save_pretrained(directory)
        _as_released(directory, component, processor_class, video_class)
        (directory / "ditserve.json").write_text(json.dumps(case.defaults))
        loaded = load_local_model(f"{name}-loaded", directory, cpu, torch.float32)
        for attribute in SET_IN_CODE:
            if hasattr(built, attribute):
                setattr(loaded.pipeline, attribute, getattr(built, attribute))
        models[f"{name}-loaded"] = loaded
        models[f"{name}-built"] = model_from_pipeline(f"{name}-built", built, cpu, case.defaults)
    engine = AsyncEngine(models, next(iter(models)), Limits(), "cpu")
    with BackgroundServer(engine) as server, Client(server.address, timeout=300) as client:
        yield client


@pytest.mark.parametrize("name", list(RELEASED))
def test_a_released_processor_folder_loads_and_generates_what_the_built_pipeline_does(client, name):
    request = {"seed": 5, "input_images": [input_image(role, size) for role, size in CASES[name].inputs]}
    loaded = client.generate("a red circle", model=f"{name}-loaded", **request)
    built = client.generate("a red circle", model=f"{name}-built", **request)
    assert [o.sha256 for o in loaded.outputs] == [o.sha256 for o in built.outputs]


def test_a_qwen25_vl_processor_component_loads_image_only(tmp_path):
    """Kandinsky 5 and 6 name a ``Qwen2_5_VLProcessor`` as their ``tokenizer`` component."""
    images = Qwen2VLImageProcessorPil(min_pixels=56 * 56, max_pixels=56 * 56)
    saved = ImageOnlyQwen2_5_VLProcessor(image_processor=images, tokenizer=qwen_vl_tokenizer())
    saved.save_pretrained(tmp_path / "tokenizer")
    index = {"_class_name": "Kandinsky5T2IPipeline", "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"]}
    (tmp_path / "model_index.json").write_text(json.dumps(index))
    _as_released(tmp_path, "tokenizer", "Qwen2_5_VLProcessor", "Qwen2VLVideoProcessor")
    (loaded,) = image_only_processors(tmp_path).values()
    assert type(loaded) is ImageOnlyQwen2_5_VLProcessor and loaded.get_attributes() == ["image_processor", "tokenizer"]
    assert loaded.image_processor.to_dict() == saved.image_processor.to_dict()
    assert (loaded.image_token_id, loaded.video_token_id) == (saved.image_token_id, saved.video_token_id)
    assert loaded.tokenizer("a red circle").input_ids == saved.tokenizer("a red circle").input_ids
