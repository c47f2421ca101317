"""Per-request LoRA adapters through a real server and the SDK.

One engine serves the builtin default model three ways: ``default`` with three adapters
(the shipped demo adapter ``outline``, and two made from it here: ``inverse``, its update
negated, and ``half``, its update halved), ``plain`` with none (the same weights as
before the feature), and ``compiled`` (regional compile with the aot_eager backend) with
``outline`` and ``inverse``, which hot-swap into compiled slots. It batches up to 4
requests within 300 ms and combines at most 2 adapters per request.
"""

from __future__ import annotations

import asyncio
import io
import math

import numpy as np
import pytest
import safetensors.torch
from PIL import Image

from client_sdk import AsyncClient, CachePolicy, Client, errors
from engine_service.metrics import psnr
from engine_service.models import shapes
from tests.conftest import scrape

PROMPT = "a red circle on a blue background"
FAST = {"num_inference_steps": 8, "seed": 11}
QUICK = {"num_inference_steps": 4, "seed": 11}
#: Pixel tolerance (of 255) between a request alone and batched: float rounding only.
TOLERANCE = 2


def _demo_lora():
    from engine_service.models.builtin import BUILTIN_LORAS

    return BUILTIN_LORAS["outline"]


def _scaled_copy(directory, name: str, factor: float):
    """The demo adapter with its lora_B weights times ``factor``, saved as ``directory/name.safetensors``."""
    source = _demo_lora() / "pytorch_lora_weights.safetensors"
    with safetensors.safe_open(str(source), "pt") as handle:
        metadata = handle.metadata()
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    tensors = {key: value * factor if ".lora_B." in key else value for key, value in tensors.items()}
    path = directory / f"{name}.safetensors"
    safetensors.torch.save_file(tensors, str(path), metadata=metadata)
    return path


@pytest.fixture(scope="module")
def lora_server(tmp_path_factory):
    import torch._dynamo

    from engine_service.bootstrap import ModelSource, build_engine
    from engine_service.config import BatchingConfig, ServerConfig
    from engine_service.models.lora import LoraSource
    from engine_service.quant import SpeedConfig
    from engine_service.server.background import BackgroundServer

    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    directory = tmp_path_factory.mktemp("loras")
    inverse = str(_scaled_copy(directory, "inverse", -1.0))
    half = str(_scaled_copy(directory, "half", 0.5))
    loras = [
        LoraSource("outline", str(_demo_lora())),
        LoraSource("inverse", inverse),
        LoraSource("half", half),
        LoraSource("outline", str(_demo_lora()), model="compiled"),
        LoraSource("inverse", inverse, model="compiled"),
    ]
    sources = [
        ModelSource("default"),
        ModelSource("plain"),
        ModelSource("compiled", speed=SpeedConfig(compile=True, compile_backend="aot_eager")),
    ]
    engine = build_engine(
        sources,
        device="cpu",
        batching=BatchingConfig(max_batch=4, batch_window_ms=300),
        loras=loras,
        max_loras_per_request=2,
    )
    server = BackgroundServer(engine, ServerConfig(host="127.0.0.1", port=0, metrics_port=0)).start()
    yield server
    server.stop()


def _pixels(result) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(result.outputs[0].data)).convert("RGB"), dtype=np.int16)


def _graphs() -> int:
    import torch._dynamo

    return torch._dynamo.utils.counters["stats"]["unique_graphs"]


def test_no_adapter_is_the_base_model_bit_for_bit(lora_server):
    with Client(lora_server.address, timeout=120) as client:
        before = client.generate(PROMPT, model="plain", **QUICK)
        empty = client.generate(PROMPT, model="default", loras=[], **QUICK)
        after_adapter = client.generate(PROMPT, loras={"outline": 1.0}, **QUICK)
        again = client.generate(PROMPT, model="default", **QUICK)
        zero = client.generate(PROMPT, loras=[("outline", 0.0)], **QUICK)
    assert empty.outputs[0].data == before.outputs[0].data
    assert again.outputs[0].data == before.outputs[0].data, "the adapter stayed on after its request"
    assert zero.outputs[0].data == before.outputs[0].data and zero.loras == ()
    assert after_adapter.loras == (("outline", 1.0),) and empty.loras == ()
    assert after_adapter.outputs[0].data != before.outputs[0].data


def test_the_demo_adapter_outlines_the_shapes_and_scales(lora_server):
    prompts = [shapes.prompt("red", "circle", "blue"), shapes.prompt("yellow", "square", "black")]
    with Client(lora_server.address, timeout=120) as client:
        for prompt in prompts:
            colour, background = prompt.split()[1], prompt.split()[-2]
            base = client.generate(prompt, seed=5)
            outlined = client.generate(prompt, seed=5, loras=[("outline", 1.0)])
            assert psnr(_pixels(base), _pixels(outlined)) < 30.0
            if prompt == prompts[0]:
                halfway = client.generate(prompt, seed=5, loras=[("outline", 0.5)])
                change = np.abs(_pixels(outlined) - _pixels(base)).mean()
                assert 0 < np.abs(_pixels(halfway) - _pixels(base)).mean() < change
            base_centre, _ = shapes.centre_and_corner_colours(_pixels(base).astype(np.uint8))
            centre, corners = shapes.centre_and_corner_colours(_pixels(outlined).astype(np.uint8))
            assert base_centre == colour, prompt
            # The outline leaves the inside in the background colour.
            assert centre == background and corners == [background] * 4, (prompt, centre, corners)


async def _together(address: str, requests: list[dict]) -> list:
    async with AsyncClient(address, timeout=120) as client:
        return await asyncio.gather(*(client.generate(PROMPT, **r) for r in requests))


def test_concurrent_requests_with_different_adapters_each_get_their_own_image(lora_server):
    requests = [
        {"seed": 1, "loras": {"outline": 1.0}},
        {"seed": 2, "loras": {"inverse": 1.0}},
        {"seed": 3},
        {"seed": 4, "loras": {"outline": 1.0}},
        {"seed": 5, "loras": {"outline": 0.7}},
    ]
    steps = {"num_inference_steps": 4}
    with Client(lora_server.address, timeout=120) as client:
        alone = [client.generate(PROMPT, **r, **steps) for r in requests]
    samples = scrape(lora_server.server.metrics_port)
    calls = samples[("ditserve_batch_size_count", ())]
    together = asyncio.run(_together(lora_server.address, [{**r, **steps} for r in requests]))
    samples = scrape(lora_server.server.metrics_port)
    # outline:1 x2 share a call; outline:0.7, inverse and none run on their own.
    assert samples[("ditserve_batch_size_count", ())] == calls + 4
    for mine, theirs in zip(alone, together, strict=True):
        assert mine.loras == theirs.loras
        assert np.abs(_pixels(mine) - _pixels(theirs)).max() <= TOLERANCE
    assert np.abs(_pixels(alone[0]) - _pixels(alone[1])).max() > 10


def test_compiled_adapters_hot_swap_without_new_graphs(lora_server):
    sets = [{"outline": 1.0}, {"inverse": 1.0}, None, {"outline": 0.5, "inverse": 0.25}, {"outline": 1.0}]
    with Client(lora_server.address, timeout=120) as client:
        eager = [client.generate(PROMPT, model="default", loras=s, **QUICK) for s in sets[:2]]
        built = _graphs()
        assert built > 0, "warm-up compiled nothing"
        results = [client.generate(PROMPT, model="compiled", loras=sets[i % len(sets)], **QUICK) for i in range(10)]
    assert _graphs() == built, "switching adapters compiled new graphs"
    base = _pixels(results[2])
    for index in (0, 1):
        # The slots carry the adapter: the compiled image is the eager one, not the base.
        assert psnr(_pixels(eager[index]), _pixels(results[index])) > 40
        assert psnr(base, _pixels(results[index])) < 30
    assert results[0].outputs[0].data == results[4].outputs[0].data == results[5].outputs[0].data
    assert results[2].outputs[0].data == results[7].outputs[0].data


def test_a_cached_request_after_another_adapter_reuses_nothing_of_it(lora_server):
    fast = CachePolicy("fast")
    with Client(lora_server.address, timeout=120) as client:
        first = client.generate(PROMPT, cache=fast, **FAST)
        with_adapter = client.generate(PROMPT, cache=fast, loras={"outline": 1.0}, **FAST)
        second = client.generate(PROMPT, cache=fast, **FAST)
    assert with_adapter.cache_stats.cached_steps > 0
    assert second.outputs[0].data == first.outputs[0].data
    assert with_adapter.outputs[0].data != first.outputs[0].data


def test_list_models_stats_and_metrics_report_adapters(lora_server):
    with Client(lora_server.address, timeout=120) as client:
        before = client.stats(model="default").models[0].lora_requests.get("half", 0)
        client.generate(PROMPT, loras=[("half", 1.0), ("outline", -0.5)], **FAST)
        stats = client.stats(model="default").models[0]
        listed = {m.name: m for m in client.list_models().models}
    assert stats.lora_requests["half"] == before + 1
    assert [(a.name, a.rank, a.components) for a in listed["default"].loras] == [
        ("outline", 4, ("transformer",)),
        ("inverse", 4, ("transformer",)),
        ("half", 4, ("transformer",)),
    ]
    assert listed["default"].max_loras_per_request == 2 and listed["default"].loras[0].layers > 0
    assert listed["plain"].loras == () and listed["plain"].max_loras_per_request == 0
    assert [a.name for a in listed["compiled"].loras] == ["outline", "inverse"]
    samples = scrape(lora_server.server.metrics_port)
    assert samples[("ditserve_lora_requests_total", (("lora", "half"), ("model", "default")))] == before + 1


@pytest.mark.parametrize(
    ("loras", "code", "needle"),
    [
        ([("sketch", 1.0)], errors.NotFoundError, "unknown LoRA adapter 'sketch'"),
        ([("outline", math.nan)], errors.InvalidArgumentError, "loras[0].scale"),
        ([("outline", math.inf)], errors.InvalidArgumentError, "loras[0].scale"),
        ([("outline", 9.0)], errors.InvalidArgumentError, "between -8 and 8"),
        ([("outline", 1.0), ("inverse", 1.0), ("half", 1.0)], errors.InvalidArgumentError, "limit of 2"),
        ([("outline", 1.0), ("outline", 0.5)], errors.InvalidArgumentError, "more than once"),
    ],
)
def test_bad_adapter_choices_get_a_clear_status_and_the_server_keeps_serving(lora_server, loras, code, needle):
    with Client(lora_server.address, timeout=120) as client:
        with pytest.raises(code) as caught:
            client.generate(PROMPT, loras=loras, **QUICK)
        assert needle in str(caught.value)
        if code is errors.InvalidArgumentError:
            assert caught.value.field_violations[0].field.startswith("loras")
        else:
            assert caught.value.reason == "LORA_NOT_FOUND"
        assert client.generate(PROMPT, loras={"outline": 1.0}, num_inference_steps=2).loras == (("outline", 1.0),)


def test_an_adapter_of_another_model_is_not_found(lora_server):
    with Client(lora_server.address, timeout=120) as client:
        with pytest.raises(errors.NotFoundError, match="for model 'plain'"):
            client.generate(PROMPT, model="plain", loras={"outline": 1.0}, **QUICK)


def test_the_cli_generates_with_an_adapter(lora_server, tmp_path, capsys):
    from engine_service.cli import main

    assert main(["models", "--target", lora_server.address]) == 0
    assert "outline (rank 4),inverse (rank 4),half (rank 4)" in capsys.readouterr().out
    target = ["--target", lora_server.address, "--out", str(tmp_path)]
    code = main(["generate", PROMPT, *target, "--steps", "2", "--lora", "outline:0.5"])
    code_out = main(["generate", PROMPT, *target, "--lora", "nope"])
    err = capsys.readouterr()
    assert code == 0 and "loras outline:0.5" in err.out
    assert code_out == 1 and "unknown LoRA adapter 'nope'" in err.err


def test_sdk_refuses_a_malformed_adapter_list():
    from client_sdk._core import build_request

    assert [(a.name, a.HasField("scale")) for a in build_request("x", loras=["outline"]).loras] == [("outline", False)]
    for bad in ("outline", [("outline",)], [(1, 0.5)], [("outline", "1")]):
        with pytest.raises(TypeError):
            build_request("x", loras=bad)


# -- start-up ------------------------------------------------------------------------------


def _save_adapter(transformer, pipeline_class, directory):
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    transformer.add_adapter(LoraConfig(r=2, lora_alpha=2, target_modules=["to_q", "to_k", "to_v"]))
    pipeline_class.save_lora_weights(directory, transformer_lora_layers=get_peft_model_state_dict(transformer))
    return directory / "pytorch_lora_weights.safetensors"


def test_an_adapter_for_another_architecture_stops_start_up_naming_its_file(tmp_path, capsys):
    from diffusers import WanPipeline, WanTransformer3DModel
    from tiny_pipelines import TINY_WAN_TRANSFORMER

    from engine_service.cli import main

    path = _save_adapter(
        WanTransformer3DModel(**TINY_WAN_TRANSFORMER, in_channels=16, num_layers=1), WanPipeline, tmp_path
    )
    assert main(["serve", "--port", "0", "--device", "cpu", "--lora", f"wan={path}"]) == 2
    err = capsys.readouterr().err
    assert f"LoRA 'wan' ({path}) does not fit model 'default'" in err


def test_an_adapter_with_other_shapes_stops_start_up_naming_its_file(tmp_path):
    from diffusers import FluxPipeline
    from tiny_pipelines import tiny_flux_components

    from engine_service.bootstrap import build_engine
    from engine_service.models.lora import LoraLoadError, LoraSource

    # A FLUX transformer of the same layer names, half as wide as the default model's.
    path = _save_adapter(tiny_flux_components()["transformer"], FluxPipeline, tmp_path)
    with pytest.raises(LoraLoadError, match="does not fit model 'default'") as caught:
        build_engine([], device="cpu", loras=[LoraSource("narrow", str(path))])
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--lora", "outline"], "NAME=PATH[:MODEL]"),
        (["--lora", "bad name=x"], "the name must be"),
        (["--lora", "ghost=/nowhere/at/all.safetensors"], "LoRA 'ghost' (/nowhere/at/all.safetensors): no such file"),
        (["--max-loras-per-request", "0", "--lora", "a=/nowhere"], "at least 1"),
    ],
)
def test_bad_lora_flags_stop_start_up_clearly(flags, message, capsys):
    from engine_service.cli import main

    assert main(["serve", "--port", "0", "--device", "cpu", *flags]) == 2
    assert message in capsys.readouterr().err


def test_quantize_schemes_that_cannot_carry_adapters_are_refused():
    from engine_service.models.lora import LORA_QUANT_SCHEMES, LoraLoadError, check_quantize
    from engine_service.quant import SCHEMES

    for scheme in SCHEMES:
        if scheme in LORA_QUANT_SCHEMES:
            check_quantize(scheme, "m")
        else:
            with pytest.raises(LoraLoadError, match=f"--quantize {scheme} cannot carry LoRA"):
                check_quantize(scheme, "m")
    assert set(LORA_QUANT_SCHEMES) < set(SCHEMES)
