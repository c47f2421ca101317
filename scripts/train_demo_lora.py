"""Train the demo LoRA of the default model: "outline" draws every shape as an outline.

    python scripts/train_demo_lora.py --out engine_service/models/demo_loras/outline

The base model (engine_service/models/default_model, see train_default_model.py)
draws filled shapes. This script draws the same world with every shape reduced to
a band a few pixels wide inside its edge, the inside left in the background
colour (``shapes.draw(..., outline=...)``), encodes it with the base model's VAE,
and trains a low-rank adapter (peft ``LoraConfig``, rank 4) on the attention and
feed-forward projections of the frozen FLUX transformer with the same flow-matching
objective as the base: x_t = (1 - t) x_0 + t e, the transformer predicts e - x_0.
The text encoders and the VAE stay frozen, so the prompts keep their meaning.

The adapter is saved in the diffusers layout (``FluxPipeline.save_lora_weights``:
``pytorch_lora_weights.safetensors`` with its peft config in the file's metadata),
which ``ditserve serve --lora outline=DIR`` and ``pipe.load_lora_weights(DIR)`` load.

The script ends by drawing the 18 evaluation prompts of the base model at 20 steps
with the adapter at scale 1 and printing which ones show the outline: the
background colour at the centre (inside the outline) and in the corners.
Deterministic for a seed and thread count, as the base script.
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import random
import time

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import FluxPipeline
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict

from engine_service.models import shapes
from engine_service.models.builtin import BUILTIN_DIR

#: Band width of an outline in pixels (at 64x64): about one latent pixel of the 4x VAE, and a bit.
OUTLINE_PX = 5.0
MAX_TOKENS = 16
EVAL_PAIRS = (
    ("red", "blue"),
    ("green", "white"),
    ("blue", "yellow"),
    ("yellow", "black"),
    ("white", "red"),
    ("black", "green"),
)
#: The transformer's linear layers the adapter trains (attention and feed-forward of both block kinds).
TARGET_MODULES = [
    "to_q",
    "to_k",
    "to_v",
    "to_out.0",
    "add_q_proj",
    "add_k_proj",
    "add_v_proj",
    "to_add_out",
    "ff.net.0.proj",
    "ff.net.2",
    "ff_context.net.0.proj",
    "ff_context.net.2",
    "proj_mlp",
    "proj_out",
]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def make_dataset(count: int, rng: np.random.Generator) -> tuple[torch.Tensor, list[str]]:
    """``count`` outlined images in [-1, 1] (N, 3, 64, 64) with their full prompts."""
    colours = list(shapes.COLOURS)
    images = np.empty((count, shapes.IMAGE_SIZE, shapes.IMAGE_SIZE, 3), dtype=np.uint8)
    prompts = []
    for i in range(count):
        colour, background = rng.choice(colours, size=2, replace=False)
        shape = shapes.SHAPES[rng.integers(len(shapes.SHAPES))]
        images[i] = shapes.draw(colour, shape, background, rng, outline=OUTLINE_PX)
        prompts.append(shapes.prompt(colour, shape, background))
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0, prompts


def lr_at(step: int, total: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


@torch.no_grad()
def encode(pipe: FluxPipeline, pixels: torch.Tensor, prompts: list[str]):
    """Latents (normalised as FluxPipeline expects them) and the prompts' text features."""
    vae = pipe.vae
    raw = torch.cat([vae.encode(pixels[i : i + 256]).latent_dist.mean for i in range(0, len(pixels), 256)])
    latents = (raw - vae.config.shift_factor) * vae.config.scaling_factor
    reconstruction = vae.decode(raw[:256]).sample
    psnr = 10 * math.log10(4.0 / F.mse_loss(reconstruction, pixels[:256]).item())
    log(f"the base VAE reconstructs outlined images at {psnr:.1f} dB")
    sequence, pooled, _ = pipe.encode_prompt(prompts, prompt_2=None, max_sequence_length=MAX_TOKENS)
    return latents, pooled, sequence


def train(pipe: FluxPipeline, latents, pooled, sequence, args, generator) -> None:
    transformer = pipe.transformer
    transformer.requires_grad_(False)
    transformer.add_adapter(
        LoraConfig(r=args.rank, lora_alpha=args.rank, init_lora_weights="gaussian", target_modules=TARGET_MODULES)
    )
    params = [p for p in transformer.parameters() if p.requires_grad]
    log(f"adapter: rank {args.rank}, {sum(p.numel() for p in params):,} parameters")
    optimizer = torch.optim.AdamW(params, lr=args.lr, betas=(0.9, 0.99), weight_decay=0.0)
    transformer.train()
    _, channels, height, width = latents.shape
    img_ids = FluxPipeline._prepare_latent_image_ids(1, height // 2, width // 2, "cpu", torch.float32)
    txt_ids = torch.zeros(MAX_TOKENS, 3)
    started = time.perf_counter()
    running = None
    for step in range(args.steps):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, args.steps, args.lr, 50)
        index = torch.randint(len(latents), (args.batch,), generator=generator)
        x0 = FluxPipeline._pack_latents(latents[index], args.batch, channels, height, width)
        noise = torch.randn(x0.shape, generator=generator)
        t = torch.rand(args.batch, generator=generator)
        xt = (1 - t[:, None, None]) * x0 + t[:, None, None] * noise
        prediction = transformer(
            hidden_states=xt,
            timestep=t,
            pooled_projections=pooled[index],
            encoder_hidden_states=sequence[index],
            txt_ids=txt_ids,
            img_ids=img_ids,
            return_dict=False,
        )[0]
        loss = F.mse_loss(prediction, noise - x0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        if step % 100 == 0 or step == args.steps - 1:
            rate = (step + 1) / (time.perf_counter() - started)
            log(f"flow step {step}: loss {running:.4f} ({rate:.1f} steps/s)")
    transformer.eval()
    log(f"adapter trained in {time.perf_counter() - started:.0f} s")


def evaluate(pipe: FluxPipeline, seed: int = 0) -> float:
    """The 18 evaluation prompts with the adapter: outlined when the centre shows the background colour."""
    cases = [(c, s, b) for c, b in EVAL_PAIRS for s in shapes.SHAPES]
    with torch.inference_mode():
        images = pipe(
            [shapes.prompt(c, s, b) for c, s, b in cases],
            width=shapes.IMAGE_SIZE,
            height=shapes.IMAGE_SIZE,
            num_inference_steps=20,
            max_sequence_length=MAX_TOKENS,
            generator=torch.Generator().manual_seed(seed),
            output_type="np",
        ).images
    correct = 0
    for (colour, shape, background), image in zip(cases, images, strict=True):
        centre, corners = shapes.centre_and_corner_colours(np.round(image * 255).astype(np.uint8))
        ok = centre == background and all(c == background for c in corners)
        correct += ok
        print(f"  {'ok ' if ok else 'BAD'} {shapes.prompt(colour, shape, background):40s} centre {centre:7s}")
    log(f"outlined: {correct}/{len(cases)}")
    return correct / len(cases)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=pathlib.Path, required=True, help="directory for the adapter")
    parser.add_argument("--base", type=pathlib.Path, default=BUILTIN_DIR, help="the base pipeline directory")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the weights depend on it)")
    parser.add_argument("--images", type=int, default=4000, help="dataset size")
    parser.add_argument("--rank", type=int, default=4)
    parser.add_argument("--steps", type=int, default=700, help="flow-matching steps")
    parser.add_argument("--batch", type=int, default=24)
    parser.add_argument("--lr", type=float, default=3e-3)
    args = parser.parse_args()

    started = time.perf_counter()
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    torch.set_flush_denormal(True)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    generator = torch.Generator().manual_seed(args.seed)

    pipe = FluxPipeline.from_pretrained(args.base, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    pixels, prompts = make_dataset(args.images, rng)
    latents, pooled, sequence = encode(pipe, pixels, prompts)
    log(f"dataset: {len(prompts)} outlined images, latents {tuple(latents.shape[1:])}")
    torch.manual_seed(args.seed + 1)  # the adapter's initial weights
    train(pipe, latents, pooled, sequence, args, generator)

    args.out.mkdir(parents=True, exist_ok=True)
    config = pipe.transformer.peft_config["default"]
    FluxPipeline.save_lora_weights(
        args.out,
        transformer_lora_layers=get_peft_model_state_dict(pipe.transformer),
        transformer_lora_adapter_metadata=config.to_dict(),
    )
    size = sum(f.stat().st_size for f in args.out.rglob("*") if f.is_file())
    log(f"saved to {args.out} ({size / 1e3:.0f} kB)")
    reloaded = FluxPipeline.from_pretrained(args.base, local_files_only=True)
    reloaded.set_progress_bar_config(disable=True)
    reloaded.load_lora_weights(args.out, adapter_name="outline")
    accuracy = evaluate(reloaded)
    summary = {"seed": args.seed, "outlined": accuracy, "minutes": (time.perf_counter() - started) / 60}
    log(f"done: {json.dumps(summary)}")


if __name__ == "__main__":
    main()
