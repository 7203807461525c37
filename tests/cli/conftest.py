"""The CLI as a user runs it: a subprocess, its real exit code, its stdout and stderr apart."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCE_PATHS = [ROOT / "layers" / "segment_importer", ROOT / "src", ROOT]


@dataclass
class Completed:
    code: int
    out: str
    err: str

    @property
    def both(self) -> str:
        return self.out + self.err


def cli_environment(**changes: str | None) -> dict[str, str]:
    """The test session's environment (fake AWS credentials, no metadata service), this checkout
    first on the path, a wide terminal for rich unless a test says otherwise."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, SOURCE_PATHS)), "COLUMNS": "200"}
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def start_cli(arguments: list[str], cwd: Path, **env: str | None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "segment_importer_local.cli", *arguments],
        cwd=cwd, env=cli_environment(**env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


@pytest.fixture
def cli(tmp_path: Path) -> Callable[..., Completed]:
    """`cli("run", "x.csv")` in tmp_path; keyword arguments change the environment."""

    def run(*arguments: str, cwd: Path | None = None, **env: str | None) -> Completed:
        completed = subprocess.run(
            [sys.executable, "-m", "segment_importer_local.cli", *arguments],
            cwd=cwd or tmp_path, env=cli_environment(**env), capture_output=True, text=True,
            timeout=240, check=False,
        )  # fmt: skip
        return Completed(completed.returncode, completed.stdout, completed.stderr)

    return run


def no_traceback(completed: Completed) -> None:
    assert "Traceback" not in completed.both, completed.both


def write_csv(path: Path, header: str, rows: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def signups(path: Path, count: int = 3, *, user_column: str = "userId") -> Path:
    """A small valid CSV export: `count` Signed Up events."""
    rows = [f"user_{i},Signed Up,2021-03-06T09:{i % 60:02d}:00Z,pro" for i in range(count)]
    return write_csv(path, f"{user_column},event,timestamp,properties.plan", rows)
