"""Work for a 2-rank gloo process group spawned by tests/test_parallel.py.

Every rank runs :func:`run_checks`; rank 0 also computes the single-process
references (no collectives involved). Results go to ``rank{N}.json`` in the
output folder, where the tests read them.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import pathlib
import traceback

import torch
import torch.distributed as dist

MODES = ("ulysses=2", "ring=2", "tp=2")
#: Thresholds at which the tiny pipelines cache some steps of 8 and compute others.
THRESHOLDS = {"flux": 0.4, "wan": 0.1}
#: Splits checked for a family entry's claims: context parallel both ways, tensor parallel.
CONTEXT_MODES = ("ulysses=2", "ring=2")
TENSOR_MODES = ("tp=2",)
#: Sizes other than the case's default: at 32x32 tiny Qwen-Image (16x VAE, 2x2 packing) has one image
#: token, which two ranks cannot share.
CASE_SIZES = {"qwen-image": (64, 64)}
#: Steps of a case's run (two-expert cases run their default steps, which reach both experts).
CASE_STEPS = 2
#: FLUX at 48x48: 3x3 = 9 image tokens, an odd sequence for context parallel.
FLUX_SIZE = 48
#: Wan at 16x16 with 9 frames: 3 latent frames of one token each, odd as well.
WAN_FRAMES = 9


#: The speed stack split each way and whole, on the tiny FLUX case through the engine's worker:
#: name -> (split, SpeedConfig fields, cache preset). Every speed flag and several cache policies.
#: The whole model runs the same stack uncompiled: the eager compile backend runs the same ops (and
#: tracing the whole model too would double the time of these runs). Ring with compile runs the same
#: opaque attention op as Ulysses; it is left out for time.
HYBRID_RUNS = {
    "ulysses=2 compile int8-weight-only native-attention fast": (
        "ulysses=2",
        {"compile": True, "compile_backend": "eager", "quantize": "int8-weight-only", "attention_backend": "native"},
        "fast",
    ),
    "tp=2 compile int8-weight-only text-encoder slow": (
        "tp=2",
        {"compile": True, "compile_backend": "eager", "quantize": "int8-weight-only", "quantize_text_encoder": True},
        "slow",
    ),
}
#: The same on four ranks: context x tensor parallel on one 2-D mesh, on a FLUX with 4 attention heads
#: (tensor parallel leaves 2 per rank for Ulysses to split; the 2-head case refuses this split).
HYBRID_RUNS_4 = {
    "ulysses=2,tp=2 compile int8-weight-only fast": (
        "ulysses=2,tp=2",
        {"compile": True, "compile_backend": "eager", "quantize": "int8-weight-only"},
        "fast",
    ),
}
HYBRID_STEPS = 8
#: 48x48: 9 image tokens, an odd sequence.
HYBRID_SIZE = 48


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a.float() - b.float()) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def flux_image(pipe, steps: int = 3) -> torch.Tensor:
    with torch.inference_mode():
        return pipe(
            "a red circle",
            width=FLUX_SIZE,
            height=FLUX_SIZE,
            num_inference_steps=steps,
            guidance_scale=3.5,
            max_sequence_length=64,
            generator=torch.Generator().manual_seed(3),
            output_type="pt",
        ).images


def wan_video(pipe, steps: int = 3) -> torch.Tensor:
    with torch.inference_mode():
        return pipe(
            prompt="a cat",
            negative_prompt="bad",
            num_inference_steps=steps,
            height=16,
            width=16,
            num_frames=WAN_FRAMES,
            guidance_scale=6.0,
            max_sequence_length=16,
            generator=torch.Generator().manual_seed(0),
            output_type="pt",
        ).frames


def case_modes() -> dict[str, tuple[str, ...]]:
    """Tiny case (tests/tiny_families) -> the splits its family entry claims, for every case but the
    two checked by name above ("flux", "wan"): a claim is never made without being run."""
    from tiny_families import all_cases

    from engine_service.models.registry import family_for_pipeline

    modes = {}
    for case in all_cases():
        family = family_for_pipeline(case.pipeline_class)
        claimed = CONTEXT_MODES * family.context_parallel + TENSOR_MODES * family.tensor_parallel
        if claimed and case.name not in ("flux", "wan"):
            modes[case.name] = claimed
    return modes


def _families():
    from tiny_pipelines import build_tiny_flux, build_tiny_wan

    return {"flux": (build_tiny_flux, flux_image), "wan": (build_tiny_wan, wan_video)}


def _split(pipe, family: str, mode: str) -> None:
    from engine_service.parallel import ParallelConfig, plan_for
    from engine_service.parallel.parallelize import parallelize

    parallelize(pipe, family, plan_for(family), ParallelConfig.parse(mode), torch.device("cpu"))


def _cached_steps(pipe, family: str, run) -> dict:
    from engine_service import cache

    config = cache.DBCacheConfig(
        Fn_compute_blocks=1, Bn_compute_blocks=0, residual_diff_threshold=THRESHOLDS[family], max_warmup_steps=1
    )
    cache.enable_cache(pipe, config)
    try:
        run(pipe, steps=8)
        stats = cache.summary(pipe, logging=False)[0]
        return {"cached": sorted(stats.cached_steps), "diffs": stats.residual_diffs}
    finally:
        cache.disable_cache(pipe)


def _rank_local_diffs(rank: int) -> dict:
    """Each rank holds a different slice (of a different length) of one residual pair."""
    from engine_service.cache.context import relative_l1

    previous = torch.ones(1, 3 if rank == 0 else 2, 4)
    current = previous + (0.0 if rank == 0 else 0.5)  # rank 0 alone: no change; rank 1 alone: 0.5
    whole_previous = torch.ones(1, 5, 4)
    whole_current = torch.cat([torch.ones(1, 3, 4), torch.full((1, 2, 4), 1.5)], dim=1)
    local = float((previous - current).abs().mean() / previous.abs().mean())
    whole = float((whole_previous - whole_current).abs().mean() / whole_previous.abs().mean())
    return {"local": local, "reduced": relative_l1(previous, current), "whole": whole}


def _text_encoders() -> dict:
    """T5 (ReLU and gated MLP) and UMT5 encoders split 2 ways against whole ones: max abs difference."""
    from tiny_pipelines import TINY_T5
    from torch.distributed.device_mesh import init_device_mesh
    from transformers import T5Config, T5EncoderModel, UMT5Config, UMT5EncoderModel

    from engine_service.parallel.parallelize import apply_tensor_plan
    from engine_service.parallel.plans import T5_ENCODER_PLAN

    mesh = init_device_mesh("cpu", (2,))
    config = {**TINY_T5, "d_ff": 38}  # the MLP width must split evenly
    builds = {
        "t5": lambda: T5EncoderModel(T5Config(**config)),
        "t5-gated": lambda: T5EncoderModel(T5Config(**config, feed_forward_proj="gated-gelu")),
        "umt5": lambda: UMT5EncoderModel(UMT5Config(**config)),
    }
    ids = torch.tensor([[5, 17, 300, 2, 9, 1, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 1, 0, 0]])
    results = {}
    for name, build in builds.items():
        torch.manual_seed(0)
        encoder = build().eval()
        with torch.inference_mode():
            whole = encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        split = apply_tensor_plan(encoder, T5_ENCODER_PLAN.layers, mesh, T5_ENCODER_PLAN.per_rank, optional=True)
        with torch.inference_mode():
            output = encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        q = encoder.encoder.block[0].layer[0].SelfAttention.q.weight
        results[name] = {
            "max_diff": float((output - whole).abs().max()),
            "layers": split,
            "local_rows": q.to_local().shape[0],
            "rows": q.shape[0],
        }
    return results


def _case_run(case, mode: str | None, speed=None, cache_plan=None, steps: int | None = None, size=None) -> dict:
    """The tiny case's request run once through the engine's local executor, split as ``mode`` says
    (None: whole).

    Returns the output images (frames of a video) and, as evidence of the split, per transformer that
    ran (Wan 2.2: two experts): the tokens reaching its output projection on this rank, and whether
    its weights are distributed. With ``speed`` (a SpeedConfig), the stack is applied after the split;
    ``cache_plan``, ``steps`` and ``size`` replace the request's defaults.
    """
    import dataclasses
    import io

    import numpy as np
    from PIL import Image
    from tiny_families import input_image
    from torch.distributed.tensor import DTensor

    from engine_service import cache
    from engine_service.cache.presets import CachePlan
    from engine_service.jobs import OutputFormat
    from engine_service.models import model_from_pipeline
    from engine_service.parallel import ParallelConfig
    from engine_service.parallel.ranks import parallelize_models
    from engine_service.runtime.engine import warmup_spec
    from engine_service.runtime.executor import LocalExecutor
    from engine_service.runtime.worker import Member

    device = torch.device("cpu")
    model = model_from_pipeline(case.name, case.build(), device, case.defaults, speed, defer_speed=mode is not None)
    if mode is not None:
        parallelize_models({case.name: model}, ParallelConfig.parse(mode), device)
    transformers = {name: getattr(model.pipeline, name, None) for name in ("transformer", "transformer_2")}
    transformers = {name: t for name, t in transformers.items() if t is not None}
    tokens: dict[str, int] = {}

    def count_tokens(name: str):
        def hook(_module, args) -> None:  # returns nothing: the input goes on unchanged
            tokens.setdefault(name, args[0].shape[1])

        return hook

    hooks = [t.proj_out.register_forward_pre_hook(count_tokens(name)) for name, t in transformers.items()]
    images = tuple(
        (role, Image.open(io.BytesIO(input_image(role, size).data)).convert("L" if role == "mask" else "RGB"))
        for role, size in case.inputs
    )
    width, height = size or CASE_SIZES.get(case.name, (model.default_width, model.default_height))
    spec = dataclasses.replace(
        warmup_spec(model, width, height),
        request_id=f"{case.name}-{mode}",
        prompt="a red circle",
        negative_prompt="blurry" if model.family.uses_negative_prompt else "",
        num_inference_steps=steps or (CASE_STEPS if case.experts == 1 else model.default_steps),
        seed=3,
        output_format=OutputFormat.PNG_FRAMES if model.family.output_kind == "video" else OutputFormat.PNG,
        input_images=images,
        # A threshold no diff falls under: every step is computed and its diff recorded.
        cache=cache_plan
        or CachePlan(
            cache.DBCacheConfig(
                Fn_compute_blocks=1, Bn_compute_blocks=0, residual_diff_threshold=1e-9, max_warmup_steps=1
            )
        ),
    )
    (decoded,) = LocalExecutor({case.name: model}).execute([Member(spec)])
    result = decoded.encode()
    for hook in hooks:
        hook.remove()
    return {
        "images": [np.array(Image.open(io.BytesIO(output.data)).convert("RGB")) for output in result.outputs],
        "tokens": tokens,
        "diffs": [[step.residual_diff, step.cfg_residual_diff] for step in result.steps],
        "distributed": {name: any(isinstance(p, DTensor) for p in t.parameters()) for name, t in transformers.items()},
        "cached_steps": [step.step for step in result.steps if step.cached],
        "compile": dataclasses.asdict(model.compile_stats) if model.compile_stats is not None else None,
    }


def build_four_head_flux():
    """The tiny FLUX case's pipeline with 4 attention heads of 16 channels instead of 2."""
    from diffusers import FluxPipeline, FluxTransformer2DModel
    from tiny_pipelines import tiny_flux_components

    torch.manual_seed(0)
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=16,
        num_layers=2,
        num_single_layers=4,
        attention_head_dim=16,
        num_attention_heads=4,
        joint_attention_dim=32,
        pooled_projection_dim=32,
        guidance_embeds=True,
        axes_dims_rope=[4, 4, 8],
    ).eval()
    return FluxPipeline(**tiny_flux_components(transformer=transformer))


def _hybrid(results: dict, runs: dict, build=None) -> None:
    """Each run of ``runs`` split and whole with the same speed stack and cache preset (on the tiny FLUX
    case, or the pipeline ``build`` makes)."""
    import dataclasses
    import time

    import torch._dynamo
    from tiny_families import all_cases

    from engine_service.cache.presets import make_plan
    from engine_service.quant import SpeedConfig

    (case,) = [case for case in all_cases() if case.name == "flux"]
    if build is not None:
        case = dataclasses.replace(case, build=build)
    for name, (mode, fields, preset) in runs.items():
        started = time.perf_counter()
        speed = SpeedConfig(**fields)
        plan = make_plan(preset, HYBRID_STEPS)
        outcome = {}
        whole = dataclasses.replace(speed, compile=False)
        for label, split, stack in (("whole", None, whole), ("split", mode, speed)):
            torch._dynamo.reset()  # the recompile limit counts per block class and process: start each run afresh
            run = _case_run(case, split, stack, plan, HYBRID_STEPS, (HYBRID_SIZE, HYBRID_SIZE))
            outcome[label] = {key: run[key] for key in ("cached_steps", "compile", "distributed", "tokens")}
            outcome[label]["images"] = run["images"]
        outcome["psnr"] = min(
            psnr(torch.from_numpy(a) / 255.0, torch.from_numpy(b) / 255.0)
            for a, b in zip(outcome["whole"].pop("images"), outcome["split"].pop("images"), strict=True)
        )
        outcome["seconds"] = time.perf_counter() - started
        results["hybrid"][name] = outcome


def _family_cases(results: dict) -> None:
    """Every case of case_modes() split each of its ways, compared on every rank with the whole model."""
    from tiny_families import all_cases

    cases = {case.name: case for case in all_cases()}
    for name, modes in case_modes().items():
        # Every rank runs the whole model: the cache reduces its diffs over the process group.
        whole = _case_run(cases[name], None)
        for mode in modes:
            split = _case_run(cases[name], mode)
            results["cases"][f"{name} {mode}"] = {
                "psnr": min(
                    psnr(torch.from_numpy(a) / 255.0, torch.from_numpy(b) / 255.0)
                    for a, b in zip(whole["images"], split["images"], strict=True)
                ),
                "tokens": {"whole": whole["tokens"], "split": split["tokens"]},
                "distributed": split["distributed"],
                "diffs": {"whole": whole["diffs"], "split": split["diffs"]},
            }


def run_checks(rank: int, world_size: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    # A rank that fails alone leaves the other waiting at a collective: end the wait instead of hanging.
    dist.init_process_group("gloo", rank=rank, world_size=world_size, timeout=datetime.timedelta(minutes=5))
    results: dict = {"psnr": {}, "cached_steps": {}, "cases": {}, "errors": []}
    try:
        results["diffs"] = _rank_local_diffs(rank)
        results["text_encoders"] = _text_encoders()
        for family, (build, run) in _families().items():
            reference = run(build()) if rank == 0 else None
            for mode in MODES:
                pipe = build()
                _split(pipe, family, mode)
                output = run(pipe)
                if rank == 0:
                    results["psnr"][f"{family} {mode}"] = psnr(output, reference)
            single = _cached_steps(build(), family, run)
            pipe = build()
            _split(pipe, family, "ulysses=2")
            results["cached_steps"][family] = {"single": single, "ulysses=2": _cached_steps(pipe, family, run)}
        _family_cases(results)
    except Exception:
        results["errors"].append(traceback.format_exc())
    pathlib.Path(out, f"rank{rank}.json").write_text(json.dumps(results))
    dist.destroy_process_group()


def run_hybrid_checks(rank: int, world_size: int, port: int, out: str) -> None:
    """The speed stack split: HYBRID_RUNS on two ranks, HYBRID_RUNS_4 (context x tensor parallel) on four."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world_size, timeout=datetime.timedelta(minutes=5))
    results: dict = {"hybrid": {}, "errors": []}
    try:
        if world_size == 2:
            _hybrid(results, HYBRID_RUNS)
        else:
            _hybrid(results, HYBRID_RUNS_4, build_four_head_flux)
    except Exception:
        results["errors"].append(traceback.format_exc())
    pathlib.Path(out, f"rank{rank}.json").write_text(json.dumps(results))
    dist.destroy_process_group()
