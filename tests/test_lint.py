"""The code base stays lint-clean and formatted (ruff, configured in pyproject.toml)."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

from tests.conftest import REPO

#: ruff as installed by `scripts/setup.sh --test`, next to the interpreter running the tests.
RUFF = pathlib.Path(sys.executable).parent / "ruff"


@pytest.mark.parametrize("args", [["check"], ["format", "--check"]], ids=["check", "format"])
def test_ruff(args):
    assert RUFF.exists(), "ruff is not installed; run scripts/setup.sh --test"
    result = subprocess.run([str(RUFF), *args, "."], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
