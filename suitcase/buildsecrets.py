"""Build secrets: values a provisioning script needs that no image, log, manifest or key keeps.

Set `SUITCASE_SECRET_<NAME>=value` in Suitcase's environment (a registry token, a subscription
password): every provisioning script of every stage gets it as `SUITCASE_SECRET_<NAME>`. The
values reach Packer as one sensitive variable, `build_secrets` (declared in each template's
`sensitive-variables`), which Packer reads from its own environment: they are never written to a
var file. Each value is masked, as is and base64-encoded, wherever Suitcase writes or shows text.
They are not stage inputs: a changed secret does not rebuild anything, and no digest of one is
recorded. A bad name or an empty value is one line of error before anything runs.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Mapping

PREFIX = "SUITCASE_SECRET_"
#: what Packer's `build_secrets` variable defaults to (`{{env ...}}` in each template)
PACKER_ENV = "SUITCASE_PACKER_SECRETS"
_NAME = re.compile(r"[A-Z][A-Z0-9_]{0,63}")
MAX_SECRETS = 32
MAX_BYTES = 16 * 1024
#: shorter values would mask common words in every log (see redact.MIN_SECRET)
MIN_CHARS = 4


def build_secrets(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The build secrets set in `environ` (default: this process's, whose Redactors then mask
    them: every verb reads them first, in Context.create), by name; checked."""
    from suitcase.errors import ConfigError  # errors -> redact -> this module: not at the top
    from suitcase.redact import remember

    env = os.environ if environ is None else environ
    found = {key[len(PREFIX) :]: value for key, value in env.items() if key.startswith(PREFIX)}
    if len(found) > MAX_SECRETS:
        raise ConfigError(f"{len(found)} build secrets ({PREFIX}*) set; at most {MAX_SECRETS}")
    for name, value in sorted(found.items()):
        if not _NAME.fullmatch(name):
            raise ConfigError(
                f"bad build secret name {PREFIX}{name} (A-Z, 0-9 and _, starting with a letter, "
                "at most 64 characters)"
            )
        if len(value.strip()) < MIN_CHARS:
            raise ConfigError(
                f"build secret {PREFIX}{name} is empty or shorter than {MIN_CHARS} characters, "
                "too short to keep out of the logs; unset it or give it a real value"
            )
        if len(value.encode()) > MAX_BYTES or "\0" in value:
            raise ConfigError(
                f"build secret {PREFIX}{name} has more than {MAX_BYTES} bytes or a NUL"
            )
    if environ is None:
        remember(*forms(found))
    return found


def _b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


def packer_value(secrets: Mapping[str, str]) -> str:
    """`NAME:base64 NAME:base64 ...`: what run-stage.sh unpacks into SUITCASE_SECRET_<NAME>."""
    return " ".join(f"{name}:{_b64(value)}" for name, value in sorted(secrets.items()))


def forms(secrets: Mapping[str, str]) -> list[str]:
    """Every text to mask for these secrets: each value, its base64, and Packer's whole value."""
    values = [*secrets.values(), *(_b64(v) for v in secrets.values())]
    return [*values, packer_value(secrets)] if secrets else []
