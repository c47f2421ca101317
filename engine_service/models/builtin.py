"""The builtin default model: a tiny FLUX pipeline trained by this project, shipped in the package.

It draws what it is asked within a small world: 64x64 images of "a <colour>
<shape> on a <colour> background" (six colours, three shapes; see
``engine_service.models.shapes``). It is a standard diffusers directory
(``default_model/``, written by ``scripts/train_default_model.py``) with a
FLUX-architecture transformer of 2 double-stream and 4 single-stream blocks,
so it needs no download and the engine loads it like any local model.
"""

from __future__ import annotations

import pathlib

BUILTIN_NAME = "default"
#: The trained pipeline's directory, inside the package.
BUILTIN_DIR = pathlib.Path(__file__).resolve().parent / "default_model"
#: Prompts are at most 16 words (its tokenizer and text encoders were made for that length).
BUILTIN_CALL_DEFAULTS = {"max_sequence_length": 16}
#: It was trained at 64x64 and draws well at 20 steps. It has no guidance embedding (like
#: FLUX.1-schnell), so the guidance scale has no effect.
BUILTIN_DEFAULTS = {"width": 64, "height": 64, "steps": 20, "guidance_scale": 1.0}
#: LoRA adapters trained by this project for the builtin model (``scripts/train_demo_lora.py``), by name:
#: ``outline`` draws each shape as a (rough) outline, its inside in the background colour.
BUILTIN_LORAS = {"outline": BUILTIN_DIR.parent / "demo_loras" / "outline"}
