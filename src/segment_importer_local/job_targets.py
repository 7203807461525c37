"""Job files that name their own workspace, before a local run or in `check-job`.

The policy is the functions' own (deliver/targets.py), read from the template as the stack
would set their environment. A local run needs each named parameter's key in its SSM:
`--write-key-for NAME=KEY` gives it; against the embedded endpoint a key is made up for any
parameter not given (the endpoint then stands in for that source too). Keys are never
printed or saved.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path

import orjson

from segment_importer.deliver.targets import ENVIRONMENT, TargetPolicy, parameter_form_problem
from segment_importer_local.errors import usage_error
from segment_importer_local.template_config import Resolver, StackTemplate

_POLICY_FUNCTION = "SenderFunction"  # both functions get the same variables (Globals)


def template_policy(template: StackTemplate, overrides: Mapping[str, str] | None = None) -> TargetPolicy:
    """What a job may name in a stack of this template (with these parameter overrides)."""
    from segment_importer_local.stack import PSEUDO_PARAMETERS

    parameters = {**template.parameter_defaults(), **(overrides or {})}
    resolver = Resolver(parameters, PSEUDO_PARAMETERS, conditions=template.document.get("Conditions", {}))
    environment = template.function_environment(_POLICY_FUNCTION)
    return TargetPolicy.from_env({name: str(resolver.resolve(environment[name])) for name in ENVIRONMENT})


def policy_problems(document: Mapping[str, object], policy: TargetPolicy, origin: str) -> list[str]:
    """The target problems of a (parsed, valid) job document, each naming its file."""
    from segment_importer.job import JobOptions

    target = JobOptions().merged_with(dict(document)).target
    return [f"{origin}: {problem}" for problem in policy.problems(target)]


def named_parameters(paths: Iterable[Path]) -> set[str]:
    """The `writeKeyParameter`s the job files name (they were checked before)."""
    names = set()
    for path in paths:
        name = orjson.loads(path.read_bytes() or b"{}").get("writeKeyParameter")
        if isinstance(name, str):
            names.add(name)
    return names


def named_hosts(paths: Iterable[Path]) -> set[str]:
    return {
        host
        for path in paths
        if isinstance(host := orjson.loads(path.read_bytes() or b"{}").get("host"), str)
    }


def named_hash_parameters(paths: Iterable[Path]) -> set[str]:
    """The `hash.keyParameter`s the job files name (they were checked before)."""
    names = set()
    for path in paths:
        hashing = orjson.loads(path.read_bytes() or b"{}").get("hash")
        if isinstance(hashing, dict) and isinstance(name := hashing.get("keyParameter"), str):
            names.add(name)
    return names


def job_hash_keys(given: dict[str, str], job_files: list[Path], path: str) -> dict[str, str]:
    """The HMAC key of every `hash.keyParameter` a job names, given with --hash-key-for: a
    local stack has none of the user's SSM parameters, and a made-up key would give hashes
    that match nothing the user has. Each must be under the stack's HashKeyParameterPath
    (`path`), the only parameters the splitter may read."""
    named = named_hash_parameters(job_files)
    if outside := sorted(name for name in named if not name.startswith(path)):
        raise usage_error(f"a job file's {_outside_hash_path(outside[0], path)}")
    if unused := sorted(set(given) - named):
        raise usage_error(
            f"--hash-key-for names {', '.join(map(repr, unused))}, which no job file of this run "
            f"names as hash.keyParameter (they name: {', '.join(map(repr, sorted(named))) or 'none'})"
        )
    if missing := sorted(named - set(given)):
        raise usage_error(
            f"a job file hashes with hash.keyParameter {missing[0]!r}, which a local run does not "
            f"have: give its key with --hash-key-for {missing[0]}=KEY"
        )
    return given


def hash_path_problems(document: Mapping[str, object], path: str, origin: str) -> list[str]:
    """A `hash.keyParameter` outside the stack's HashKeyParameterPath (`path`), for check-job
    (QA2 O4: it passed, and the import failed after starting)."""
    hashing = document.get("hash")
    name = hashing.get("keyParameter") if isinstance(hashing, dict) else None
    if isinstance(name, str) and not (path and name.startswith(path)):
        return [f"{origin}: {_outside_hash_path(name, path)}"]
    return []


def _outside_hash_path(name: str, path: str) -> str:
    return (
        f"hash.keyParameter {name!r} is not under the stack's HashKeyParameterPath {path!r}, the "
        "only parameters the splitter may read"
    )


def parse_write_keys_for(pairs: list[str], option: str = "--write-key-for") -> dict[str, str]:
    """`--write-key-for NAME=KEY` (or `option`, repeatable) as {parameter name: key}; usage
    errors name the option and the parameter, never the key."""
    keys: dict[str, str] = {}
    for pair in pairs:
        name, sep, key = pair.partition("=")
        if not sep or not key.strip():  # the text may be a key: never echoed
            raise usage_error(f"{option} expects NAME=KEY: an SSM parameter name, '=', and its key")
        if problem := parameter_form_problem(name):
            raise usage_error(f"{option} {name!r}: {problem}")
        keys[name] = key.strip()
    return keys


def job_write_keys(
    given: dict[str, str], job_files: list[Path], *, embedded: bool, policy: TargetPolicy
) -> dict[str, str]:
    """The key of every parameter a job names: given, or (embedded endpoint) made up."""
    keys = dict(given)
    named = named_parameters(job_files)
    if unused := sorted(set(given) - named):  # a typo would otherwise go unnoticed (QA)
        raise usage_error(
            f"--write-key-for names {', '.join(map(repr, unused))}, which no job file of this run "
            f"names as writeKeyParameter (they name: {', '.join(map(repr, sorted(named))) or 'none'})"
        )
    for name in sorted(named - set(keys) - {policy.default_parameter}):
        if not embedded:
            raise usage_error(
                f"a job file names writeKeyParameter {name!r}: give its key with --write-key-for {name}=KEY"
            )
        keys[name] = f"local-{secrets.token_hex(8)}"
    if embedded and named_hosts(job_files):
        raise usage_error(
            "a job file names a 'host', but this run sends to the embedded endpoint: run with "
            "--write-key (and --write-key-for) to send to Segment, or leave 'host' out for a local run"
        )
    return keys
