"""Build the Lambda Python base image that `sam local` looks for, offline, from this machine.

No image registry is reachable here, so `public.ecr.aws/lambda/python:<version>-<arch>` cannot be
pulled. This script assembles an equivalent root file system from what the host has and imports
it as that image (`docker import`):

- the host's own CPython of the template's runtime (pyenv's, under /root/.pyenv/versions) as
  /var/lang, the prefix the Lambda images use, without its test suite, Tk and static library;
- the shared libraries that Python, its extension modules and the runtime client link against,
  found with ldd, and a few host binaries the SAM CLI's generated Dockerfile RUNs (sh, mv,
  chmod, cp, rm) at their merged-/usr paths;
- the Lambda runtime interface client (awslambdaric, pinned in requirements.txt, from PyPI)
  under /var/runtime, started by /var/runtime/bootstrap, which the SAM CLI's emulator
  (aws-lambda-rie, shipped inside the SAM CLI and added by it at invoke time) executes.

The image carries a label with a digest of its inputs; a second run with the same inputs does
nothing (`make local-image` is cheap when up to date).

Usage: python local-image/build.py [--force] [--template template.yaml]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import re
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

from segment_importer_local.sam_local import MOTO_URL, base_image_tag, template_runtime
from segment_importer_local.template_config import StackTemplate

HERE = Path(__file__).resolve().parent
BUILD_DIR = HERE / "build"  # the runtime client's install (gitignored)
INPUTS_LABEL = "segment-importer.local-image.inputs"
PYENV_VERSIONS = Path("/root/.pyenv/versions")
LANG_PREFIX = "var/lang"
# Left out of /var/lang: not used by a Lambda function, and most of the image's size.
STDLIB_SKIPPED = {"test", "idlelib", "tkinter", "turtledemo", "ensurepip", "site-packages", "__phello__"}
STDLIB_SKIPPED_PATTERNS = (
    re.compile(r"^config-\d"),
    re.compile(r"^_tkinter\."),
    re.compile(r"\.opt-[12]\.pyc$"),
)
HOST_BINARIES = ("sh", "dash", "mv", "chmod", "cp", "rm", "mkdir", "ls", "cat", "env")
# The Lambda python3.13 image's settings (its Dockerfile's ENV lines), as SAM's containers expect.
IMAGE_ENV = {
    "LANG": "en_US.UTF-8",
    "TZ": ":/etc/localtime",
    "PATH": "/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin",
    "LD_LIBRARY_PATH": ":".join(
        [
            *("/var/lang/lib", "/lib64", "/usr/lib64", "/var/runtime", "/var/runtime/lib"),
            *("/var/task", "/var/task/lib", "/opt/lib"),
        ]
    ),
    "LAMBDA_TASK_ROOT": "/var/task",
    "LAMBDA_RUNTIME_DIR": "/var/runtime",
    # `sam local` passes only the environment variables the template declares, so the AWS
    # endpoint of the local moto server is the image's: this image is for local runs only.
    "AWS_ENDPOINT_URL": MOTO_URL,
}
USERS_FILE = "root:x:0:0:root:/root:/bin/sh\nsbx_user1051:x:993:990::/home/sbx_user1051:/sbin/nologin\n"
GROUPS_FILE = "root:x:0:\nsbx_user1051:x:990:\n"


def host_python(version: str) -> Path:
    """The newest pyenv CPython of the runtime's minor version (e.g. 3.13 -> 3.13.0)."""
    candidates = sorted(
        PYENV_VERSIONS.glob(f"{version}.*"), key=lambda p: [int(n) for n in p.name.split(".")]
    )
    for prefix in reversed(candidates):
        if (prefix / "bin" / f"python{version}").is_file():
            return prefix
    raise SystemExit(f"no CPython {version} under {PYENV_VERSIONS}: the image's /var/lang comes from it")


def inputs_digest(python_prefix: Path, tag: str) -> str:
    digest = hashlib.sha256()
    for path in (Path(__file__), HERE / "bootstrap", HERE / "requirements.txt"):
        digest.update(path.read_bytes())
    version = subprocess.run(
        [str(python_prefix / "bin" / "python3"), "-VV"], capture_output=True, text=True, check=True
    ).stdout
    digest.update(f"{python_prefix}\n{version}\n{tag}\n{sorted(IMAGE_ENV.items())}".encode())
    return digest.hexdigest()[:32]


def current_digest(tag: str) -> str | None:
    result = subprocess.run(
        ["docker", "image", "inspect", "--format", f'{{{{index .Config.Labels "{INPUTS_LABEL}"}}}}', tag],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() if result.returncode == 0 else None


def install_runtime_client(python_prefix: Path, version: str) -> Path:
    """awslambdaric and its dependencies for this Python, in a folder kept while the pins and
    the Python hold (a change elsewhere in the image does not ask PyPI again)."""
    requirements_digest = hashlib.sha256((HERE / "requirements.txt").read_bytes() + bytes(python_prefix))
    target = BUILD_DIR / f"runtime-{requirements_digest.hexdigest()[:16]}"
    if (target / "awslambdaric").is_dir():
        return target
    python = python_prefix / "bin" / f"python{version}"
    requirements = HERE / "requirements.txt"
    command = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    command += ["--only-binary=:all:", "--target", str(target), "-r", str(requirements)]
    subprocess.run(command, check=True)
    return target


def shared_libraries(files: list[Path]) -> set[Path]:
    """Every library the files link against (ldd resolves the whole closure)."""
    libraries: set[Path] = set()
    for path in files:
        result = subprocess.run(["ldd", str(path)], capture_output=True, text=True, check=False)
        for line in result.stdout.splitlines():
            match = re.search(r"(/\S+)\s+\(0x", line)
            if match and "/root/" not in match.group(1):
                libraries.add(Path(match.group(1)))
    return libraries


def usr_path(path: Path) -> str:
    """Where a host file lives under merged /usr (/lib/x.so -> usr/lib/x.so)."""
    text = str(path).lstrip("/")
    return text if text.startswith("usr/") else f"usr/{text}"


def stdlib_members(python_prefix: Path, version: str) -> Iterator[tuple[Path, str]]:
    yield python_prefix / "bin" / f"python{version}", f"{LANG_PREFIX}/bin/python{version}"
    for library in (python_prefix / "lib").glob("libpython*.so*"):
        yield library, f"{LANG_PREFIX}/lib/{library.name}"
    stdlib = python_prefix / "lib" / f"python{version}"
    for folder, subfolders, files in os.walk(stdlib):
        relative = Path(folder).relative_to(stdlib)
        if relative == Path("."):
            subfolders[:] = [name for name in subfolders if name not in STDLIB_SKIPPED]
        subfolders[:] = [name for name in subfolders if not _skipped(name)]
        for name in files:
            if not _skipped(name):
                yield Path(folder) / name, f"{LANG_PREFIX}/lib/python{version}/{relative / name}"


def _skipped(name: str) -> bool:
    return any(pattern.search(name) for pattern in STDLIB_SKIPPED_PATTERNS)


class RootFs:
    """A tar stream of the image's files, written straight to `docker import`."""

    def __init__(self, stream: io.BufferedWriter) -> None:
        self.tar = tarfile.open(fileobj=stream, mode="w|", format=tarfile.GNU_FORMAT)  # noqa: SIM115
        self.files = 0
        self.bytes = 0

    def add_file(self, source: Path, name: str, mode: int | None = None) -> None:
        info = self.tar.gettarinfo(str(source.resolve()), arcname=name)
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        if mode is not None:
            info.mode = mode
        with source.open("rb") as handle:
            self.tar.addfile(info, handle)
        self.files += 1
        self.bytes += info.size

    def add_text(self, name: str, text: str, mode: int = 0o644) -> None:
        data = text.encode()
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(data), mode, int(time.time())
        self.tar.addfile(info, io.BytesIO(data))

    def add_dir(self, name: str, mode: int = 0o755) -> None:
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.mtime = tarfile.DIRTYPE, mode, int(time.time())
        self.tar.addfile(info)

    def add_link(self, name: str, target: str) -> None:
        info = tarfile.TarInfo(name)
        info.type, info.linkname, info.mtime = tarfile.SYMTYPE, target, int(time.time())
        self.tar.addfile(info)


def write_rootfs(rootfs: RootFs, python_prefix: Path, version: str, runtime_client: Path) -> None:
    for name in ("usr", "usr/bin", "usr/lib", "usr/lib64", "etc", "var", "var/task", "var/runtime", "opt"):
        rootfs.add_dir(name)
    rootfs.add_dir("tmp", 0o1777)
    for link in ("bin", "lib", "lib64", "sbin"):
        rootfs.add_link(link, f"usr/{link if link != 'sbin' else 'bin'}")
    rootfs.add_text("etc/passwd", USERS_FILE)
    rootfs.add_text("etc/group", GROUPS_FILE)
    members = list(stdlib_members(python_prefix, version))
    for source, name in members:
        rootfs.add_file(source, name)
    rootfs.add_link(f"{LANG_PREFIX}/bin/python3", f"python{version}")
    rootfs.add_link(f"{LANG_PREFIX}/bin/python", f"python{version}")
    binaries = [Path(f"/usr/bin/{name}") for name in HOST_BINARIES if Path(f"/usr/bin/{name}").exists()]
    for binary in binaries:
        rootfs.add_file(binary, usr_path(binary), mode=0o755)
    client_files = [path for path in sorted(runtime_client.rglob("*")) if path.is_file()]
    for path in client_files:
        rootfs.add_file(path, f"var/runtime/{path.relative_to(runtime_client)}")
    rootfs.add_file(HERE / "bootstrap", "var/runtime/bootstrap", mode=0o755)
    linked = [
        source
        for source, _ in members
        if source.suffix == ".so" or source.name.startswith(("python", "libpython"))
    ]
    linked += binaries + [path for path in client_files if path.suffix == ".so"]
    for library in sorted(shared_libraries(linked)):
        rootfs.add_file(library, usr_path(library))


def docker_import(tag: str, digest: str, python_prefix: Path, version: str, runtime_client: Path) -> RootFs:
    changes = [f"ENV {name}={value}" for name, value in IMAGE_ENV.items()]
    # No ENTRYPOINT: the SAM CLI starts its emulator (/var/rapid/aws-lambda-rie) itself.
    changes += ["WORKDIR /var/task", f"LABEL {INPUTS_LABEL}={digest}"]
    command = ["docker", "import", *(arg for change in changes for arg in ("--change", change)), "-", tag]
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    assert process.stdin is not None
    rootfs = RootFs(process.stdin)  # type: ignore[arg-type]
    write_rootfs(rootfs, python_prefix, version, runtime_client)
    rootfs.tar.close()
    process.stdin.close()
    if process.wait() != 0:
        raise SystemExit(f"docker import failed ({process.returncode}); is dockerd running? (make docker-up)")
    # The image this one replaced, untagged now: only images of this script carry the label.
    prune = ["docker", "image", "prune", "--force", "--filter", f"label={INPUTS_LABEL}"]
    subprocess.run(prune, capture_output=True, check=False)
    return rootfs


def image_size(tag: str) -> int:
    result = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Size}}", tag],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(result.stdout.strip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--force", action="store_true", help="rebuild even if the inputs did not change")
    parser.add_argument("--template", type=Path, help="template.yaml (default: found from here)")
    arguments = parser.parse_args(argv)
    template = StackTemplate.load(arguments.template)
    tag = base_image_tag(template)
    version = template_runtime(template).removeprefix("python")
    python_prefix = host_python(version)
    digest = inputs_digest(python_prefix, tag)
    if not arguments.force and current_digest(tag) == digest:
        print(f"{tag} is up to date (inputs {digest})")
        return 0
    started = time.perf_counter()
    runtime_client = install_runtime_client(python_prefix, version)
    rootfs = docker_import(tag, digest, python_prefix, version, runtime_client)
    seconds = time.perf_counter() - started
    size = image_size(tag)
    print(
        f"built {tag} from {python_prefix} in {seconds:.1f} s: {rootfs.files} files, "
        f"{rootfs.bytes / 1e6:.1f} MB in, image {size / 1e6:.1f} MB (inputs {digest})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
