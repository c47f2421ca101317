"""FLUX.1 text-to-image: 2 double-stream + 4 single-stream blocks."""

from tiny_pipelines import build_tiny_flux

from tiny_families import TinyCase

CASES = [
    TinyCase(
        name="flux",
        pipeline_class="FluxPipeline",
        build=build_tiny_flux,
        defaults={"width": 32, "height": 32, "steps": 6, "call_defaults": {"max_sequence_length": 16}},
    ),
]
