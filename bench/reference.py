"""Build a reference code tree for before/after comparisons.

Copies this checkout's `segment_importer` package to OUT and replaces the modules named
(by default the ones performance work may touch) with their text at a git commit, so
every other module is the same on both sides:

    .venv/bin/python -m bench.reference /tmp/ref --commit HEAD
    .venv/bin/python -m bench.equivalence --reference /tmp/ref
    .venv/bin/python -m bench --only splitter --code /tmp/ref     # the "before" figures

Reads git only (`git show`); changes nothing in the repository.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from bench.common import ROOT

PACKAGE = ROOT / "layers" / "segment_importer" / "segment_importer"
PERFORMANCE_MODULES = (
    "formats",
    "records",
    "csv_records",
    "json_array_records",
    "encoding",
    "batching",
    "queueing",
    "mapping",
    "profiles",
    "coercion",
    "timestamps",
    "validation",
)


def build(out: Path, commit: str, modules: tuple[str, ...] = PERFORMANCE_MODULES) -> Path:
    target = out / "segment_importer"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(PACKAGE, target, ignore=shutil.ignore_patterns("__pycache__"))
    for module in modules:
        path = f"{PACKAGE.relative_to(ROOT).as_posix()}/{module}.py"
        shown = subprocess.run(
            ["git", "show", f"{commit}:{path}"], cwd=ROOT, capture_output=True, check=False
        )
        if shown.returncode != 0:  # not in that commit yet: its modules never import it
            continue
        (target / f"{module}.py").write_bytes(shown.stdout)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", type=Path)
    parser.add_argument("--commit", default="HEAD")
    parser.add_argument("--modules", nargs="*", default=list(PERFORMANCE_MODULES))
    args = parser.parse_args()
    print(build(args.out, args.commit, tuple(args.modules)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
