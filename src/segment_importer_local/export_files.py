"""The export files a command is given: files as named, and the export files in folders."""

from __future__ import annotations

from pathlib import Path


def expand_files(paths: list[Path]) -> list[Path]:
    """Files as given; a folder means the export files in it (job.json and hidden files aside)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(
                sorted(
                    p
                    for p in path.iterdir()
                    if p.is_file() and not p.name.startswith(".") and p.name != "job.json"
                )
            )
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"no such file or folder: {path}")
    if not files:
        raise FileNotFoundError("no export files to import")
    return files
