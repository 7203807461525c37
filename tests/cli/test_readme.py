"""README's commands work as written: the worked example's, run as a user would, and every
make target it names exists."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

from tests.cli.conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
CLI = ".venv/bin/segment-importer "


def _bash_blocks(section: str) -> list[str]:
    body = README.split(f"## {section}", 1)[1].split("\n## ", 1)[0]
    return [line for block in re.findall(r"```bash\n(.*?)```", body, re.S) for line in block.splitlines()]


def test_the_worked_example_runs_as_written(cli, tmp_path: Path) -> None:
    shutil.copytree(ROOT / "docs" / "example", tmp_path / "docs" / "example")
    commands = [line.split("#")[0].strip() for line in _bash_blocks("A worked example")]
    local = [command for command in commands if command.startswith(CLI) and "--write-key" not in command]
    assert len(local) == 6, local

    done = [cli(*command.removeprefix(CLI).split()) for command in local]
    run = done[3]

    # check-job, preview (a page, in a folder that did not exist), dry run, run, rejects, status
    assert [completed.code for completed in done] == [0, 0, 3, 3, 0, 0], [
        completed.both for completed in done
    ]
    assert (tmp_path / "out" / "preview.html").read_text().startswith("<!DOCTYPE html>")
    verdict = re.search(r"^(DONE WITH REJECTS: sent 3 of 4 records to http://127\.0\.0\.1:)", README, re.M)
    assert verdict, "the README's verdict line"
    assert verdict.group(1) in run.out
    received = [json.loads(line) for line in _latest(tmp_path).joinpath("received.ndjson").open()]
    ana = next(message for message in received if message["userId"] == "ana@example.com")
    assert '"timestamp":\n"2021-03-06T09:30:00.000Z"' in README
    assert ana["timestamp"] == "2021-03-06T09:30:00.000Z"
    assert ana["integrations"] == {"All": False, "Mixpanel": True}
    assert "internal_note" not in json.dumps(ana)


def test_every_make_target_in_the_readme_exists() -> None:
    targets = {
        match.group(1)
        for line in README.splitlines()
        for match in [re.match(r"\s*make ([a-z-]+)", line.removeprefix("`"))]
        if match
    }
    assert {"setup", "run", "test", "deploy", "lint", "audit", "bench"} <= targets
    # One `make -n` for them all: make refuses the lot if it does not know one.
    dry = subprocess.run(
        ["make", "-n", *sorted(targets)], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert dry.returncode == 0, dry.stderr
    assert "export SAM_CLI_TELEMETRY := 0" in (ROOT / "Makefile").read_text()


def _latest(tmp_path: Path) -> Path:
    return Path((tmp_path / "out" / "LATEST").read_text().strip())
