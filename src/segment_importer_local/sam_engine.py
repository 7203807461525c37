"""`segment-importer run --engine sam`: the local run with the functions in SAM CLI containers.

The in-process engine imports the handlers; this one runs them as the SAM CLI packages them
(`sam build`: the layer, the handler path, the environment, memory and timeout from the
template) in the local base image, through the Lambda API that `sam local start-lambda`
serves. Everything else is the local run's own: the runner uploads the files, turns them into
S3 events and drains the queues (`event_source.SqsPoller`) and settles the figures from the
ledger, so a verdict means the same in both engines.

AWS is a moto server on MOTO_PORT instead of in-process moto (the containers reach it on the
host's loopback: the base image points AWS_ENDPOINT_URL there), created from template.yaml by
the same `LocalStack`. The embedded Segment endpoint is the runner's.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from typing import Any

import boto3
from botocore.config import Config

from segment_importer_local.sam_local import (
    HOST_NETWORK_LAUNCHER,
    LOOPBACK,
    SamInvokeError,
    base_image_tag,
    ensure_built,
    find_sam_python,
    function_ids,
    moto_server,
    remote_function,
)
from segment_importer_local.stack import LocalFunction, LocalStack
from segment_importer_local.template_config import StackTemplate

READY_ATTEMPTS = 600  # polls of start-lambda's port, 0.1 s apart, before giving up
_LAMBDA_CONFIG = Config(read_timeout=960, connect_timeout=10, retries={"max_attempts": 0})


class SamEngine:
    """A context manager: the moto server, then (lazily) `sam build` and `sam local start-lambda`."""

    def __init__(self, options: Any) -> None:
        unsupported = {
            "--dry-run": options.dry_run,  # DRY_RUN is not a template variable: a container would send
            "AWS fault injection": _has_aws_faults(options.aws_faults),  # patches in-process clients only
        }
        refused = [name for name, asked in unsupported.items() if asked]
        if refused:
            raise SamInvokeError(f"--engine sam does not support {', '.join(refused)}: use the local engine")
        self._exit = ExitStack()
        self._lambda: Any = None
        self._template_path = options.template_path

    def __enter__(self) -> SamEngine:
        self._exit.enter_context(moto_server())
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._exit.close()

    def stack(self, template: StackTemplate, parameter_overrides: dict[str, str] | None = None) -> LocalStack:
        return SamStack(self, template, parameter_overrides)

    def invoke(self, function: str, event: dict[str, Any]) -> Any:
        response = self._lambda.invoke(FunctionName=function, Payload=json.dumps(event).encode())
        payload = json.loads(response["Payload"].read() or b"null")
        if response.get("FunctionError"):
            error = payload if isinstance(payload, dict) else {}
            raise SamInvokeError(f"{function} failed: {error.get('errorType')}: {error.get('errorMessage')}")
        return payload

    def start(self, stack: LocalStack) -> None:
        """Build with the SAM CLI and serve the functions, with this stack's environment."""
        if self._lambda is not None:
            return
        root = stack.template.root
        _require_image(base_image_tag(stack.template))
        sam_python = find_sam_python(root)
        built = ensure_built(sam_python, stack.template)
        env_file = self._exit.enter_context(tempfile.NamedTemporaryFile("w", suffix=".json", prefix="env-"))  # noqa: SIM115
        json.dump(_function_environments(stack), env_file)
        env_file.flush()
        port = _free_port()
        command = [str(sam_python), str(HOST_NETWORK_LAUNCHER), "local", "start-lambda"]
        command += [
            "--template",
            str(built),
            "--env-vars",
            env_file.name,
            "--host",
            LOOPBACK,
            "--port",
            str(port),
        ]
        command += ["--docker-network", "host", "--skip-pull-image", "--warm-containers", "LAZY"]
        print(f"sam local start-lambda on {LOOPBACK}:{port}", file=sys.stderr)
        process = subprocess.Popen(  # noqa: S603 - our own command line
            command, stdout=sys.stdout, stderr=subprocess.STDOUT, env={**os.environ, "SAM_CLI_TELEMETRY": "0"}
        )
        self._exit.callback(_stop, process)
        _wait_for_port(process, port)
        self._lambda = boto3.client("lambda", endpoint_url=f"http://{LOOPBACK}:{port}", config=_LAMBDA_CONFIG)


class SamStack(LocalStack):
    """The local stack, whose functions are the SAM CLI's containers."""

    def __init__(
        self, engine: SamEngine, template: StackTemplate, parameter_overrides: dict[str, str] | None
    ) -> None:
        super().__init__(template, parameter_overrides)
        self._engine = engine

    def function(self, logical_id: str) -> LocalFunction:
        self._engine.start(self)
        return remote_function(self, logical_id, self._engine.invoke)


def _has_aws_faults(faults: Any) -> bool:
    return bool(faults.sender_crash_rate or faults.send_batch_failure_rate or faults.duplicate_s3_events)


def _function_environments(stack: LocalStack) -> dict[str, dict[str, str]]:
    """Every declared variable, resolved against this run's resources and endpoint."""
    return {
        function: {
            name: str(value)
            for name, value in stack.resolver.resolve(stack.template.function_environment(function)).items()
        }
        for function in function_ids(stack.template)
    }


def _require_image(tag: str) -> None:
    command = ["docker", "image", "inspect", tag]
    found = subprocess.run(command, capture_output=True, check=False)  # noqa: S603
    if found.returncode != 0:
        raise SamInvokeError(f"no local image {tag} (or no dockerd): run `make docker-up local-image`")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def _wait_for_port(process: subprocess.Popen[Any], port: int) -> None:
    for _ in range(READY_ATTEMPTS):
        if process.poll() is not None:
            raise SamInvokeError(f"sam local start-lambda exited ({process.returncode}); see functions.log")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            if probe.connect_ex((LOOPBACK, port)) == 0:
                return
        time.sleep(0.1)
    raise SamInvokeError(f"sam local start-lambda did not listen on {port}")


def _stop(process: subprocess.Popen[Any]) -> None:
    """Ctrl-C, as a user would: the SAM CLI then removes its warm containers."""
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
