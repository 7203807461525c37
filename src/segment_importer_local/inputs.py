"""The files a local run imports, and where each lands under the drop folder.

Folders are searched recursively, and a file keeps its path relative to the folder given
(with that folder's own name first), so `run exports/2019 exports/2020` drops
`local/2019/events.csv` and `local/2020/events.csv`: two imports with two reports, never one
overwriting the other. A `job.json` in a folder lands at the matching prefix, where the splitter
finds it as the nearest job file, exactly as in the bucket. Hidden files and folders are skipped.

A file given on its own is governed by the job.json beside it, or in the nearest folder above
it (up to the working directory): the file lands under that folder's name, with the job file,
as if the folder had been given with only that file in it. Without one it lands at the root.

Files are sent in the order found (by name), except that a warehouse table repeating the
per-event tables' rows without their properties (Segment's and RudderStack's `tracks`,
Heap's `all_events`) comes after the others: its rows share their messageIds with the
per-event tables' rows, and Segment keeps the first message of an id, so the rows with the
properties must arrive first.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from segment_importer.job import JOB_FILE_NAME
from segment_importer.mapping.profiles.warehouse import is_shadow_table


class InputError(ValueError):
    """No such file, nothing to import, or two inputs that would land on one key."""


@dataclass(frozen=True, slots=True)
class InputFile:
    path: Path
    relative: str  # under the local drop folder, "/"-separated

    @property
    def is_job_file(self) -> bool:
        return PurePosixPath(self.relative).name == JOB_FILE_NAME


def find_inputs(paths: list[Path]) -> list[InputFile]:
    """Every export file (and job file) under `paths`, in a stable order."""
    found: list[InputFile] = []
    for path in paths:
        if path.is_dir():
            found.extend(_in_folder(path))
        elif path.is_file():
            if problem := _unreadable(path):
                raise InputError(f"cannot read {path}: {problem}")
            found.extend(_file_with_its_job(path))
        elif path.is_symlink():
            raise InputError(f"cannot read {path}: {_unreadable(path)}")
        else:
            raise InputError(f"no such file or folder: {path}")
    if not any(not item.is_job_file for item in found):
        raise InputError(f"no export files to import in {', '.join(str(path) for path in paths)}")
    found = list(dict.fromkeys(found))  # two files beside one job.json bring it once
    _refuse_collisions(found)
    # Stable: the order found, shadow tables (`tracks`) last, so their rows lose to the
    # per-event tables' rows of the same id (the module doc).
    return sorted(found, key=lambda item: not item.is_job_file and is_shadow_table(item.relative))


def _file_with_its_job(path: Path) -> list[InputFile]:
    """The file, and the job.json that governs it as it would in the bucket (the module doc)."""
    if path.name == JOB_FILE_NAME:
        return [InputFile(path, path.name)]
    folder = _nearest_job_folder(path.resolve().parent)
    if folder is None:
        return [InputFile(path, path.name)]
    base = folder.name or "drop"
    relative = path.resolve().relative_to(folder)
    job = folder / JOB_FILE_NAME
    if Path.cwd().resolve() in folder.parents or folder == Path.cwd().resolve():
        job = job.relative_to(Path.cwd().resolve())  # as the user would name it
    return [
        InputFile(job, f"{base}/{JOB_FILE_NAME}"),
        InputFile(path, "/".join((base, *relative.parts))),
    ]


def _nearest_job_folder(folder: Path) -> Path | None:
    """`folder` or the nearest folder above it holding a job.json, not above the working
    directory (a file outside it: only its own folder)."""
    top = Path.cwd().resolve()
    while True:
        if (folder / JOB_FILE_NAME).is_file():
            return folder
        if folder == top or top not in folder.parents:
            return None
        folder = folder.parent


def _in_folder(folder: Path) -> list[InputFile]:
    """The folder's files; one that cannot be read (a dangling symlink, no read permission)
    refuses the run before it starts, naming it: skipping it would leave its records out of
    a run that then says OK."""
    base = folder.resolve().name or "drop"
    files, unreadable = [], []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts) or path.is_dir():
            continue
        if problem := _unreadable(path):
            unreadable.append(f"{path} ({problem})")
            continue
        files.append(InputFile(path, "/".join((base, *relative.parts))))
    if unreadable:
        raise InputError(
            f"cannot read {len(unreadable)} file(s) in {folder}: {'; '.join(unreadable[:5])}"
            f"{' and more' if len(unreadable) > 5 else ''}. Fix or remove them (hidden files are skipped)"
        )
    return files


def _unreadable(path: Path) -> str | None:
    """Why `path` cannot be imported, or None."""
    if path.is_symlink() and not path.exists():
        return f"a broken symlink to {os.readlink(path)}"
    if not path.is_file():
        return "not a regular file"
    try:
        with path.open("rb"):
            pass
    except OSError as error:
        return error.strerror or str(error)
    return None


def _refuse_collisions(found: list[InputFile]) -> None:
    counts = Counter(item.relative for item in found)
    twice = sorted(relative for relative, count in counts.items() if count > 1)
    if twice:
        sources = [str(item.path) for item in found if item.relative in twice]
        raise InputError(
            f"two inputs would land on one key ({', '.join(twice)}): {', '.join(sources)}; "
            "give their folders instead, so each keeps its own path"
        )
