"""The cache on transformers whose loop adds hints between blocks (ControlNet residuals, VACE hints).

A toy stack adds a known hint after every block, as FLUX's and Qwen-Image's loops add
ControlNet residuals and Wan VACE's adds its control hints. At threshold 0 every block runs
as without a cache; on a cached step the stored middle residual already holds the hints of
the middle blocks, so each hint is counted exactly once: with the same inputs and hints, a
cached step gives the computed output (to float rounding). A runner that lets the loop add
the hints again on a cached step is off by the sum of the middle hints. The same holds on
diffusers' own loops, with the real residuals of the tiny SD3 and HunyuanDiT ControlNets, and
with Wan-Animate's face adapter output.
"""

from __future__ import annotations

import io

import pytest
import torch
from PIL import Image

from engine_service import cache
from engine_service.cache import BlockAdapter, DBCacheConfig

BLOCKS = 6


class _Block(torch.nn.Module):
    def __init__(self, index: int):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(4, 4) * 0.3)

    def forward(self, hidden_states, t):
        return hidden_states + torch.tanh(hidden_states @ self.weight) * (1.0 + 0.1 * t)


class _HintStack(torch.nn.Module):
    """Adds ``hints[i // interval]`` after block i, as diffusers' ControlNet loops do."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.blocks = torch.nn.ModuleList(_Block(i) for i in range(BLOCKS))

    def forward(self, hidden_states, t, hints=None):
        for index, block in enumerate(self.blocks):
            hidden_states = block(hidden_states, t)
            if hints is not None:
                hidden_states = hidden_states + hints[index // (BLOCKS // len(hints))]
        return hidden_states


HIDDEN = torch.linspace(-1, 1, 24).reshape(1, 6, 4)
HINTS = [torch.full((1, 6, 4), 0.5 * (i + 1)) for i in range(3)]


#: Threshold 1 after one warm-up step: every later step cached.
ALWAYS = DBCacheConfig(Fn_compute_blocks=1, Bn_compute_blocks=0, residual_diff_threshold=1.0, max_warmup_steps=1)


def _run(adapter: BlockAdapter, config: DBCacheConfig, steps: int, step=None) -> tuple[list[torch.Tensor], list[int]]:
    """``steps`` calls of ``step`` (the hint stack on ``HIDDEN`` and ``HINTS`` by default) with ``adapter``'s
    transformer cached by ``config``: (their outputs, the steps the cache reports cached)."""
    stack = adapter.transformer
    step = step or (lambda: stack(HIDDEN, 0.0, HINTS))
    cache.enable_cache(adapter, config)
    try:
        outputs = [step() for _ in range(steps)]
        return outputs, list(cache.summary(stack, logging=False)[0].cached_steps)
    finally:
        cache.disable_cache(stack)


@pytest.mark.parametrize(("fn", "bn"), [(1, 0), (2, 1), (1, 2)])
def test_hints_are_placed_exactly_once_on_computed_and_cached_steps(fn, bn):
    stack = _HintStack()
    reference = stack(HIDDEN, 0.0, HINTS)
    exact = DBCacheConfig(Fn_compute_blocks=fn, Bn_compute_blocks=bn, residual_diff_threshold=0.0)
    outputs, cached = _run(BlockAdapter(transformer=stack, hints=True), exact, 3)
    assert cached == [] and all(torch.equal(out, reference) for out in outputs)

    always = DBCacheConfig(Fn_compute_blocks=fn, Bn_compute_blocks=bn, residual_diff_threshold=1.0, max_warmup_steps=1)
    outputs, cached = _run(BlockAdapter(transformer=stack, hints=True), always, 3)
    assert cached == [1, 2]
    # Same inputs and hints every step: a cached step must give the computed output.
    for out in outputs:
        torch.testing.assert_close(out, reference, atol=1e-5, rtol=0)

    # Without hint placement, the loop adds the middle blocks' hints a second time.
    outputs, cached = _run(BlockAdapter(transformer=stack, per_block=True, hints=False), always, 3)
    assert cached == [1, 2]
    assert (outputs[1] - reference).abs().max() > 0.4


def test_a_pipeline_with_a_controlnet_caches_per_block_with_hints():
    class _Pipe:
        def __init__(self):
            self.transformer = _HintStack()
            self.controlnet = torch.nn.Linear(1, 1)

    pipe = _Pipe()
    (group,) = BlockAdapter(pipe=pipe).groups()
    assert group.hints and group.per_block
    pipe.controlnet = None
    (group,) = BlockAdapter(pipe=pipe).groups()
    assert not group.hints and not group.per_block


def _controlnet_transformer_call(pipe, size: int, **call) -> tuple[tuple, dict]:
    """The inputs of the first transformer call of a tiny ControlNet pipeline's run, the
    ControlNet's residuals included."""
    from tiny_families import input_image

    seen = []

    def keep(_, args, kwargs):  # lists copied: HunyuanDiT pops the residuals it adds from theirs
        seen.append((args, {key: list(v) if isinstance(v, list) else v for key, v in kwargs.items()}))

    hook = pipe.transformer.register_forward_pre_hook(keep, with_kwargs=True)
    control = Image.open(io.BytesIO(input_image("control", (size, size)).data)).convert("RGB")
    try:
        torch.manual_seed(0)  # the pipelines encode the control image from the process-wide random state
        pipe("a red circle", control_image=control, num_inference_steps=1, height=size, width=size, **call)
    finally:
        hook.remove()
    return seen[0]


def _tiny_sd3_controlnet():
    from tiny_families.sd3 import build_tiny_sd3_controlnet

    pipe = build_tiny_sd3_controlnet()
    return pipe, _controlnet_transformer_call(pipe, 32, max_sequence_length=16, output_type="latent")


def _tiny_hunyuandit_controlnet():
    from tiny_families.hunyuandit import build_tiny_hunyuandit_controlnet

    pipe = build_tiny_hunyuandit_controlnet()
    return pipe, _controlnet_transformer_call(pipe, 16, use_resolution_binning=False, output_type="latent")


@pytest.mark.parametrize(
    ("build", "residuals", "doubled"),
    [
        (_tiny_sd3_controlnet, "block_controlnet_hidden_states", True),
        (_tiny_hunyuandit_controlnet, "controlnet_block_samples", False),
    ],
    ids=["sd3: residuals after blocks", "hunyuandit: residuals into the long skips"],
)
def test_real_controlnet_transformers_take_their_residuals_once_on_cached_steps(build, residuals, doubled):
    """diffusers' own loops: SD3 adds the ControlNet's residuals to the hidden states after its
    blocks, HunyuanDiT adds them to the long skips its second-half blocks read. With the same
    inputs and residuals, a cached step gives the computed output (to float rounding)."""
    pipe, (args, kwargs) = build()
    transformer = pipe.transformer

    def step(steered: bool = True):  # HunyuanDiT pops the residuals it adds from their list: each call gets its own
        given = list(kwargs[residuals]) if steered else None
        return transformer(*args, **{**kwargs, residuals: given, "return_dict": False})[0]

    reference = step()
    assert (step(steered=False) - reference).abs().max() > 1e-2, "the residuals must matter"

    outputs, cached = _run(BlockAdapter(transformer=transformer, hints=True), ALWAYS, 3, step)
    assert cached == [1, 2]
    for out in outputs:
        torch.testing.assert_close(out, reference, atol=1e-4, rtol=0)
    if doubled:  # without hint placement, the loop adds the middle blocks' residuals a second time
        outputs, cached = _run(BlockAdapter(transformer=transformer, per_block=True, hints=False), ALWAYS, 3, step)
        assert cached == [1, 2] and (outputs[1] - reference).abs().max() > 1e-2


def test_wan_animate_takes_its_face_adapter_output_once_on_cached_steps():
    """Wan-Animate's loop adds its face adapter's output (a cross-attention of the hidden states to the
    face video's motion) after every ``inject_face_latents_blocks``-th block: the tiny model's after each
    of its 3. The cache finds the transformer in ``HINTED_LAYOUTS``; with the same inputs, a cached step
    gives the computed output (to float rounding), and a runner that lets the loop add the middle blocks'
    face outputs again does not."""
    from tiny_families import video_frames
    from tiny_families.wan import build_wan_animate

    pipe = build_wan_animate()
    transformer, seen = pipe.transformer, []
    hook = transformer.register_forward_pre_hook(lambda _, a, k: seen.append((a, k)), with_kwargs=True)
    try:
        pipe(
            image=Image.new("RGB", (16, 16), (40, 90, 200)),
            pose_video=video_frames((16, 16), 5),
            face_video=video_frames((16, 16), 5),
            prompt="a red circle",
            height=16,
            width=16,
            segment_frame_length=5,
            num_inference_steps=1,
            max_sequence_length=16,
            output_type="latent",
        )
    finally:
        hook.remove()
    args, kwargs = seen[0]

    def step(face: torch.Tensor | None = None):
        given = kwargs if face is None else {**kwargs, "face_pixel_values": face}
        return transformer(*args, **{**given, "return_dict": False})[0]

    reference = step()
    assert (step(kwargs["face_pixel_values"] * 0 - 1) - reference).abs().max() > 1e-2, "the face must matter"

    (group,) = BlockAdapter(transformer=transformer).groups()
    assert group.hints and group.per_block
    outputs, cached = _run(BlockAdapter(transformer=transformer), ALWAYS, 3, step)
    assert cached == [1, 2]
    for out in outputs:
        torch.testing.assert_close(out, reference, atol=1e-4, rtol=0)
    outputs, cached = _run(BlockAdapter(transformer=transformer, per_block=True, hints=False), ALWAYS, 3, step)
    assert cached == [1, 2] and (outputs[1] - reference).abs().max() > 1e-2
