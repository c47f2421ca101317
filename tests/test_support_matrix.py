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
