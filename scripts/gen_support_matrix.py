"""Write the support matrix from the model registry into README.md.

The table between the support-matrix markers of README.md is what
``ditserve models --supported`` prints; tests/test_support_matrix.py fails when
they differ.

Usage:
    python scripts/gen_support_matrix.py            # rewrite the table in README.md
    python scripts/gen_support_matrix.py --check    # exit 1 if README.md is stale
"""

from __future__ import annotations

import argparse
import pathlib
import sys

from engine_service.models.matrix import readme_with_matrix

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check; exit 1 when README.md is stale")
    args = parser.parse_args()
    current = README.read_text()
    updated = readme_with_matrix(current)
    if args.check:
        if updated != current:
            print("README.md support matrix is stale: run scripts/gen_support_matrix.py", file=sys.stderr)
            return 1
        return 0
    if updated != current:
        README.write_text(updated)
        print("README.md support matrix updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
