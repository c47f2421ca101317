"""The speed stack through the engine: torchao int8 weight-only, regional compile without recompiles,
and clear start-up errors for settings this device cannot run."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from client_sdk import CachePolicy, Client
from engine_service.metrics import psnr

#: The module's server compiles at warm-up (one and two outputs), which on two busy cores can take
#: longer than the suite's 300 s per test; the first test pays for it.
pytestmark = pytest.mark.timeout(600)

PROMPT = "a red circle on a white background"
DITSERVE = [sys.executable, "-m", "engine_service"]


@pytest.fixture(scope="module")
def speed_server():
    """The builtin default model three times: as loaded, int8 weight-only (transformer blocks and text
    encoders), and regionally compiled."""
    import torch._dynamo

    from engine_service.bootstrap import ModelSource, build_engine
    from engine_service.config import ServerConfig
    from engine_service.quant import SpeedConfig
    from engine_service.server.background import BackgroundServer

    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    sources = [
        ModelSource("plain"),
        ModelSource("int8", speed=SpeedConfig(quantize="int8-weight-only", quantize_text_encoder=True)),
        # The eager backend traces the blocks through dynamo (guards, recompiles, fullgraph) without AOT
        # autograd or code generation, which the inductor test below covers once.
        ModelSource("compiled", speed=SpeedConfig(compile=True, compile_backend="eager")),
    ]
    # One warm-up size: batch and sequence dimensions are dynamic, so other sizes need no graph of their own.
    engine = build_engine(sources, device="cpu", warmup_sizes=((64, 64),))
    torch._dynamo.config.recompile_limit = 8  # torch's default, whatever an earlier test set
    server = BackgroundServer(engine, ServerConfig(host="127.0.0.1", port=0)).start()
    yield server
    server.stop()


def _pixels(result) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(result.outputs[0].data)).convert("RGB"))


def _graphs() -> int:
    import torch._dynamo

    return torch._dynamo.utils.counters["stats"]["unique_graphs"]


def test_int8_weight_only_stays_close_to_full_precision(speed_server):
    with Client(speed_server.address, timeout=120) as client:
        reference = client.generate(PROMPT, model="plain", seed=3)
        quantized = client.generate(PROMPT, model="int8", seed=3)
    value = psnr(_pixels(reference), _pixels(quantized))
    # Quantized, so not bit for bit; still the same picture.
    assert 30.0 <= value < float("inf"), value


def test_compiled_blocks_build_their_graphs_at_warm_up_and_never_recompile(speed_server):
    import torch._dynamo

    built = _graphs()
    assert built > 0, "warm-up compiled nothing"
    frames = torch._dynamo.utils.counters["frames"]["total"]
    with Client(speed_server.address, timeout=120) as client:
        plain = client.generate(PROMPT, model="plain", seed=4, num_inference_steps=6)
        results = [
            client.generate(PROMPT, model="compiled", seed=4, num_inference_steps=6),
            client.generate(PROMPT, model="compiled", seed=4, num_inference_steps=9, width=48, height=48),
            client.generate(PROMPT, model="compiled", seed=4, num_inference_steps=6, cache=CachePolicy("fast")),
            # Warm-up ran one and two outputs: a batch of three uses the two-output graphs.
            client.generate(PROMPT, model="compiled", seed=4, num_inference_steps=2, num_outputs=3),
            client.generate(
                PROMPT, model="compiled", seed=4, num_inference_steps=8, cache=CachePolicy.parse("dbcache")
            ),
            client.generate(PROMPT, model="compiled", seed=4, num_inference_steps=6),
        ]
    assert results[2].cache_stats.cached_steps > 0 and len(results[3].outputs) == 3
    assert _graphs() == built and torch._dynamo.utils.counters["frames"]["total"] == frames
    assert dict(torch._dynamo.utils.counters["recompiles"]) == {}
    # The compiled blocks compute what the eager ones do.
    assert psnr(_pixels(plain), _pixels(results[0])) > 40
    assert results[0].outputs[0].sha256 == results[-1].outputs[0].sha256
    # Batch and sequence dimensions are dynamic: a size that was not warmed up runs the same graphs.
    with Client(speed_server.address, timeout=120) as client:
        client.generate(PROMPT, model="compiled", seed=4, num_inference_steps=2, width=32, height=40)
    assert _graphs() == built


#: Squares and non-squares from 16 to 128 pixels, none of them warmed up.
TWELVE_SIZES = [(16, 16), (32, 32), (80, 80), (128, 128), (24, 40), (40, 24), (96, 56), (56, 96)]
TWELVE_SIZES += [(16, 128), (128, 16), (72, 104), (112, 64)]


def test_a_compiled_model_answers_every_size_and_stats_count_compiled_calls(speed_server):
    """Twelve sizes in a row: each OK (none fails on a recompile limit), all compiled, and Stats say so."""
    with Client(speed_server.address, timeout=120) as client:
        before = client.stats(model="compiled").models[0]
        for width, height in TWELVE_SIZES:
            result = client.generate(
                PROMPT, model="compiled", seed=2, num_inference_steps=2, width=width, height=height
            )
            assert (result.outputs[0].width, result.outputs[0].height) == (width, height)
        after = client.stats(model="compiled").models[0]
        plain = client.stats(model="plain").models[0]
    assert len(set(TWELVE_SIZES)) == 12
    assert after.compiled_calls - before.compiled_calls == 2 * len(TWELVE_SIZES)  # one call per step
    assert after.eager_calls == before.eager_calls == 0
    assert 0 < after.compile_graphs <= before.compile_graphs + 4  # dynamic shapes: few graphs, if any, are new
    assert (plain.compile_graphs, plain.compiled_calls, plain.eager_calls) == (0, 0, 0)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--quantize", "int3"], "unknown scheme 'int3'"),
        (["--quantize", "float8"], "needs a CUDA device"),
        (["--quantize", "int4-weight-only"], "needs a CUDA device"),
        (["--quantize", "nomodel=int8-dynamic"], "no model named 'nomodel'"),
        (["--quantize-text-encoder"], "needs --quantize"),
        (["--attention-backend", "flash"], "needs an accelerator"),
        (["--attention-backend", "warp"], "unknown backend 'warp'"),
        (["--attention-backend", "flash_hub"], "model hub"),
        (["--offload", "model"], "CUDA device"),
        (["--offload", "sideways"], "unknown mode 'sideways'"),
        (["--compile", "--compile-mode", "fastest"], "unknown mode 'fastest'"),
        (["--compile", "--compile-backend", "eager", "--compile-mode", "max-autotune"], "inductor backend only"),
        (["--warmup-size", "60x64"], "multiples of 8"),
        (["--warmup-size", "big"], "WIDTHxHEIGHT"),
    ],
)
def test_unsupported_speed_settings_stop_start_up_clearly(flags, message, capsys):
    from engine_service.cli import main

    assert main(["serve", "--port", "0", "--device", "cpu", *flags]) == 2
    assert message in capsys.readouterr().err


def test_the_speed_flags_start_a_serving_engine(tmp_path):
    """One real ``ditserve serve`` with int8 and compile flags reaches SERVING and answers."""
    from tests.conftest import free_port, wait_serving

    port = free_port()
    process = subprocess.Popen(
        [*DITSERVE, "serve", "--port", str(port), "--device", "cpu", "--quantize", "int8-dynamic"]
        + ["--quantize-text-encoder", "--compile", "--compile-backend", "eager", "--attention-backend", "native"]
        + ["--warmup-size", "32x32"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_serving(f"127.0.0.1:{port}", 120, process)
        with Client(f"127.0.0.1:{port}", timeout=60) as client:
            result = client.generate(PROMPT, width=32, height=32, seed=1)
        assert result.outputs[0].width == 32
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    for logged in ("int8-dynamic on", "of text_encoder_2", "compiled with eager", "attention backend native"):
        assert logged in stderr


def test_inductor_compiles_at_warm_up_saves_its_cache_and_matches_eager(speed_server, tmp_path, monkeypatch):
    """The real backend once (about a minute on CPU): generated kernels, the saved compile cache, no recompiles."""
    import torch._dynamo

    for variable in ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR"):  # the compile cache points them at its directory
        monkeypatch.setenv(variable, str(tmp_path / "before"))

    from engine_service.bootstrap import ModelSource, build_engine
    from engine_service.config import ServerConfig
    from engine_service.quant import SpeedConfig
    from engine_service.server.background import BackgroundServer

    cache_dir = tmp_path / "compile-cache"
    speed = SpeedConfig(compile=True, compile_backend="inductor")
    engine = build_engine([ModelSource("inductor", speed=speed)], device="cpu", compile_cache=cache_dir)
    with BackgroundServer(engine, ServerConfig(host="127.0.0.1", port=0)) as server:
        assert (cache_dir / "artifacts.bin").stat().st_size > 0
        assert any((cache_dir / "inductor").iterdir())
        built = _graphs()
        with Client(server.address, timeout=120) as client:
            compiled = client.generate(PROMPT, seed=5)
            cached = client.generate(PROMPT, seed=5, cache=CachePolicy("fast"))
        assert _graphs() == built and dict(torch._dynamo.utils.counters["recompiles"]) == {}
        assert cached.cache_stats.cached_steps > 0
    with Client(speed_server.address, timeout=120) as client:
        eager = client.generate(PROMPT, model="plain", seed=5)
    assert psnr(_pixels(eager), _pixels(compiled)) > 40


def test_the_speed_stack_reaches_every_denoising_transformer():
    """A pipeline's second transformer (here Ideogram 4's, of the unconditional branch; Wan 2.2 A14B's
    low-noise expert alike) is quantized and compiled like ``transformer``: every call of either runs
    compiled blocks, with int8 weights."""
    case_name, second = "ideogram4", "unconditional_transformer"
    import torch
    from tiny_families import all_cases

    from engine_service.config import Limits
    from engine_service.models import model_from_pipeline
    from engine_service.quant import SpeedConfig
    from engine_service.runtime.engine import AsyncEngine
    from engine_service.server.background import BackgroundServer

    case = next(c for c in all_cases() if c.name == case_name)
    pipeline = case.build()
    calls = {"transformer": 0, second: 0}
    for name in calls:
        getattr(pipeline, name).register_forward_pre_hook(
            lambda *_, name=name: calls.__setitem__(name, calls[name] + 1)
        )
    speed = SpeedConfig(compile=True, compile_backend="eager", quantize="int8-weight-only")
    model = model_from_pipeline(case.name, pipeline, torch.device("cpu"), case.defaults, speed)
    engine = AsyncEngine({case.name: model}, case.name, Limits(), "cpu")
    with BackgroundServer(engine) as server, Client(server.address, timeout=120) as client:
        before = client.stats(case.name).models[0]
        counted = dict(calls)
        client.generate("a red circle", model=case.name, seed=1, guidance_scale=4.0)
        after = client.stats(case.name).models[0]
    ran = {name: calls[name] - counted[name] for name in calls}
    assert ran[second] > 0, ran  # the request reached the second transformer
    assert after.compiled_calls - before.compiled_calls == sum(ran.values())
    assert after.eager_calls == 0
    for name in calls:
        blocks = getattr(pipeline, name).get_submodule(model.family.block_lists[0])
        weights = [m.weight for m in blocks.modules() if isinstance(m, torch.nn.Linear)]
        assert weights and all(type(w).__module__.startswith("torchao") for w in weights), name
