"""The functions as the SAM CLI runs them (`sam local invoke`), against moto and the embedded endpoint.

Everything stays on loopback: a moto server (`ThreadedMotoServer`) holds the stack's resources,
created from template.yaml by `LocalStack` (the code the in-process local run uses), and the
embedded Segment endpoint answers the sender and the pre-flight. The containers run with
`--docker-network host` (made real by `sam_host_network`), so 127.0.0.1 in them is this machine.

`sam local` hands a function only the environment variables the template declares (from the
template, the shell or --env-vars), so `events/env.json` overrides the declared ones that name
resources or the Segment hosts, and the moto endpoint (AWS_ENDPOINT_URL, not declared) is set
by the local base image (local-image/build.py). The ports are fixed for that reason.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from segment_importer_local.segment_endpoint import SegmentEndpoint
from segment_importer_local.stack import PSEUDO_PARAMETERS, LocalFunction, LocalStack, environment
from segment_importer_local.template_config import Resolver, StackTemplate, TemplateError

LOOPBACK = "127.0.0.1"
MOTO_PORT = 5055
SEGMENT_PORT = 5056
MOTO_URL = f"http://{LOOPBACK}:{MOTO_PORT}"
SEGMENT_URL = f"http://{LOOPBACK}:{SEGMENT_PORT}"
# The parameters a local run overrides: the sender and the pre-flight ask the embedded endpoint.
LOCAL_PARAMETERS = {"SegmentHost": SEGMENT_URL, "PreflightHost": SEGMENT_URL}
LOCAL_WRITE_KEY = "local-sam-write-key"  # stored in moto's SSM; the embedded endpoint expects it
FAKE_AWS_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_SESSION_TOKEN": "local",
    "AWS_DEFAULT_REGION": PSEUDO_PARAMETERS["AWS::Region"],
    "AWS_REGION": PSEUDO_PARAMETERS["AWS::Region"],
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_ENDPOINT_URL": MOTO_URL,
}
_ECR_PREFIX = "public.ecr.aws/lambda"
# `sam build` needs the runtime's Python on PATH (pyenv's 3.13 here), as `make sam-build` gives it.
SAM_BUILD_PYENV = "3.13.0:3.12.1:3.11.7"
# Runs the SAM CLI with --docker-network host honoured (see that module).
HOST_NETWORK_LAUNCHER = Path(__file__).with_name("sam_host_network.py")


class SamInvokeError(RuntimeError):
    """A function invoked through the SAM CLI failed (its error, or the CLI's)."""


def function_ids(template: StackTemplate) -> list[str]:
    """The template's functions (logical ids), in template order."""
    return list(template.resources_of_type("AWS::Serverless::Function"))


def _function_setting(template: StackTemplate, name: str) -> Any:
    values = {json.dumps(template.function_property(function, name)) for function in function_ids(template)}
    if len(values) != 1:
        raise TemplateError(f"the functions differ in {name} ({sorted(values)}): one local image serves both")
    return json.loads(values.pop())


def template_runtime(template: StackTemplate) -> str:
    return str(_function_setting(template, "Runtime"))


def deployed_architecture(template: StackTemplate) -> str:
    """The functions' architecture as template.yaml deploys them."""
    return str((_function_setting(template, "Architectures") or ["x86_64"])[0])


def base_image_tag(template: StackTemplate) -> str:
    """The image the SAM CLI builds a zip function's invoke image from: `python3.13` on x86_64
    is public.ecr.aws/lambda/python:3.13-x86_64 (samcli.local.docker.lambda_image.Runtime
    .get_image_name_tag; python runtimes have images for both architectures, hence the suffix)."""
    runtime = template_runtime(template)
    if not runtime.startswith("python"):
        raise TemplateError(f"the local base image is built for Python runtimes, not {runtime}")
    # The architecture of the local build (local_template), not the deployed one.
    return f"{_ECR_PREFIX}/python:{runtime.removeprefix('python')}-{host_architecture()}"


def env_overrides(aws: LocalStack) -> dict[str, dict[str, str]]:
    """events/env.json: per function, the declared variables whose local value differs from what
    the SAM CLI resolves by itself (it knows parameter defaults, not moto's resources)."""
    sam_view = Resolver(
        aws.template.parameter_defaults(), PSEUDO_PARAMETERS, conditions=aws.template.document["Conditions"]
    )
    overrides: dict[str, dict[str, str]] = {}
    for function in function_ids(aws.template):
        variables = aws.template.function_environment(function)
        local = {name: str(aws.resolver.resolve(value)) for name, value in variables.items()}
        overrides[function] = {
            name: value
            for name, value in sorted(local.items())
            if _sam_value(sam_view, variables[name]) != value
        }
    return overrides


def _sam_value(resolver: Resolver, value: Any) -> str | None:
    try:
        return str(resolver.resolve(value))
    except TemplateError:
        return None  # a resource reference: only the local stack knows it


def env_json_text(aws: LocalStack) -> str:
    return json.dumps(env_overrides(aws), indent=2, sort_keys=True) + "\n"


@dataclass
class LocalAws:
    """The running moto server's stack and the embedded endpoint."""

    stack: LocalStack
    endpoint: SegmentEndpoint


@contextmanager
def moto_server() -> Iterator[None]:
    """A moto server on MOTO_PORT, and this process's AWS clients pointed at it."""
    from moto.server import ThreadedMotoServer  # moto[server]: a development dependency

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # it would log every request
    with environment(FAKE_AWS_ENVIRONMENT):
        server = ThreadedMotoServer(ip_address=LOOPBACK, port=MOTO_PORT, verbose=False)
        try:
            server.start()
        except OSError as error:
            message = f"cannot listen on {MOTO_URL} ({error}): is another local run using it?"
            raise SamInvokeError(message) from None
        try:
            _reset_moto()  # moto's state lives in this process, and outlives a stopped server
            yield
        finally:
            _reset_moto()
            server.stop()


def _reset_moto() -> None:
    request = urllib.request.Request(f"{MOTO_URL}/moto-api/reset", method="POST")  # noqa: S310
    with urllib.request.urlopen(request, timeout=30):  # noqa: S310 - http, the local moto server
        pass


@contextmanager
def local_aws(template: StackTemplate, received_path: Path | None = None) -> Iterator[LocalAws]:
    """The stack's resources in a moto server (MOTO_PORT), and the endpoint on SEGMENT_PORT."""
    from segment_importer_local.segment_endpoint import SegmentEndpoint

    with ExitStack() as stack:
        stack.enter_context(moto_server())
        endpoint = stack.enter_context(
            SegmentEndpoint(LOCAL_WRITE_KEY, host=LOOPBACK, port=SEGMENT_PORT, output_path=received_path)
        )
        yield LocalAws(LocalStack(template, LOCAL_PARAMETERS).create(LOCAL_WRITE_KEY), endpoint)


def find_sam_python(root: Path) -> Path:
    """The SAM CLI's interpreter: SAM_VENV, the project's .venv-sam, or the `sam` on PATH."""
    candidates = [Path(os.environ["SAM_VENV"]) / "bin" / "sam"] if os.environ.get("SAM_VENV") else []
    candidates.append(root / ".venv-sam" / "bin" / "sam")
    on_path = shutil.which("sam")
    candidates += [Path(on_path)] if on_path else []
    for sam in candidates:
        if sam.is_file() and (sam.parent / "python").exists():
            return sam.parent / "python"
    raise SamInvokeError("the SAM CLI is not installed: run `make setup` (it installs .venv-sam)")


@dataclass
class Invocation:
    function: str
    response: Any
    seconds: float
    log: str  # the SAM CLI's and the function's output (stderr)


@dataclass
class SamCli:
    """`sam local invoke` of the built template, every container on the host network."""

    # sam_python: the SAM CLI's interpreter, which runs HOST_NETWORK_LAUNCHER

    sam_python: Path
    built_template: Path
    env_vars: Path
    invocations: list[Invocation]

    @classmethod
    def for_build(cls, root: Path, env_vars: Path) -> SamCli:
        built = root / ".aws-sam" / "build" / "template.yaml"
        if not built.is_file():
            raise SamInvokeError(f"{built} is missing: run `make sam-build` first")
        return cls(find_sam_python(root), built, env_vars, [])

    def command(self, function: str, event_path: Path) -> list[str]:
        return [
            str(self.sam_python), str(HOST_NETWORK_LAUNCHER), "local", "invoke", function,
            "--template", str(self.built_template),
            "--event", str(event_path),
            "--env-vars", str(self.env_vars),
            "--docker-network", "host",
            "--skip-pull-image",
        ]  # fmt: skip

    def invoke(self, function: str, event: dict[str, Any]) -> Any:
        with tempfile.NamedTemporaryFile("w", suffix=".json", prefix=f"{function}-") as event_file:
            json.dump(event, event_file)
            event_file.flush()
            return self.invoke_file(function, Path(event_file.name))

    def invoke_file(self, function: str, event_path: Path) -> Any:
        started = time.perf_counter()
        result = subprocess.run(  # noqa: S603 - our own command line
            self.command(function, event_path),
            capture_output=True,
            text=True,
            env={**os.environ, "SAM_CLI_TELEMETRY": "0"},
            timeout=600,
            check=False,
        )
        seconds = time.perf_counter() - started
        response = _last_json_line(result.stdout)
        self.invocations.append(Invocation(function, response, seconds, result.stderr))
        if result.returncode != 0 or response is None:
            raise SamInvokeError(
                f"sam local invoke {function} exited {result.returncode}:\n{result.stderr[-4000:]}"
            )
        if isinstance(response, dict) and "errorType" in response:
            raise SamInvokeError(
                f"{function} failed: {response.get('errorType')}: {response.get('errorMessage')}"
            )
        return response


# The deployed stack is arm64; containers here run this machine's architecture, so the local
# build reads template.yaml with the architectures swapped (and the layers' Makefiles install
# wheels for it). Nothing else differs.
LOCAL_TEMPLATE = ".template.local.yaml"  # gitignored, rewritten before each local build


def host_architecture() -> str:
    return "arm64" if os.uname().machine in ("aarch64", "arm64") else "x86_64"


def local_template(root: Path) -> Path:
    """template.yaml for this machine's architecture, beside it (its relative paths hold)."""
    text = (root / "template.yaml").read_text(encoding="utf-8")
    deployed, host = deployed_architecture(StackTemplate.load(root / "template.yaml")), host_architecture()
    for before, after in (
        (f"Architectures: [{deployed}]", f"Architectures: [{host}]"),
        (f"BuildArchitecture: {deployed}", f"BuildArchitecture: {host}"),
    ):
        text = text.replace(before, after)
    path = root / LOCAL_TEMPLATE
    path.write_text(text, encoding="utf-8")
    return path


def sam_build(sam_python: Path, root: Path) -> Path:
    """`sam build` (cached, from samconfig.toml) so the containers run the current code."""
    print("sam build (cached) ...", file=sys.stderr)
    platform = {"arm64": "aarch64", "x86_64": "x86_64"}[host_architecture()]
    result = subprocess.run(  # noqa: S603 - our own command line
        [str(sam_python), str(HOST_NETWORK_LAUNCHER), "build", "--template-file", str(local_template(root))],
        cwd=root,
        capture_output=True,
        text=True,
        env={**os.environ, "SAM_CLI_TELEMETRY": "0", "LAYER_PLATFORM": platform, **_python_for_sam_build()},
        check=False,
    )
    if result.returncode != 0:
        raise SamInvokeError(f"sam build failed:\n{(result.stdout + result.stderr)[-4000:]}")
    return root / ".aws-sam" / "build" / "template.yaml"


def ensure_built(sam_python: Path, template: StackTemplate) -> Path:
    """The built template, after a `sam build` only if the build is older than the sources."""
    built = template.root / ".aws-sam" / "build" / "template.yaml"
    return built if build_is_current(template, built) else sam_build(sam_python, template.root)


def build_is_current(template: StackTemplate, built: Path) -> bool:
    """Every code file of the functions and the layer is in the build as it is now, and neither
    the template nor the layer's requirements changed since."""
    if not built.is_file():
        return False
    built_for = (_function_setting(StackTemplate.load(built), "Architectures") or ["x86_64"])[0]
    if built_for != host_architecture():  # e.g. `make build` for the arm64 deployment
        return False
    layer = Path(template.resource("DomainLayer")["Properties"]["ContentUri"])
    inputs = [template.root / "template.yaml", template.root / layer / "requirements.txt"]
    if any(path.stat().st_mtime > built.stat().st_mtime for path in inputs if path.exists()):
        return False
    code = {template.root / layer: built.parent / "DomainLayer" / "python"}
    for function in function_ids(template):
        code[template.root / template.function_property(function, "CodeUri")] = built.parent / function
    return all(_same_python_files(source, copy) for source, copy in code.items())


def _same_python_files(source: Path, copy: Path) -> bool:
    for path in source.rglob("*.py"):
        built = copy / path.relative_to(source)
        if not built.is_file() or built.read_bytes() != path.read_bytes():
            return False
    return True


def _python_for_sam_build() -> dict[str, str]:
    """PATH and PYENV_VERSION giving the runtime's python3.13 (pyenv's shims, else a version)."""
    settings = {"PYENV_VERSION": os.environ.get("PYENV_VERSION", SAM_BUILD_PYENV)}
    if shutil.which("python3.13"):
        return settings
    versions = sorted(Path.home().glob(".pyenv/versions/3.13*/bin"))
    if versions:
        settings["PATH"] = f"{versions[-1]}{os.pathsep}{os.environ.get('PATH', '')}"
    return settings


def _last_json_line(stdout: str) -> Any:
    for line in reversed(stdout.strip().splitlines()):
        try:
            return json.loads(line)
        except ValueError:
            continue
    return None


def remote_function(
    aws: LocalStack, function: str, call: Callable[[str, dict[str, Any]], Any]
) -> LocalFunction:
    """A function whose invocations go to a container (`call`), for the local event sources."""
    template = aws.template
    return LocalFunction(
        logical_id=function,
        handler=lambda event, _context: call(function, event),
        timeout_seconds=int(template.function_property(function, "Timeout") or 3),
        memory_mb=int(template.function_property(function, "MemorySize") or 128),
        environment={
            name: str(value)
            for name, value in aws.resolver.resolve(template.function_environment(function)).items()
        },
    )
