"""The contract stays clean and compatible: ``buf lint`` and ``buf breaking`` over proto/ (buf.yaml)."""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO

#: buf as installed by `scripts/setup.sh --test` (the buf-bin package), next to the interpreter running the tests.
BUF = pathlib.Path(sys.executable).parent / "buf"
#: The last released contract, its own buf module; see "Contract checks" in the README.
RELEASED = "proto/released"
CONTRACT = "proto/ditserve/v1/engine.proto"


def _buf(*args: str, root: pathlib.Path = REPO) -> subprocess.CompletedProcess:
    assert BUF.exists(), "buf is not installed; run scripts/setup.sh --test"
    return subprocess.run([str(BUF), *args], cwd=root, capture_output=True, text=True, timeout=120)


def _lint(root: pathlib.Path = REPO) -> subprocess.CompletedProcess:
    return _buf("lint", root=root)


def _breaking(root: pathlib.Path = REPO) -> subprocess.CompletedProcess:
    return _buf("breaking", "--against", RELEASED, root=root)


@pytest.fixture
def repo_copy(tmp_path) -> pathlib.Path:
    """The buf config and proto/ copied to a temporary directory, to be edited by a test."""
    shutil.copy(REPO / "buf.yaml", tmp_path / "buf.yaml")
    shutil.copytree(REPO / "proto", tmp_path / "proto")
    return tmp_path


def test_buf_lint_is_clean():
    result = _lint()
    assert result.returncode == 0, result.stdout + result.stderr


def test_buf_lint_reports_a_finding_in_the_contract(repo_copy):
    """The lint config covers the contract: a badly named field is reported."""
    proto = repo_copy / CONTRACT
    proto.write_text(proto.read_text().replace("string request_id = 16;", "string requestId = 16;"))
    result = _lint(repo_copy)
    assert result.returncode != 0
    assert "requestId" in result.stdout and "lower_snake_case" in result.stdout, result.stdout + result.stderr


def test_no_breaking_change_since_the_released_contract():
    result = _breaking()
    assert result.returncode == 0, result.stdout + result.stderr


def test_renumbering_a_field_is_a_breaking_change(repo_copy):
    proto = repo_copy / CONTRACT
    text = proto.read_text()
    assert "  string prompt = 2;\n" in text
    proto.write_text(text.replace("  string prompt = 2;\n", "  string prompt = 42;\n"))
    assert _lint(repo_copy).returncode == 0, "the edit itself must be lint-clean"
    result = _breaking(repo_copy)
    assert result.returncode != 0, "renumbering GenerateRequest.prompt passed the breaking check"
    assert 'field "2" with name "prompt" on message "GenerateRequest"' in result.stdout, result.stdout + result.stderr
