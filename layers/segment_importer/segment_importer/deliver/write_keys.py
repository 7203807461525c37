"""The Segment write key: read at run time from SSM Parameter Store or Secrets Manager.

`WRITE_KEY_PARAMETER` names an SSM SecureString parameter (`/segment-importer/write-key`),
or a Secrets Manager secret when prefixed `secretsmanager:`. Powertools caches the value
for `max_age` seconds, so a rotated key is picked up within that time. The key is never
logged.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.parameters import SecretsProvider, SSMProvider

SECRETS_MANAGER_PREFIX = "secretsmanager:"
CACHE_SECONDS = 300


class WriteKeySource:
    """Fetches and caches the write key; build one per process, with its AWS client."""

    def __init__(self, parameter: str, client: Any, *, max_age: int = CACHE_SECONDS) -> None:
        self._max_age = max_age
        if parameter.startswith(SECRETS_MANAGER_PREFIX):
            self._name = parameter.removeprefix(SECRETS_MANAGER_PREFIX)
            self._provider: SSMProvider | SecretsProvider = SecretsProvider(boto3_client=client)
            self._options: dict[str, Any] = {}
        else:
            self._name = parameter
            self._provider = SSMProvider(boto3_client=client)
            self._options = {"decrypt": True}

    def get(self) -> str:
        value = self._provider.get(self._name, max_age=self._max_age, **self._options)
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"the write key in {self._name!r} is empty")
        return value.strip()


def service_for(parameter: str) -> str:
    """The boto3 service name for a WRITE_KEY_PARAMETER value."""
    return "secretsmanager" if parameter.startswith(SECRETS_MANAGER_PREFIX) else "ssm"
