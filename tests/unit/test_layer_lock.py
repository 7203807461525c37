"""The layer is built from a lock: requirements.in (what the layer needs) -> requirements.txt (every
package pinned, with hashes). Both must stay in step with pyproject.toml, or a build a month later
ships something else than what the tests ran."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
LAYER = ROOT / "layers" / "segment_importer"
# What the local CLI needs and Lambda does not run (the layer holds only what Lambda runs), and boto3,
# which the Lambda runtime provides.
NOT_IN_LAYER = {"boto3", "pyyaml", "rich", "pyarrow"}  # pyarrow: its own layer (ParquetLayer)
HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}")


def sources() -> dict[str, Requirement]:
    lines = (LAYER / "requirements.in").read_text(encoding="utf-8").splitlines()
    requirements = [Requirement(line) for line in (line.split("#", 1)[0].strip() for line in lines) if line]
    return {canonicalize_name(r.name): r for r in requirements}


def lock() -> dict[str, tuple[str, list[str]]]:
    """name -> (pinned version, hashes) from the pip-compile output."""
    pins: dict[str, tuple[str, list[str]]] = {}
    current = ""
    for line in (LAYER / "requirements.txt").read_text(encoding="utf-8").splitlines():
        if line[:1].isalpha():
            requirement = Requirement(line.rstrip(" \\"))
            (specifier,) = requirement.specifier
            assert specifier.operator == "==", f"not pinned: {line}"
            current = canonicalize_name(requirement.name)
            pins[current] = (specifier.version, [])
        elif HASH.search(line):
            pins[current][1].append(HASH.search(line).group(0))
    return pins


def project_dependencies() -> dict[str, Requirement]:
    with (ROOT / "pyproject.toml").open("rb") as stream:
        listed = tomllib.load(stream)["project"]["dependencies"]
    return {canonicalize_name(r.name): r for r in map(Requirement, listed)}


def test_the_layer_needs_exactly_the_projects_runtime_dependencies_lambda_runs() -> None:
    project = project_dependencies()
    expected = {name: str(r.specifier) for name, r in project.items() if name not in NOT_IN_LAYER}
    assert {name: str(r.specifier) for name, r in sources().items()} == expected


def test_every_package_is_pinned_with_a_hash_and_satisfies_its_source() -> None:
    pins = lock()
    for name, (version, hashes) in pins.items():
        assert hashes, f"{name}=={version} has no hash"
    for name, requirement in sources().items():
        assert name in pins, f"{name} from requirements.in is not in the lock: run `make lock`"
        assert requirement.specifier.contains(pins[name][0], prereleases=True), (name, pins[name][0])


def test_the_lock_ships_no_boto3_and_no_development_package() -> None:
    for name in ("boto3", "s3transfer", "moto", "pytest", "pyyaml", "rich"):
        assert name not in lock(), f"{name} is locked into the layer"
