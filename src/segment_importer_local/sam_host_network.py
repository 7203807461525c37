"""Run the SAM CLI with `--docker-network host` meaning what it says: the host's network.

SAM CLI 1.170 accepts `--docker-network host` but leaves the function's container on Docker's
default bridge (it skips connecting to "host" and never sets the network mode: aws-sam-cli
issue #4236, since PR #5279; fix PR #7278 was closed unmerged). Inside a bridged container,
127.0.0.1 is the container itself, so a moto server or endpoint on the host's loopback is out
of reach. This launcher runs the SAM CLI unchanged except for that: a Lambda container it
creates while `--docker-network host` is given gets network mode "host", and the emulator
(aws-lambda-rie) listens on the loopback port the SAM CLI would have published (its Runtime
API on another free loopback port), so concurrent containers do not share port 8080/9001.

Run it with the SAM CLI's own interpreter: `.venv-sam/bin/python sam_host_network.py local
invoke ...`. Only the standard library and the SAM CLI's packages are imported.
"""

from __future__ import annotations

import socket
import sys
from typing import Any

LAMBDA_CONTAINER_LABEL = "sam.cli.container.type"
RIE = "/var/rapid/aws-lambda-rie"


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def host_network_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The SAM CLI's container options, moved from a published port to the host's network."""
    if kwargs.get("labels", {}).get(LAMBDA_CONTAINER_LABEL) != "lambda":
        return kwargs
    entrypoint = list(kwargs.get("entrypoint") or [])
    if not entrypoint or entrypoint[0] != RIE:
        return kwargs
    ports = kwargs.pop("ports", {}) or {}
    # The SAM CLI connects to the emulator at 127.0.0.1:<published port>: listen there instead.
    (_interface, host_port), *_ = ports.values()
    entrypoint += [
        "--runtime-interface-emulator-address", f"127.0.0.1:{host_port}",
        "--runtime-api-address", f"127.0.0.1:{_free_loopback_port()}",
    ]  # fmt: skip
    return {**kwargs, "entrypoint": entrypoint, "network_mode": "host"}


def _patch_container_create() -> None:
    from docker.models.containers import ContainerCollection

    original = ContainerCollection.create

    def create(self: Any, image: str, command: Any = None, **kwargs: Any) -> Any:
        return original(self, image, command, **host_network_options(kwargs))

    ContainerCollection.create = create  # type: ignore[method-assign]


def _asks_for_host_network(argv: list[str]) -> bool:
    return any(
        (arg == "--docker-network" and index + 1 < len(argv) and argv[index + 1] == "host")
        or arg == "--docker-network=host"
        for index, arg in enumerate(argv)
    )


def main() -> int:
    from samcli.cli.main import cli

    if _asks_for_host_network(sys.argv[1:]):
        _patch_container_create()
    sys.argv[0] = "sam"
    return int(cli() or 0)


if __name__ == "__main__":
    sys.exit(main())
