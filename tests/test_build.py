"""Pieces of the build runner that need no Packer: failure reports and the free-space rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from suitcase.build import _console_tail, check_free_space, needed_space_mb
from suitcase.errors import BuildError


def test_console_tail_gives_the_last_lines_without_colour(tmp_path: Path) -> None:
    console = tmp_path / "console.log"
    lines = [f"[    {n}.000000] line {n}" for n in range(40)]
    lines[-1] = "\x1b[0;1;31mFAILED\x1b[0m to start \x1b[0;1;39mssh.service\x1b[0m"
    console.write_text("\n\n".join(lines) + "\n")
    tail = _console_tail(console, count=3)
    assert tail.splitlines() == [
        "",
        f"guest console: {console}, last lines:",
        "  [    37.000000] line 37",
        "  [    38.000000] line 38",
        "  FAILED to start ssh.service",
    ]


def test_console_tail_says_when_the_guest_printed_nothing(tmp_path: Path) -> None:
    (tmp_path / "console.log").write_text("")
    assert "the guest printed nothing" in _console_tail(tmp_path / "console.log")
    assert _console_tail(tmp_path / "missing.log") == ""


def test_free_space_rule(tmp_path: Path) -> None:
    assert needed_space_mb(4096, 4) == 1024 + 4 * 2048
    check_free_space(tmp_path, 1024, ["master"])  # about 1.5 GiB: this machine has it
    with pytest.raises(BuildError, match=r"building master, vagrant needs about"):
        check_free_space(tmp_path, 2**40, ["master", "vagrant"])
