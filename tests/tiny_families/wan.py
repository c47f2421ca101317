"""Wan 2.1 text-to-video: one block list, CFG as a second transformer call."""

from tiny_pipelines import build_tiny_wan

from tiny_families import TinyCase

CASES = [
    TinyCase(
        name="wan",
        pipeline_class="WanPipeline",
        build=build_tiny_wan,
        defaults={"width": 16, "height": 16, "frames": 5, "steps": 6, "call_defaults": {"max_sequence_length": 16}},
    ),
]
