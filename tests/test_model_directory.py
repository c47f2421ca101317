"""A served model directory may carry its own defaults in ``ditserve.json`` (few-step distilled models)."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from tiny_families.latte import FRAMES as LATTE_FRAMES
from tiny_families.latte import build_tiny_latte
from tiny_families.skyreels_v2 import CONTINUATION, SkyReelsV2DiffusionForcingVideoToVideoPipeline, build_skyreels_v2_df
from tiny_families.wan import ANIMATE, build_wan22, build_wan_animate

from engine_service.models import ModelLoadError, load_local_model
from engine_service.models.registry import model_from_pipeline


@pytest.fixture
def model_copy(local_model_dir, tmp_path):
    directory = tmp_path / "model"
    shutil.copytree(local_model_dir, directory)
    return directory


def _load(directory):
    return load_local_model("m", directory, torch.device("cpu"), torch.float32)


def test_directory_defaults_replace_the_familys(model_copy):
    plain = _load(model_copy)
    assert (plain.default_steps, plain.default_guidance_scale) == (28, 3.5)
    lightning = {"steps": 8, "guidance_scale": 1.0, "width": 64, "call_defaults": {"max_sequence_length": 16}}
    (model_copy / "ditserve.json").write_text(json.dumps(lightning))
    model = _load(model_copy)
    assert (model.default_steps, model.default_guidance_scale) == (8, 1.0)
    assert (model.default_width, model.default_height) == (64, 1024)
    assert model.call_defaults == {"max_sequence_length": 16}


@pytest.mark.parametrize(
    ("text", "named"),
    [('{"stpes": 8}', "stpes"), ("{steps: 8", "unreadable"), ("[8]", "JSON object")],
    ids=["unknown key", "not JSON", "not an object"],
)
def test_a_bad_defaults_file_fails_loading_naming_it(model_copy, text, named):
    (model_copy / "ditserve.json").write_text(text)
    with pytest.raises(ModelLoadError) as raised:
        _load(model_copy)
    assert "ditserve.json" in str(raised.value) and named in str(raised.value)


def test_a_missing_directory_is_named_as_missing(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        _load(tmp_path / "nowhere")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ModelLoadError, match="is a file"):
        _load(tmp_path / "file")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="no model_index.json"):
        _load(tmp_path / "empty")


@pytest.mark.parametrize(
    ("build", "frames", "named"),
    [(build_tiny_latte, LATTE_FRAMES + 1, f"frames must be {LATTE_FRAMES}"), (build_wan22, 6, "multiple of 4 plus 1")],
    ids=["latte-not-its-video-length", "wan-off-the-4k+1-rule"],
)
def test_a_default_frame_count_every_request_would_be_refused_for_fails_loading(build, frames, named):
    pipeline = build()
    with pytest.raises(ModelLoadError, match=named):
        model_from_pipeline("m", pipeline, torch.device("cpu"), {"frames": frames})
    good = LATTE_FRAMES if build is build_tiny_latte else 5
    assert model_from_pipeline("m", pipeline, torch.device("cpu"), {"frames": good}).default_frames == good


@pytest.mark.parametrize(
    ("call_defaults", "named"),
    [
        ({"overlap_history": None}, "call_defaults overlap_history must be a whole number of frames"),
        ({"base_num_frames": "nine"}, "call_defaults base_num_frames must be a whole number of frames"),
        ({"base_num_frames": 5}, r"base_num_frames 5 \(2 latent frames\) must hold more latent frames than"),
    ],
    ids=["no-history", "not-a-count", "windows-that-add-nothing"],
)
def test_a_video_continuation_whose_windows_are_no_sizes_fails_loading_naming_them(call_defaults, named):
    """SkyReels-V2 video-to-video always samples windows that start on overlap_history frames: None, a
    string, or windows no longer than their history stop loading naming the call default (not a TypeError
    out of the frame count check)."""
    pipeline = build_skyreels_v2_df(SkyReelsV2DiffusionForcingVideoToVideoPipeline)
    defaults = {**CONTINUATION, "call_defaults": {**CONTINUATION["call_defaults"], **call_defaults}}
    with pytest.raises(ModelLoadError, match=named):
        model_from_pipeline("m", pipeline, torch.device("cpu"), defaults)


@pytest.mark.parametrize(
    ("call_defaults", "named"),
    [
        ({"resolution_scale": "2"}, "resolution_scale '2' is none of 2, 2.25, 4"),
        ({"resolution_scale": 3}, "resolution_scale 3 is none of"),
        ({"tiles_batch_size": "2"}, "tiles_batch_size '2' is no positive whole number"),
        ({"tiles_batch_size": 0}, "tiles_batch_size 0 is no positive whole number"),
        ({"min_overlap": 1.0}, r"min_overlap 1.0 is no fraction of a tile in \[0, 1\)"),
        ({"min_overlap": None}, "min_overlap None is no fraction"),
    ],
)
def test_a_video_upscaler_whose_tiling_call_defaults_are_no_values_fails_loading_naming_them(call_defaults, named):
    """Kandinsky 6 SR's tiling comes from its call defaults: a value its pipeline refuses, or one of another
    type (a string from a hand-written ditserve.json), stops its warm-up naming it, not a TypeError."""
    from tiny_families.kandinsky6 import build_kandinsky6_sr

    from engine_service.runtime.engine import warmup_spec

    defaults = {"width": 24, "height": 16, "frames": 5, "steps": 2, "call_defaults": call_defaults}
    model = model_from_pipeline("m", build_kandinsky6_sr(), torch.device("cpu"), defaults)
    with pytest.raises(ModelLoadError, match=named):
        warmup_spec(model)


@pytest.mark.parametrize(
    ("call_defaults", "frames", "named", "fixed"),
    [
        # Segments of 9 frames that start on the last 5 of the one before add 4: they never finish a video.
        (
            {"segment_frame_length": 9, "prev_segment_conditioning_frames": 5},
            9,
            "take 1, which make 0",
            {"call_defaults": {"segment_frame_length": 9, "prev_segment_conditioning_frames": 1}},
        ),
        # 5 frames are no more than the 5 conditioning frames: the fewest it makes is 6.
        (
            {"segment_frame_length": 13, "prev_segment_conditioning_frames": 5},
            5,
            "default 5 frames take 1, which make 6",
            {"frames": 6},
        ),
    ],
    ids=["segments-that-add-fewer-frames-than-they-start-on", "no-more-frames-than-the-conditioning-frames"],
)
def test_an_animation_model_whose_segments_make_no_default_video_fails_loading(call_defaults, frames, named, fixed):
    pipeline = build_wan_animate()
    defaults = {**ANIMATE, "frames": frames, "call_defaults": {**ANIMATE["call_defaults"], **call_defaults}}
    with pytest.raises(ModelLoadError, match=named):
        model_from_pipeline("m", pipeline, torch.device("cpu"), defaults)
    assert model_from_pipeline("m", pipeline, torch.device("cpu"), {**defaults, **fixed}).name == "m"


@pytest.mark.parametrize(
    ("module", "build", "argument", "value"),
    [
        # With c2w fixed, every request sending an action string would give the pipeline both: INTERNAL.
        ("sana_video", "build_sana_wm", "c2w", [[1.0]]),
        # The request's intrinsics would silently win.
        ("sana_video", "build_sana_wm", "intrinsics", [16.0, 16.0, 16.0, 16.0]),
        # The mode follows from the videos a request sends.
        ("wan", "build_wan_animate", "mode", "replace"),
        ("ltx2", "build_in_context", "reference_conditions", []),
    ],
)
def test_call_defaults_setting_an_argument_the_family_fills_from_each_request_fail_loading(
    module, build, argument, value
):
    import importlib

    families = importlib.import_module(f"tiny_families.{module}")
    (case,) = [case for case in families.CASES if case.build is getattr(families, build)]
    pipeline = case.build()
    defaults = {**case.defaults, "call_defaults": {**case.defaults.get("call_defaults", {}), argument: value}}
    with pytest.raises(ModelLoadError, match=f"call_defaults may not set {argument}: .* from each request"):
        model_from_pipeline("m", pipeline, torch.device("cpu"), defaults)
    assert model_from_pipeline("m", pipeline, torch.device("cpu"), dict(case.defaults)).name == "m"


@pytest.mark.parametrize("argument", ["sigmas", "timesteps"])
def test_call_defaults_setting_a_schedule_fail_loading_unless_the_family_runs_one(argument):
    """A fixed schedule in call_defaults would make the pipeline run another step count than the request's
    num_inference_steps, which progress, the step mask and the cache follow; LTX-2 DFR runs its schedule."""
    pipeline = build_wan22()
    schedule = {"call_defaults": {argument: [1.0, 0.5]}}
    with pytest.raises(ModelLoadError, match=f"call_defaults may not set {argument}: wan runs each request's"):
        model_from_pipeline("m", pipeline, torch.device("cpu"), schedule)
    assert model_from_pipeline("m", pipeline, torch.device("cpu")).call_defaults.get(argument) is None
