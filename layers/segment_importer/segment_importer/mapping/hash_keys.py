"""Where a job's `hash.keyParameter` key comes from: an SSM SecureString under the stack's
HashKeyParameterPath, read with the splitter's SSM client."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from segment_importer.mapping.shaped_fields import ShapingError


def ssm_parameter_reader(ssm: Any, prefix: str) -> Callable[[str], str]:
    """Reads a job's `hash.keyParameter` (a SecureString) with `ssm`, only under `prefix`:
    the splitter's IAM policy allows no other parameter, and the error says so plainly. A
    parameter that does not exist is the job's mistake (ShapingError, named), not a failure
    to retry."""

    def read(name: str) -> str:
        if not prefix or not name.startswith(prefix):
            raise ShapingError(f"'hash.keyParameter' must be under {prefix or '(none configured)'}: {name!r}")
        try:
            value = ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
        except ssm.exceptions.ParameterNotFound:
            raise ShapingError(
                f"'hash.keyParameter' {name!r} is not in SSM: create it as a SecureString holding "
                "the HMAC key (a local run: --hash-key-for NAME=KEY)"
            ) from None
        if not isinstance(value, str) or not value:
            raise ShapingError(f"'hash.keyParameter' {name!r} is empty")
        return value

    return read
