from __future__ import annotations

from pathlib import Path

import pytest

from suitcase.command import Redactor, require, run, stream
from suitcase.errors import ToolError


def test_redactor_masks_values_assignments_and_keys() -> None:
    redact = Redactor(["hunter22"])
    assert "hunter22" not in redact("password is hunter22")
    assert redact("aws_secret_access_key=AKIAXYZ123") == "aws_secret_access_key=<redacted>"
    key = "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----"
    assert "abc" not in redact(key)
    assert redact("nothing to hide") == "nothing to hide"


def test_missing_tool_is_one_line_with_a_fix() -> None:
    with pytest.raises(ToolError) as err:
        require("no-such-tool-xyz")
    assert "not found on PATH" in str(err.value) and "\n" not in str(err.value)


def test_run_failure_carries_stderr() -> None:
    with pytest.raises(ToolError, match="boom"):
        run(["sh", "-c", "echo boom >&2; exit 4"])
    assert run(["sh", "-c", "exit 4"], check=False).returncode == 4


def test_stream_logs_redacted_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    code, tail = stream(
        ["sh", "-c", "echo one; echo token=abc123; exit 2"], log=tmp_path / "l", on_line=seen.append
    )
    assert code == 2
    assert tail == ["one", "token=<redacted>"]
    assert "abc123" not in (tmp_path / "l").read_text()
