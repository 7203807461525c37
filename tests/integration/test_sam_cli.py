"""The SAM CLI accepts the template and builds deployable artifacts from it.

Offline only: `sam validate --lint` (cfn-lint inside SAM) and `sam build` without a
container, which needs Python 3.13 on PATH to build the python3.13 layer. The build runs with
the repository's samconfig.toml (the template's folder), so its settings are exercised too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from segment_importer_local.template_config import StackTemplate

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
LAYER_SOURCE = ROOT / "layers" / "segment_importer"
PYENV_VERSION = "3.13.0:3.12.1:3.11.7"
# Every function of the template, as SAM builds each into .aws-sam/build/<id>.
FUNCTIONS = tuple(StackTemplate.load(TEMPLATE).resources_of_type("AWS::Serverless::Function"))
# Import names of what requirements.txt pulls in, as the handlers import them.
LAYER_IMPORTS = ("orjson", "segment", "aws_lambda_powertools", "ijson")
# In the Lambda runtime already (boto3, botocore) or needed only by code the importer never runs
# (cryptography: segment-analytics-python's OAuth signing): none of them is shipped.
NOT_SHIPPED = ("boto3", "botocore", "s3transfer", "cryptography", "cffi")
# The built layer stays lean: at most this many bytes unzipped (Lambda allows 250 MB for all layers).
LAYER_MAX_BYTES = 30 * 1024 * 1024
# The oldest boto3 the handlers are proven to import with (pyproject.toml pins the same floor); the
# python3.13 runtime has shipped a newer one since its launch.
RUNTIME_BOTO3_FLOOR = "1.35.0"
# Development-only packages that must not be shipped in the layer.
DEV_ONLY = ("pytest", "moto", "ruff", "cfn-lint", "aws-sam-translator", "hypothesis")


def find_sam() -> str | None:
    found = shutil.which("sam")
    if found:
        return found
    local = ROOT / ".venv-sam" / "bin" / "sam"
    return str(local) if local.is_file() else None


SAM = find_sam()
pytestmark = [
    pytest.mark.sam,
    pytest.mark.skipif(SAM is None, reason="SAM CLI not found on PATH or in .venv-sam (run `make setup`)"),
]


def _is_python_313(executable: str, env: dict[str, str]) -> bool:
    try:
        result = subprocess.run(
            [executable, "-c", "import sys; sys.exit(sys.version_info[:2] != (3, 13))"],
            env=env,
            capture_output=True,
            timeout=30,
            check=False,
        )
    except OSError:
        return False
    return result.returncode == 0


def find_python313_folder() -> Path | None:
    """The folder holding a working `python3.13`: pyenv's shims (with PYENV_VERSION) or a version."""
    env = {**os.environ, "PYENV_VERSION": PYENV_VERSION}
    found = shutil.which("python3.13", path=env.get("PATH"))
    if found and _is_python_313(found, env):
        return Path(found).parent
    for folder in sorted(Path.home().glob(".pyenv/versions/3.13*/bin"), reverse=True):
        if _is_python_313(str(folder / "python3.13"), env):
            return folder
    return None


@dataclass(frozen=True)
class Build:
    root: Path  # working folder (SAM keeps its .aws-sam/deps here for cached builds)
    artifacts: Path  # --build-dir
    output: str

    @property
    def layer(self) -> Path:
        return self.artifacts / "DomainLayer" / "python"


def run_sam(
    args: Sequence[str], *, cwd: Path, env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    assert SAM is not None
    return subprocess.run(
        [SAM, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def sam_env() -> dict[str, str]:
    return {**os.environ, "SAM_CLI_TELEMETRY": "0", "PYENV_VERSION": PYENV_VERSION}


@pytest.fixture(scope="module")
def python313(sam_env: dict[str, str]) -> Path:
    folder = find_python313_folder()
    if folder is None:
        pytest.skip(
            "no Python 3.13 (python3.13 with PYENV_VERSION, or ~/.pyenv/versions/3.13*): sam build needs it"
        )
    return folder


@pytest.fixture(scope="module")
def build(sam_env: dict[str, str], python313: Path, tmp_path_factory: pytest.TempPathFactory) -> Build:
    """One `sam build` for the module; --cached and --parallel come from samconfig.toml."""
    root = tmp_path_factory.mktemp("sam-build")
    env = {**sam_env, "PATH": f"{python313}{os.pathsep}{sam_env.get('PATH', '')}"}
    result = run_sam(
        [
            "build",
            "--template-file",
            str(TEMPLATE),
            "--build-dir",
            str(root / "build"),
            "--cache-dir",
            str(root / "cache"),
        ],
        cwd=root,
        env=env,
        timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"sam build failed:\n{output[-6000:]}"
    return Build(root, root / "build", output)


def layer_listing(build: Build) -> str:
    layer_root = build.artifacts / "DomainLayer"
    if not layer_root.exists():
        built = sorted(path.name for path in build.artifacts.iterdir())
        return f"{layer_root} does not exist; the build folder holds {built}"
    return "\n".join(str(path.relative_to(layer_root)) for path in sorted(layer_root.glob("*/*"))[:60])


def installed_distributions(site: Path) -> dict[str, str]:
    """Canonical name -> version for every *.dist-info in a site folder."""
    installed = {}
    for metadata in site.glob("*.dist-info/METADATA"):
        fields = dict(
            line.split(": ", 1) for line in metadata.read_text(encoding="utf-8").splitlines() if ": " in line
        )
        installed[canonicalize_name(fields["Name"])] = fields["Version"]
    return installed


def layer_requirements() -> list[Requirement]:
    """The lock's pins: `name==version \\` lines; hash and comment lines are indented."""
    lines = (LAYER_SOURCE / "requirements.txt").read_text(encoding="utf-8").splitlines()
    return [Requirement(line.rstrip(" \\")) for line in lines if line[:1].isalpha()]


def tree_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


# ---- sam validate ----------------------------------------------------------------------------


def test_sam_validate_lint(sam_env: dict[str, str]) -> None:
    result = run_sam(
        ["validate", "--lint", "--template-file", str(TEMPLATE)], cwd=ROOT, env=sam_env, timeout=180
    )
    output = result.stdout + result.stderr

    assert result.returncode == 0, output
    assert "is a valid SAM Template" in output, output


# ---- sam build ---------------------------------------------------------------------------------


def test_sam_build_uses_samconfig_settings(build: Build) -> None:
    assert "Build Succeeded" in build.output
    # Printed only for cached builds; the command line did not ask for one, samconfig.toml did.
    assert "Starting Build use cache" in build.output, build.output[-3000:]


def test_layer_holds_the_package_under_python(build: Build) -> None:
    """Lambda adds /opt/python to sys.path: the package must sit directly below python/."""
    package = build.layer / "segment_importer"

    for module in ("__init__.py", "split/splitter.py", "deliver/sender.py", "batch/queueing.py"):
        assert (package / module).is_file(), (
            f"missing python/segment_importer/{module}; layer:\n{layer_listing(build)}"
        )
    for name in LAYER_IMPORTS:
        assert (build.layer / name).is_dir(), (
            f"dependency {name} not in the layer; layer:\n{layer_listing(build)}"
        )


def test_layer_installs_what_requirements_txt_asks_for(build: Build) -> None:
    installed = installed_distributions(build.layer)
    requirements = layer_requirements()
    assert requirements, "requirements.txt lists nothing"

    for requirement in requirements:
        name = canonicalize_name(requirement.name)
        if name in NOT_SHIPPED or name == "pycparser":
            assert name not in installed, f"{name} is shipped although the layer's Makefile excludes it"
            continue
        assert name in installed, f"{requirement} from requirements.txt is not in the layer"
        assert requirement.specifier.contains(installed[name], prereleases=True), (
            requirement,
            installed[name],
        )
    for name in DEV_ONLY:
        assert canonicalize_name(name) not in installed, f"development package {name} shipped in the layer"


def test_layer_binaries_are_built_for_python_3_13_on_arm64(build: Build) -> None:
    """Wheels for this machine (3.11, x86_64) would fail to import on the arm64 python3.13 runtime."""
    extensions = [path.name for path in (build.layer / "orjson").glob("*.so")]

    assert extensions, "orjson has no compiled extension in the layer"
    assert all("cpython-313-aarch64-linux-gnu" in name for name in extensions), extensions


def test_layer_is_lean(build: Build) -> None:
    for name in NOT_SHIPPED:
        assert not (build.layer / name).exists(), f"{name} is in the layer"
    size = tree_bytes(build.layer)
    print(f"built layer: {size / 2**20:.1f} MiB unzipped")
    assert size <= LAYER_MAX_BYTES, f"the layer is {size / 2**20:.1f} MiB"
    # Compiled for 3.13 where the builder had it: /opt is read-only, so Lambda cannot cache bytecode.
    assert list(build.layer.glob("segment_importer/__pycache__/*.cpython-313.pyc"))


@pytest.fixture(scope="module")
def host_layer(python313: Path, sam_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same layer Makefile, run for this machine's platform, beside the runtime's oldest boto3:
    what the arm64 layer holds, importable here."""
    root = tmp_path_factory.mktemp("host-layer")
    env = {**sam_env, "PATH": f"{python313}{os.pathsep}{sam_env.get('PATH', '')}"}
    subprocess.run(
        ["make", "-s", "-C", str(LAYER_SOURCE), "build-DomainLayer", f"ARTIFACTS_DIR={root}",
         f"LAYER_PLATFORM={os.uname().machine}"],
        env=env, check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    subprocess.run(
        [str(python313 / "python3.13"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--target", str(root / "runtime"), f"boto3=={RUNTIME_BOTO3_FLOOR}"],
        env=env, check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    return root


@pytest.mark.parametrize("function_id", FUNCTIONS)
def test_handlers_import_from_the_built_artifacts(
    build: Build, host_layer: Path, python313: Path, sam_env: dict[str, str], function_id: str
) -> None:
    """As Lambda runs them: the function folder plus the layer, and no other site-packages."""
    code = build.artifacts / function_id
    layer, runtime = host_layer / "python", host_layer / "runtime"
    script = (
        "import sys\n"
        f"sys.path[:0] = [{str(code)!r}, {str(layer)!r}, {str(runtime)!r}]\n"
        "import app\n"
        "assert callable(app.handler)\n"
        "assert app.__file__.startswith(sys.path[0]), app.__file__\n"
        "import segment_importer\n"
        "assert segment_importer.__file__.startswith(sys.path[1]), segment_importer.__file__\n"
        "import boto3\n"
        f"assert boto3.__version__ == {RUNTIME_BOTO3_FLOOR!r}, boto3.__version__\n"
        "assert 'cryptography' not in sys.modules\n"
    )
    run_isolated_python(python313, script, sam_env, build.root)


def run_isolated_python(python313: Path, script: str, env: dict[str, str], cwd: Path) -> None:
    """`script` in Python 3.13 with no site-packages: only the paths it puts on sys.path."""
    result = subprocess.run(
        [str(python313 / "python3.13"), "-I", "-S", "-c", script],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_built_template_points_at_the_artifacts(build: Build) -> None:
    built = StackTemplate.load(build.artifacts / "template.yaml")

    assert built.resource("DomainLayer")["Properties"]["ContentUri"] == "DomainLayer"
    for function_id in FUNCTIONS:
        assert built.resource(function_id)["Properties"]["CodeUri"] == function_id
        assert (build.artifacts / function_id / "app.py").is_file()


# ---- the Parquet layer -------------------------------------------------------------------------

LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024  # a function and all its layers, unzipped


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file() and not path.is_symlink())


def test_the_parquet_layer_is_trimmed_and_fits_lambda_with_the_main_layer(build: Build) -> None:
    parquet = build.artifacts / "ParquetLayer" / "python"
    assert (parquet / "pyarrow" / "parquet").is_dir()
    assert not (parquet / "pyarrow" / "tests").exists()
    assert not list((parquet / "pyarrow").glob("*flight*.so*"))  # Flight's libraries (30 MB) are gone
    splitter = build.artifacts / "SplitterFunction"
    total = folder_bytes(parquet) + folder_bytes(build.layer) + folder_bytes(splitter)
    assert total < LAMBDA_UNZIPPED_LIMIT, f"{total:,} bytes unzipped"


@pytest.fixture(scope="module")
def host_parquet_layer(
    python313: Path, sam_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The Parquet layer's Makefile, run for this machine's platform (the deployed one is arm64)."""
    root = tmp_path_factory.mktemp("host-parquet-layer")
    env = {**sam_env, "PATH": f"{python313}{os.pathsep}{sam_env.get('PATH', '')}"}
    subprocess.run(
        ["make", "-s", "-C", str(ROOT / "layers" / "parquet"), "build-ParquetLayer", f"ARTIFACTS_DIR={root}",
         f"LAYER_PLATFORM={os.uname().machine}"],
        env=env, check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    return root / "python"


def test_the_parquet_reader_runs_on_the_built_layers(
    build: Build, host_layer: Path, host_parquet_layer: Path, python313: Path, sam_env: dict[str, str]
) -> None:
    """The trimmed pyarrow imports on Python 3.13 and the reader reads a file it writes (both
    layers built by their own Makefiles for this machine: the deployed ones are arm64)."""
    parquet = host_parquet_layer
    script = (
        "import sys, io\n"
        f"sys.path[:0] = [{str(host_layer / 'python')!r}, {str(parquet)!r}]\n"
        "import pyarrow as pa, pyarrow.parquet as pq\n"
        "assert pa.__file__.startswith(sys.path[1]), pa.__file__\n"
        "from segment_importer.read.handle import BytesHandle\n"
        "from segment_importer.read.parquet import parquet_records\n"
        "sink = io.BytesIO()\n"
        "ts = pa.array([1_700_000_000_123_456_789], pa.timestamp('ns', tz='Europe/Paris'))\n"
        "pq.write_table(pa.table({'userId': ['u1'], 'at': ts, 'ctx': [{'ip': '203.0.113.1'}]}), sink)\n"
        "(record,) = parquet_records(BytesHandle(sink.getvalue()))\n"
        "assert record.fields == {'userId': 'u1', 'at': '2023-11-14T22:13:20.123456Z',"
        " 'ctx': {'ip': '203.0.113.1'}}, record.fields\n"
    )
    run_isolated_python(python313, script, sam_env, build.root)
