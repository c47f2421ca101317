"""VisualCloze in-context generation: FLUX.1 Fill's tiny modules (2 double-stream + 4 single-stream blocks,
8x VAE) with a 32-pixel grid resolution, so every row of the grid is about 32x32 pixels."""

from diffusers import VisualClozeGenerationPipeline, VisualClozePipeline
from tiny_pipelines import tiny_flux_components

from tiny_families import TinyCase
from tiny_families.flux import FILL_IN_CHANNELS


def build_tiny_visualcloze_generation() -> VisualClozeGenerationPipeline:
    components = tiny_flux_components(in_channels=FILL_IN_CHANNELS, out_channels=16)
    return VisualClozeGenerationPipeline(**components, resolution=32)


def build_tiny_visualcloze() -> VisualClozePipeline:
    components = tiny_flux_components(in_channels=FILL_IN_CHANNELS, out_channels=16)
    return VisualClozePipeline(**components, resolution=32)


CASES = [
    # A zero-shot query row: one 3:2 condition image, whose row renders 32x16; the layout, task and content
    # prompts are one text, so the T5 keeps 256 tokens (of this byte-level tokenizer) to reach the content prompt.
    TinyCase(
        name="visualcloze-generation",
        pipeline_class="VisualClozeGenerationPipeline",
        build=build_tiny_visualcloze_generation,
        defaults={"steps": 3, "call_defaults": {"max_sequence_length": 256}},
        inputs=(("image", (48, 32)),),
        task_prompt="In each row, [IMAGE2] is a painting of [IMAGE1]",
    ),
    # Generation, then upsampling the target to the request's 32x32 at the default strength 0.4: 3 steps,
    # then the last 2 of 3.
    TinyCase(
        name="visualcloze",
        pipeline_class="VisualClozePipeline",
        build=build_tiny_visualcloze,
        defaults={"width": 32, "height": 32, "steps": 3, "call_defaults": {"max_sequence_length": 256}},
        inputs=(("image", (48, 32)),),
        task_prompt="In each row, [IMAGE2] is a painting of [IMAGE1]",
        loops=2,
    ),
]
