"""The few exceptions Suitcase raises on purpose; the CLI prints them as one line."""

from __future__ import annotations

from suitcase.redact import redact_text


class SuitcaseError(Exception):
    """Base class: an expected failure with a message fit for an operator."""

    exit_code = 1

    def __str__(self) -> str:
        # Every message Suitcase shows (CLI line, pytest usage error, traceback) passes the one
        # redaction path, whoever built it and whatever tool output it quotes.
        return redact_text(super().__str__())


class ConfigError(SuitcaseError):
    """Bad input: an unknown OS or image type, malformed YAML, a bad timestamp or path."""

    exit_code = 2


class ToolError(SuitcaseError):
    """A required external tool is missing or failed."""


class BuildError(SuitcaseError):
    """A stage failed to build."""


class BootTimeout(BuildError):
    """The guest never answered SSH within the timeout (a hung or paused boot)."""


class BusyError(SuitcaseError):
    """Another process holds the build set."""
