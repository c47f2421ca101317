"""The support matrix: what ``ditserve models --supported`` prints is what the README shows, from the registry."""

from __future__ import annotations

import dataclasses

from engine_service import cli
from engine_service.models import FAMILIES
from engine_service.models.matrix import HEADERS, readme_with_matrix, support_matrix_markdown, support_rows
from tests.conftest import REPO


def test_readme_table_is_what_the_registry_prints():
    readme = (REPO / "README.md").read_text()
    assert readme_with_matrix(readme) == readme, "README.md is stale: run scripts/gen_support_matrix.py"


def test_models_supported_prints_the_matrix_without_an_engine(capsys):
    assert cli.main(["models", "--supported"]) == 0
    printed = capsys.readouterr().out
    assert printed == support_matrix_markdown() + "\n"
    lines = printed.splitlines()
    assert lines[0].split(" | ")[0] == "| family" and len(lines) == 2 + len(FAMILIES)
    for family, line in zip(FAMILIES, lines[2:], strict=True):
        assert line.startswith(f"| {family.name} | ")
        assert all(f"`{name}`" in line for name in family.pipeline_classes)


def test_rows_say_tested_or_why_not():
    flux = next(family for family in FAMILIES if "FluxPipeline" in family.pipeline_classes)
    fill = dataclasses.replace(flux, name="fill", input_roles=("image", "mask", "reference"), required_roles=("image",))
    known = dataclasses.replace(flux, name="known", unsupported_reason="needs a GPU-only kernel")
    (supported, unsupported) = [dict(zip(HEADERS, row, strict=True)) for row in support_rows([fill, known])]
    assert supported["tested"] == "tiny CPU test" and supported["cache"] == "yes"
    assert supported["inputs"] == "text + image + mask (optional) + reference (optional)"
    assert unsupported["tested"] == "unsupported: needs a GPU-only kernel" and unsupported["cache"] == "-"


#: Exported pipeline classes whose ``_get_signature_types()`` raises because an optional dependency that
#: ditserve does not install is missing (diffusers exports a placeholder for them), each with that
#: dependency; they cannot be checked for a ``transformer`` component. ConsisID is a DiT and has its
#: family entry; the others are audio, MIDI and ONNX pipelines without one. The test below asserts that
#: exactly these raise, for that reason, so an entry goes once its dependency is installed.
SIGNATURE_UNAVAILABLE = {
    "AudioDiffusionPipeline": "librosa",
    "ConsisIDPipeline": "opencv",
    "OnnxStableDiffusionImg2ImgPipeline": "onnx",
    "OnnxStableDiffusionInpaintPipeline": "onnx",
    "OnnxStableDiffusionPipeline": "onnx",
    "OnnxStableDiffusionUpscalePipeline": "onnx",
    "SpectrogramDiffusionPipeline": "note_seq",
    "StableDiffusionOnnxPipeline": "onnx",
}

#: DiT pipeline classes of the installed diffusers that no family entry claims yet (neither served
#: nor refused with a reason). This set may only shrink: a new class must get a family entry.
NOT_YET_ENTERED: set[str] = set()


def test_every_dit_pipeline_of_diffusers_has_a_family_entry():
    """Every pipeline class diffusers exports with a ``transformer`` component is claimed by a family
    entry (served, or refused with its reason), except the declared ones not entered yet."""
    import diffusers

    transformer_pipelines, unavailable = set(), {}
    for name in dir(diffusers):
        if not name.endswith("Pipeline") or name.endswith("ModularPipeline"):
            continue
        pipeline_class = getattr(diffusers, name)
        try:
            components = pipeline_class._get_signature_types()
        except AttributeError:  # a placeholder: the pipeline's optional dependencies are missing
            unavailable[name] = pipeline_class._backends
            continue
        if "transformer" in components:
            transformer_pipelines.add(name)
    assert set(unavailable) == set(SIGNATURE_UNAVAILABLE), unavailable
    assert all(dependency in unavailable[name] for name, dependency in SIGNATURE_UNAVAILABLE.items()), unavailable
    claimed = {name for family in FAMILIES for name in family.pipeline_classes}
    missing = transformer_pipelines - claimed
    assert missing - NOT_YET_ENTERED == set(), "new DiT pipelines without a family entry"
    assert NOT_YET_ENTERED - missing == set(), "entered now: remove them from NOT_YET_ENTERED"
    assert len(transformer_pipelines) > 100, "the scan found too few pipelines to be a scan of diffusers"


def test_served_families_make_images_or_videos():
    kinds = {family.output_kind for family in FAMILIES if family.unsupported_reason is None}
    assert kinds == {"image", "video"}
