"""The docs are true: every ``ditserve`` command and every Python block of README.md and docs/ runs.

What runs, against the session engine (``default``, ``local``, ``wan``) unless said otherwise:

- every ``ditserve`` client command (``generate``, ``cancel``, ``stats``, ``models``, ``metrics``)
  of a bash block or an inline code span, as a subprocess with ``DITSERVE_TARGET`` naming the
  engine (``--target`` values and the ``HOST:PORT`` placeholder are replaced by its address),
  and ``ditserve serve --help``;
- every Python block, a file's blocks in order in one namespace, with ``localhost:50051`` replaced
  by the engine's address and ``engine.internal:50051`` by a TLS engine's that wants a token
  (``ca.pem`` and ``DITSERVE_AUTH_TOKEN`` are its CA and token).

What is checked without running: every ``ditserve`` command parses with the real parser
(``serve`` starts a server that runs until stopped and names model directories that exist only
on a GPU machine); the commands in ``EXCLUDED`` say why they do not run here; an inline span that
is a synopsis (``ditserve generate PROMPT [--width ...]``) or names a subcommand is a mention, not
a command. Every shell command of a bash block that runs a program of the virtual environment
names it as ``.venv/bin/...``. Exclusions that no longer match the docs fail the test.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import pathlib
import re
import shlex
import subprocess
import sys

import pytest

from tests.conftest import REPO

DOC_FILES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
DITSERVE = str(pathlib.Path(sys.executable).parent / "ditserve")
#: Programs that live in the virtual environment; docs must call them as .venv/bin/NAME.
VENV_PROGRAMS = {"ditserve", "python", "python3", "torchrun", "pytest", "buf", "ruff", "pip"}
#: Client subcommands run against the session engine.
CLIENT_COMMANDS = {"generate", "cancel", "stats", "models", "metrics"}

#: Commands that do not run here, and why.
EXCLUDED = {
    'ditserve generate "a cat" --target 127.0.0.1:50051 --model qwen': "needs a real Qwen-Image directory "
    "(tests/test_families.py serves a tiny Qwen-Image through the same SDK call)",
    'ditserve generate "make the cat blue" --model kontext --input-image cat.png': "needs a real FLUX.1 Kontext "
    "directory (tests/test_families.py sends input images to a tiny Kontext)",
    'ditserve generate "a cat turns its head" --model wan-i2v --input-image cat.png --frames 9': "the session "
    "engine serves no image-to-video model; tests/test_cli_client.py runs these flags on a tiny Wan I2V directory",
    "ditserve demo": "tests/test_cli.py::test_demo_generates_and_saves_an_image runs it",
    'ditserve generate "a red circle on a blue background" --lora outline:1': "the session engine loads no "
    "adapter; tests/test_lora.py::test_the_cli_generates_with_an_adapter runs --lora against an engine that does",
}


@dataclasses.dataclass(frozen=True)
class Command:
    where: str
    text: str
    inline: bool

    @property
    def argv(self) -> list[str]:
        """The ditserve arguments (after the program, ``python -m engine_service`` or torchrun's)."""
        words = shlex.split(self.text, comments=True)
        if "engine_service" in words:
            return words[words.index("engine_service") + 1 :]
        return words[1:]

    @property
    def key(self) -> str:
        return re.sub(r"^\.venv/bin/", "", self.text)


def _fenced(path: pathlib.Path):
    text = path.read_text()
    for match in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.S | re.M):
        yield text[: match.start()].count("\n") + 1, match.group(1), match.group(2)


def shell_commands() -> list[Command]:
    """Each command of each bash block (continuation lines joined, ``&&`` split)."""
    commands = []
    for path in DOC_FILES:
        for line, lang, body in _fenced(path):
            if lang != "bash":
                continue
            for offset, text in enumerate(body.replace("\\\n", " ").splitlines()):
                for part in text.split("&&"):
                    part = re.sub(r"\s+#.*$", "", " ".join(part.split()))
                    if part:
                        commands.append(Command(f"{path.name}:{line + offset + 1}", part, inline=False))
    return commands


def ditserve_commands() -> list[Command]:
    """Every ditserve command of a bash block, and every inline ``ditserve ...`` span."""
    found = [c for c in shell_commands() if _is_ditserve(shlex.split(c.text))]
    for path in DOC_FILES:
        for match in re.finditer(r"`((?:\.venv/bin/)?ditserve [^`]+)`", path.read_text()):
            found.append(Command(path.name, match.group(1).replace("HOST:PORT", "127.0.0.1:50051"), inline=True))
    unique: dict[str, Command] = {}
    for command in found:
        unique.setdefault(command.key, command)
    return list(unique.values())


def _is_ditserve(words: list[str]) -> bool:
    program = pathlib.Path(words[0]).name if words else ""
    return program == "ditserve" or (program in ("python", "torchrun") and "engine_service" in words)


def _parses(argv: list[str]) -> str | None:
    """None when the real parser takes ``argv``, else its complaint."""
    from engine_service.cli import build_parser

    if "--help" in argv:
        return None
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            build_parser().parse_args(argv)
    except SystemExit:
        return stderr.getvalue() or "exit"
    return None


def _is_mention(command: Command) -> bool:
    """An inline synopsis (placeholders, brackets, alternatives) or a name that is not a whole command."""
    words = command.argv
    placeholder = any(re.fullmatch(r"[A-Z][A-Z_]*", w) or "[" in w or "|" in w for w in words)
    return command.inline and (placeholder or _parses(words) is not None)


def python_blocks() -> dict[str, list[str]]:
    blocks: dict[str, list[str]] = {}
    for path in DOC_FILES:
        for _, lang, body in _fenced(path):
            if lang == "python":
                blocks.setdefault(path.name, []).append(body)
    return blocks


COMMANDS = ditserve_commands()


def test_the_docs_have_commands_and_blocks_to_check():
    assert len(COMMANDS) >= 10 and len(python_blocks()) >= 3


def test_exclusions_name_commands_the_docs_still_show():
    keys = {command.key for command in COMMANDS}
    assert not set(EXCLUDED) - keys, f"stale exclusions: {sorted(set(EXCLUDED) - keys)}"


def test_shell_commands_run_programs_from_the_virtual_environment():
    bare = [
        f"{c.where}: {c.text}"
        for c in shell_commands()
        if shlex.split(c.text) and shlex.split(c.text)[0] in VENV_PROGRAMS
    ]
    assert not bare, "write .venv/bin/PROGRAM:\n" + "\n".join(bare)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c.key[:60])
def test_every_ditserve_command_parses(command):
    if not _is_mention(command):
        problem = _parses(command.argv)
        assert problem is None, f"{command.where}: `{command.text}` does not parse: {problem}"


def _runnable(command: Command) -> bool:
    argv = command.argv
    if _is_mention(command) or command.key in EXCLUDED or not argv:
        return False
    return argv[0] in CLIENT_COMMANDS or "--help" in argv


@pytest.mark.parametrize("command", [c for c in COMMANDS if _runnable(c)], ids=lambda c: c.key[:60])
def test_client_commands_run_against_the_engine(command, address, tmp_path):
    argv = command.argv
    if "--target" in argv:
        argv[argv.index("--target") + 1] = address
    env = {**os.environ, "DITSERVE_TARGET": address}
    env.pop("DITSERVE_AUTH_TOKEN", None)
    result = subprocess.run([DITSERVE, *argv], capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert result.returncode == 0, f"{command.where}: `{command.text}`\n{result.stdout}\n{result.stderr}"


TLS_TOKEN = "docs-token"
#: What a file's Python blocks must print: the outcomes their comments promise.
EXPECTED_OUTPUT = {
    "README.md": ["INVALID_REQUEST", "field='width'", "step 28/28 cached=False"],
    "caching.md": ["transformer_blocks+single_transformer_blocks", "('single_transformer_blocks', ["],
}


@pytest.fixture(scope="module")
def tls_engine(tmp_path_factory):
    """A default-model engine with TLS and a token, and a folder holding its CA as ca.pem."""
    from cryptography.hazmat.primitives import serialization

    from engine_service.bootstrap import build_engine
    from engine_service.config import ServerConfig, TLSConfig
    from engine_service.server.background import BackgroundServer
    from tests.test_security import _issue, _pem_key

    ca_key, ca_cert = _issue("docs CA", None, None, ca=True)
    key, cert = _issue("127.0.0.1", ca_key, ca_cert.subject, ca=False, server=True)
    pem = serialization.Encoding.PEM
    folder = tmp_path_factory.mktemp("docs-tls")
    (folder / "ca.pem").write_bytes(ca_cert.public_bytes(pem))
    tls = TLSConfig(cert_chain=cert.public_bytes(pem), private_key=_pem_key(key))
    config = ServerConfig(host="127.0.0.1", port=0, tls=tls, auth_token=TLS_TOKEN)
    server = BackgroundServer(build_engine([], device="cpu"), config).start()
    yield server.address, folder
    server.stop()


@pytest.mark.parametrize("name", sorted(python_blocks()))
def test_python_blocks_run(name, address, tls_engine, monkeypatch):
    tls_address, folder = tls_engine
    monkeypatch.chdir(folder)
    monkeypatch.setenv("DITSERVE_AUTH_TOKEN", TLS_TOKEN)
    namespace: dict = {"__name__": f"docs_{name}"}
    printed = io.StringIO()
    for index, block in enumerate(python_blocks()[name]):
        code = block.replace("localhost:50051", address).replace("engine.internal:50051", tls_address)
        try:
            with contextlib.redirect_stdout(printed):
                exec(compile(code, f"{name} python block {index + 1}", "exec"), namespace)
        except Exception as err:  # noqa: BLE001 - report which block failed and how
            pytest.fail(f"{name} python block {index + 1} failed: {type(err).__name__}: {err}\n{block}")
    for expected in EXPECTED_OUTPUT.get(name, []):
        assert expected in printed.getvalue(), f"{name}: {expected!r} not printed:\n{printed.getvalue()}"


def test_every_camera_action_the_docs_show_covers_the_frames_it_is_sent_with():
    """A Sana-WM action in an example (an SDK ``CameraTrajectory(action=...)`` or ``--camera-action``) covers
    the ``num_frames`` / ``--frames`` the same example sends, or the family's default frames: the engine
    refuses any other count, so an example without its frame count must fit the default."""
    from engine_service.models.families.sana_video import SANA_WM, action_frames

    examples = []
    for path in DOC_FILES:
        prose = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.S | re.M)  # inline spans only
        for match in re.finditer(r"`([^`]+)`", prose):
            span = match.group(1)
            action = re.search(r"""CameraTrajectory\(action="([^"]+)"|--camera-action ([^\s`]+)""", span)
            if action is None or (action.group(2) or "").isupper():  # a synopsis: --camera-action ACTIONS
                continue
            frames = re.search(r"num_frames=(\d+)|--frames (\d+)", span)
            wanted = int(next(filter(None, frames.groups()))) if frames else SANA_WM.default_frames
            examples.append((path.name, span, action_frames(action.group(1) or action.group(2)), wanted))
    assert len(examples) >= 3
    wrong = [
        f"{where}: `{span}` covers {covered} frames, sent with {wanted}"
        for where, span, covered, wanted in examples
        if covered != wanted
    ]
    assert not wrong, "\n".join(wrong)
