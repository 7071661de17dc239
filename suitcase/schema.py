"""Shared pieces of the file schemas (site.yaml, OS templates, manifests), built on pydantic v2.

Every model is strict (YAML `true` is no number, `2.7` no whole number, `"7.3"` and `7.3` differ)
and forbids unknown keys; a field is one annotated line, so a new setting is one line too:

>>> class Example(StrictModel):
...     suite: Annotated[str, matching(r"[a-z][a-z0-9-]*", "a plain word")] = "bookworm"
>>> Example(suite="../etc")
Traceback (most recent call last):
...
pydantic_core._pydantic_core.ValidationError: 1 validation error for Example
...

`explain` turns a ValidationError into the one line an operator sees, naming where the bad value
came from (a file and key, an environment variable or a command-line option).
"""

from __future__ import annotations

import re
import reprlib
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError

__all__ = ["RELATIVE_PATH", "STRICT", "Annotated", "StrictModel", "explain", "matching", "short"]

STRICT = ConfigDict(extra="forbid", strict=True, frozen=True)
#: A path below a folder (a mirror, iso/, a stage folder): relative, no '.' or '..' segment,
#: no characters a shell or URL would read specially.
RELATIVE_PATH = r"(?!/)(?!(.*/)?\.\.?(/|$))[A-Za-z0-9._+-]+(/[A-Za-z0-9._+-]+)*"


class StrictModel(BaseModel):
    """Base of every schema: strict types, no unknown keys, immutable once loaded."""

    model_config = STRICT


def matching(pattern: str, what: str) -> AfterValidator:
    """A check that the whole string matches `pattern` (Python `re.fullmatch`), described as `what`.

    fullmatch, not `^...$`: `$` also matches before a trailing newline, and a newline is exactly
    what must never reach a kickstart or a shell.
    """
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise ValueError(f"must be {what}")
        return value

    return AfterValidator(check)


# reprlib, not repr: a YAML alias bomb is a small object whose full repr never ends
_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxdict, _REPR.maxstring, _REPR.maxother = 3, 4, 4, 60, 60


def short(value: Any, limit: int = 60) -> str:
    """A value as one short line (repr escapes newlines), for error messages."""
    text = _REPR.repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def dotted(loc: tuple[int | str, ...]) -> str:
    """('repos', 'el7', 0, 'name') -> 'repos.el7[0].name'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part != "[key]":
            out += f".{part}" if out else str(part)
    return out


_PHRASES = (
    ("Value error, ", ""),
    ("Assertion failed, ", ""),
    ("Input should be a valid integer", "must be a whole number"),
    ("Input should be a valid string", "must be a string"),
    ("Input should be a valid dictionary", "must be a mapping"),
    ("Input should be a valid list", "must be a list"),
    ("Input should be", "must be"),
    ("String should", "must"),
    ("List should", "must"),
    ("Dictionary should", "must"),
)


def _phrase(msg: str) -> str:
    for old, new in _PHRASES:
        if msg.startswith(old):
            msg = new + msg[len(old) :]
    return msg


Where = Callable[[tuple[int | str, ...]], tuple[str, bool]]


def explain(exc: ValidationError, where: Where) -> str:
    """One line for the first problem of `exc` (and how many more there are).

    `where(loc)` answers (prefix, name_the_key): "/x/site.yaml", True for a file, or
    "SUITCASE_CPUS", False for a variable that holds the value itself.
    """
    errors = exc.errors(include_url=False)
    err = errors[0]
    loc = tuple(err["loc"])
    prefix, name_key = where(loc)
    key = dotted(loc)
    kind = err["type"]
    if kind == "missing":
        text = f"missing key '{key}'"
    elif kind in ("extra_forbidden", "unexpected_keyword_argument"):
        text = f"unknown key '{key}'"
    elif not loc:  # a check across keys (a model validator): the message says it all
        text = _phrase(err["msg"])
    elif loc[-1] == "[key]":  # a mapping's own key, e.g. ('repos', 'bogus', '[key]')
        text = f"key '{dotted(loc[:-2])}': {short(loc[-2])} {_phrase(err['msg'])}"
    else:
        problem = f"{_phrase(err['msg'])} (got {short(err.get('input'))})"
        text = f"key '{key}' {problem}" if key and name_key else problem
    more = len(errors) - 1
    tail = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return f"{prefix}: {text}{tail}".replace("\n", " ")
