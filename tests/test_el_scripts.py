"""EL branches of the stage scripts, run for real with bash on fixture files."""

from __future__ import annotations

import configparser
import re
import subprocess
from pathlib import Path

from suitcase.config import Paths

SCRIPTS = Paths.default().scripts_dir


def lib_call(call: str, major: int = 9, stage: str = "master") -> subprocess.CompletedProcess[str]:
    """Run `call` in bash after sourcing scripts/lib/suitcase.sh as a stage script would."""
    env = {
        "PATH": "/usr/bin:/bin",
        "SUITCASE_FAMILY": "el",
        "SUITCASE_STAGE": stage,
        "SUITCASE_MAJOR": str(major),
    }
    return subprocess.run(
        ["bash", "-c", f'set -euo pipefail; . "{SCRIPTS}/lib/suitcase.sh"; {call}'],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def el9_keyfile() -> str:
    """The eth0 keyfile as scripts/common/10-network.sh writes it on EL9."""
    text = (SCRIPTS / "common" / "10-network.sh").read_text()
    match = re.search(r"eth0\.nmconnection <<'NET'\n(.*?)\nNET\n", text, re.S)
    assert match, "10-network.sh no longer writes the EL9 keyfile with a heredoc"
    return match.group(1) + "\n"


def test_el9_dns_options_are_a_semicolon_list(tmp_path: Path) -> None:
    keyfile = tmp_path / "eth0.nmconnection"
    keyfile.write_text(el9_keyfile())
    options = "timeout:2 attempts:3 single-request-reopen"
    for _ in range(2):  # a second run changes nothing
        result = lib_call(f'nm_keyfile_dns_options "{keyfile}" "{options}"')
        assert result.returncode == 0, result.stderr
    parsed = configparser.ConfigParser(interpolation=None)
    parsed.read_string(keyfile.read_text())
    assert parsed["ipv4"]["dns-options"] == "timeout:2;attempts:3;single-request-reopen;"
    assert parsed["ipv4"]["method"] == "auto"
    assert keyfile.read_text().count("dns-options=") == 1


def test_the_dns_script_uses_the_keyfile_helper() -> None:
    text = (SCRIPTS / "master" / "30-dns-nscd.sh").read_text()
    assert 'nm_keyfile_dns_options "$f" "$options"' in text
    assert "dns-options=${options" not in text  # the comma-joined form of before
