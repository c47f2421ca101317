"""Cache speedup on a FLUX.1-dev-size transformer: each static step mask against no cache.

Builds a FluxTransformer2DModel with FLUX.1-dev's configuration and random bf16
weights (no download), runs the 28-step denoising loop at 1024x1024 (4096 image +
512 text tokens) with a real flow-matching scheduler, and times it without cache
and with F1B0 plus each static step mask (slow / medium / fast / ultra). For each:
the speedup, the ideal speedup (steps / computed steps) and their ratio, and the
cost of a cached step next to the cost of one block. When cache-dit is installed,
the same masks run through it in the same process for comparison.

    python scripts/bench_cache.py                 # one GPU: the full-size model
    python scripts/bench_cache.py --tiny          # a small model on any device, to check the script
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time
import types

import torch
from diffusers import FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel

from engine_service import cache

FLUX_DEV = {
    "patch_size": 1,
    "in_channels": 64,
    "num_layers": 19,
    "num_single_layers": 38,
    "attention_head_dim": 128,
    "num_attention_heads": 24,
    "joint_attention_dim": 4096,
    "pooled_projection_dim": 768,
    "guidance_embeds": True,
    "axes_dims_rope": [16, 56, 56],
}
TINY = {**FLUX_DEV, "num_layers": 2, "num_single_layers": 4, "attention_head_dim": 16, "num_attention_heads": 4,
        "joint_attention_dim": 64, "pooled_projection_dim": 32, "axes_dims_rope": [4, 6, 6]}  # fmt: skip


def build(config: dict, device: torch.device, dtype: torch.dtype) -> FluxTransformer2DModel:
    """A random transformer of ``config``, allocated on ``device`` in ``dtype`` (no float32 copy on the way)."""
    torch.manual_seed(0)
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = FluxTransformer2DModel(**config)
    finally:
        torch.set_default_dtype(default)
    return model.eval().requires_grad_(False)


def inputs(config: dict, size: int, text_tokens: int, device, dtype) -> dict:
    side = size // 16  # 8x VAE, 2x2 packing
    g = torch.Generator(device="cpu").manual_seed(0)

    def randn(*shape):
        return torch.randn(*shape, generator=g).to(device, dtype)

    image_ids = torch.zeros(side, side, 3)
    image_ids[..., 1] = torch.arange(side)[:, None]
    image_ids[..., 2] = torch.arange(side)[None, :]
    return {
        "hidden_states": randn(1, side * side, config["in_channels"]),
        "encoder_hidden_states": randn(1, text_tokens, config["joint_attention_dim"]),
        "pooled_projections": randn(1, config["pooled_projection_dim"]),
        "img_ids": image_ids.reshape(-1, 3).to(device, dtype),
        "txt_ids": torch.zeros(text_tokens, 3, device=device, dtype=dtype),
        "guidance": torch.full((1,), 3.5, device=device, dtype=torch.float32),
    }


class Loop:
    """The denoising loop of a FLUX pipeline without text encoders and VAE: scheduler + transformer."""

    def __init__(self, transformer, batch: dict, steps: int):
        self.transformer = transformer
        self.scheduler = FlowMatchEulerDiscreteScheduler()
        self.batch = batch
        self.steps = steps

    def __call__(self) -> torch.Tensor:
        latents = self.batch["hidden_states"]
        self.scheduler.set_timesteps(self.steps, device=latents.device)
        rest = {k: v for k, v in self.batch.items() if k != "hidden_states"}
        for t in self.scheduler.timesteps:
            timestep = (t / 1000).expand(latents.shape[0]).to(latents.dtype)
            noise = self.transformer(hidden_states=latents, timestep=timestep, return_dict=False, **rest)[0]
            latents = self.scheduler.step(noise, t, latents, return_dict=False)[0]
        return latents


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device, repeats: int) -> float:
    """Median wall time of ``fn`` in seconds, after one warm-up call."""
    fn()
    sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def one_block_ms(transformer, batch, device, repeats: int) -> float:
    """Time of the first double-stream block on the loop's shapes, in milliseconds."""
    captured = {}

    def grab(module, args, kwargs):
        captured.update(kwargs)

    hook = transformer.transformer_blocks[0].register_forward_pre_hook(grab, with_kwargs=True)
    with torch.inference_mode():
        transformer(
            timestep=torch.ones(1, device=device, dtype=batch["hidden_states"].dtype), return_dict=False, **batch
        )
    hook.remove()
    block = transformer.transformer_blocks[0]
    with torch.inference_mode():
        return timed(lambda: block(**captured), device, repeats * 5) * 1000


@contextlib.contextmanager
def with_ditserve(loop: Loop, mask: list[int]):
    pipe = types.SimpleNamespace(transformer=loop.transformer, scheduler=loop.scheduler)
    config = cache.DBCacheConfig(
        Fn_compute_blocks=1, Bn_compute_blocks=0, steps_computation_mask=mask, steps_computation_policy="static"
    )
    cache.enable_cache(pipe, config)
    try:
        yield lambda: _only_cached_steps(cache.summary(pipe, logging=False))
    finally:
        cache.disable_cache(pipe)


@contextlib.contextmanager
def with_cache_dit(loop: Loop, mask: list[int]):
    import cache_dit

    config = cache_dit.DBCacheConfig(
        Fn_compute_blocks=1,
        Bn_compute_blocks=0,
        steps_computation_mask=mask,
        steps_computation_policy="static",
        num_inference_steps=loop.steps,
    )
    cache_dit.enable_cache(loop.transformer, cache_config=config)
    # A fresh context: the run starts at step 0 of the mask, whatever ran before.
    cache_dit.refresh_context(loop.transformer, cache_config=config, verbose=False)
    try:
        yield lambda: _only_cached_steps(cache_dit.summary(loop.transformer, logging=False))
    finally:
        cache_dit.disable_cache(loop.transformer)


def _only_cached_steps(stats) -> int:
    return sum(len(s.cached_steps) for s in stats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="a small model, to check the script anywhere")
    parser.add_argument("--size", type=int, default=1024, help="image side in pixels (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=28)
    parser.add_argument("--text-tokens", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    config = TINY if args.tiny else FLUX_DEV
    size = min(args.size, 256) if args.tiny else args.size
    text_tokens = min(args.text_tokens, 64) if args.tiny else args.text_tokens
    transformer = build(config, device, dtype)
    batch = inputs(config, size, text_tokens, device, dtype)
    loop = Loop(transformer, batch, args.steps)
    blocks = config["num_layers"] + config["num_single_layers"]
    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    print(f"# {name}, {dtype}, {blocks} blocks, {size}x{size} ({(size // 16) ** 2} + {text_tokens} tokens), "
          f"{args.steps} steps, median of {args.repeats}")  # fmt: skip

    with torch.inference_mode():
        full = timed(loop, device, args.repeats)
    block_ms = one_block_ms(transformer, batch, device, args.repeats)
    step_ms = full / args.steps * 1000
    print(f"no cache: {full:.3f} s ({step_ms:.1f} ms per step; one block {block_ms:.2f} ms)\n")

    engines = {"ditserve": with_ditserve}
    os.environ.setdefault("CACHE_DIT_LOG_LEVEL", "error")  # read when cache_dit is imported
    try:
        import cache_dit  # noqa: F401

        engines["cache-dit"] = with_cache_dit
    except ImportError:
        print("(cache-dit is not installed: only ditserve is measured)\n")
    print("| engine | mask | computed | time s | speedup | ideal | of ideal | cached step ms |")
    print("|---|---|---|---|---|---|---|---|")
    # ditserve first: cache-dit patches the FLUX transformer's forward for good.
    for label, enable in engines.items():
        for policy in cache.MASK_POLICIES:
            mask = list(cache.steps_mask(total_steps=args.steps, mask_policy=policy))
            computed = sum(mask)
            with enable(loop, mask) as cached_steps, torch.inference_mode():
                seconds = timed(loop, device, args.repeats)
                assert cached_steps() == args.steps - computed, f"{label} cached {cached_steps()} steps"
            speedup, ideal = full / seconds, args.steps / computed
            cached_ms = (seconds * 1000 - computed * step_ms) / (args.steps - computed)
            print(f"| {label} | {policy} | {computed}/{args.steps} | {seconds:.3f} | {speedup:.2f}x | "
                  f"{ideal:.2f}x | {speedup / ideal:.3f} | {cached_ms:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
