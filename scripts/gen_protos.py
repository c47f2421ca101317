"""Regenerate the Python stubs for proto/ditserve/v1/engine.proto.

The stubs live in ``client_sdk/_proto/`` so that both the thin SDK and the engine
import them from one place. protoc writes ``ditserve/v1/engine_pb2*.py`` with an
absolute import of ``ditserve.v1``; this script flattens the files and makes
that import relative, so no top-level ``ditserve`` package is needed.

Usage:
    python scripts/gen_protos.py            # rewrite client_sdk/_proto/
    python scripts/gen_protos.py --check    # exit 1 if the checked-in stubs are stale
"""

from __future__ import annotations

import argparse
import filecmp
import pathlib
import sys
import tempfile

REPO = pathlib.Path(__file__).resolve().parent.parent
PROTO_ROOT = REPO / "proto"
PROTO_FILE = "ditserve/v1/engine.proto"
STUB_DIR = REPO / "client_sdk" / "_proto"
GENERATED = ("engine_pb2.py", "engine_pb2.pyi", "engine_pb2_grpc.py")
INIT_TEXT = '"""Generated protobuf and gRPC stubs for ditserve.v1 (see scripts/gen_protos.py)."""\n'


def generate(out_dir: pathlib.Path) -> None:
    """Run protoc on the contract and write the flattened stubs to ``out_dir``."""
    from grpc_tools import protoc

    with tempfile.TemporaryDirectory() as raw:
        args = [
            "grpc_tools.protoc",
            f"-I{PROTO_ROOT}",
            f"--python_out={raw}",
            f"--pyi_out={raw}",
            f"--grpc_python_out={raw}",
            str(PROTO_ROOT / PROTO_FILE),
        ]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed")
        out_dir.mkdir(parents=True, exist_ok=True)
        src = pathlib.Path(raw) / "ditserve" / "v1"
        for name in GENERATED:
            text = (src / name).read_text()
            text = text.replace("from ditserve.v1 import engine_pb2", "from . import engine_pb2")
            (out_dir / name).write_text(text)
    (out_dir / "__init__.py").write_text(INIT_TEXT)


def stale_files() -> list[str]:
    """Names of checked-in stub files that differ from a fresh generation."""
    with tempfile.TemporaryDirectory() as fresh:
        fresh_dir = pathlib.Path(fresh)
        generate(fresh_dir)
        return [
            name
            for name in (*GENERATED, "__init__.py")
            if not (STUB_DIR / name).exists() or not filecmp.cmp(fresh_dir / name, STUB_DIR / name, shallow=False)
        ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that the stubs are up to date")
    args = parser.parse_args()
    if args.check:
        stale = stale_files()
        if stale:
            print(f"stale stubs in {STUB_DIR.relative_to(REPO)}: {', '.join(stale)}; run scripts/gen_protos.py")
            return 1
        print("stubs are up to date")
        return 0
    generate(STUB_DIR)
    print(f"wrote {', '.join(GENERATED)} to {STUB_DIR.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
