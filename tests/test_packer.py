"""The Packer runner against the real Packer binary (null and file builders, no VM)."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

import pytest

from suitcase import packer
from suitcase.errors import BuildError, ConfigError
from suitcase.safety import scratch_root
from suitcase.sweep import start_time

SECRET = "s3cr3t-Value-9f8e7d"


def template(tmp_path: Path, body: dict) -> Path:  # type: ignore[type-arg]
    path = tmp_path / "t.json"
    path.write_text(json.dumps(body))
    return path


FILE_BUILD = {
    "variables": {"greeting": "", "aws_secret_key": ""},
    "sensitive-variables": ["aws_secret_key"],
    "builders": [{"type": "file", "content": "{{user `greeting`}}", "target": "out.txt"}],
    "provisioners": [],
}


def test_version_is_read_from_the_binary() -> None:
    assert packer.packer_version().count(".") == 2


def test_file_build_reports_its_artifact_and_logs(tmp_path: Path) -> None:
    messages: list[str] = []
    run = packer.build(
        template(tmp_path, FILE_BUILD),
        {"greeting": "hello", "aws_secret_key": SECRET},
        workdir=tmp_path,
        log=tmp_path / "build.log",
        on_message=messages.append,
    )
    assert (tmp_path / "out.txt").read_text() == "hello"
    assert run.artifacts == ["out.txt"]
    assert any("file" in m for m in messages)
    assert (tmp_path / "build.log").stat().st_size > 0


def test_secrets_never_reach_the_log_or_the_screen(tmp_path: Path) -> None:
    body = {
        "variables": {"aws_secret_key": ""},
        "builders": [{"type": "null", "communicator": "none"}],
        "provisioners": [{"type": "shell-local", "inline": ["echo key={{user `aws_secret_key`}}"]}],
    }
    messages: list[str] = []
    packer.build(
        template(tmp_path, body),
        {"aws_secret_key": SECRET},
        workdir=tmp_path,
        log=tmp_path / "build.log",
        on_message=messages.append,
    )
    log = (tmp_path / "build.log").read_text()
    assert "key=" in log  # the line is there ...
    assert SECRET not in log  # ... without the secret
    assert not any(SECRET in m for m in messages)
    assert not (tmp_path / "variables.json").exists()  # the values were for Packer alone
    var_file = packer.write_var_file(tmp_path / "v.json", {"aws_secret_key": SECRET})
    assert oct(var_file.stat().st_mode & 0o777) == "0o600"


def test_failed_build_names_the_log_and_shows_last_lines(tmp_path: Path) -> None:
    body = {
        "builders": [{"type": "null", "communicator": "none"}],
        "provisioners": [{"type": "shell-local", "inline": ["echo about to fail", "exit 3"]}],
    }
    with pytest.raises(BuildError) as err:
        packer.build(
            template(tmp_path, body),
            {},
            workdir=tmp_path,
            log=tmp_path / "b.log",
            on_message=lambda m: None,
        )
    text = str(err.value)
    assert text.startswith("packer build failed")
    assert str(tmp_path / "b.log") in text
    assert "about to fail" in text


def test_bad_on_error_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--on-error"):
        packer.build(
            template(tmp_path, FILE_BUILD),
            {},
            workdir=tmp_path,
            log=tmp_path / "l",
            on_message=print,
            on_error="explode",
        )


def test_validate_passes_and_fails(tmp_path: Path) -> None:
    good = template(tmp_path, FILE_BUILD)
    var_file = packer.write_var_file(tmp_path / "v.json", {"greeting": "x", "aws_secret_key": "y"})
    packer.validate(good, var_file)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"builders": [{"type": "file"}]}))
    with pytest.raises(ConfigError, match="does not validate"):
        packer.validate(bad, var_file)


def test_machine_readable_lines_are_unescaped() -> None:
    parsed = packer.parse_machine_line("1,qemu,ui,say,a%!(PACKER_COMMA) b\\nc")
    assert parsed == ("qemu", "ui", ["say", "a, b\nc"])
    assert packer.parse_machine_line("not machine readable") is None


def test_kept_vm_ports_are_noticed() -> None:
    run = packer.PackerRun()
    packer._note_ports("==> qemu-disk: Found port for communicator (SSH, WinRM, etc): 2588.", run)
    # qemu-disk runs -vnc none: Packer's words about a VNC without a password name no VNC
    packer._note_ports("connect via VNC without a password to vnc://127.0.0.1:18", run)
    assert (run.ssh_port, run.vnc_port) == ("2588", None)
    # Packer 1.6.6 prints display numbers (words of a real qemu-iso run)
    packer._note_ports(
        "view the screen of the VM, connect via VNC to vnc://127.0.0.1:52,password", run
    )
    assert run.vnc_port == "5952"
    packer._note_ports("==> qemu-iso: Connecting to VM via VNC (127.0.0.1:5953)", run)
    assert run.vnc_port == "5953"


def test_packer_keeps_its_temporary_files_in_a_folder_of_the_run(tmp_path: Path) -> None:
    """Packer's panic log holds its whole stream unredacted and is only deleted when Packer
    exits cleanly: it goes to a private folder, removed afterwards, never to the shared /tmp."""
    seen = tmp_path / "seen"
    body = {
        "builders": [{"type": "null", "communicator": "none"}],
        "provisioners": [
            {"type": "shell-local", "inline": [f'ls -ld "$TMPDIR" "$TMPDIR"/* > {seen}']}
        ],
    }
    packer.build(
        template(tmp_path, body),
        {},
        workdir=tmp_path,
        log=tmp_path / "build.log",
        on_message=lambda _: None,
    )
    listing = seen.read_text()
    folder = Path(listing.split()[8])
    assert folder.name.startswith(f"{packer.TMP_PREFIX}{os.getpid()}-")
    assert listing.startswith("drwx------")
    assert "packer-log" in listing  # Packer's own log was there ...
    assert not folder.exists()  # ... and went with the folder


def test_a_killed_runs_packer_folder_is_swept_by_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    shared, tmp_path = tmp_path, scratch_root()  # the sweep looks only in our own folder
    stale = tmp_path / f"{packer.TMP_PREFIX}{dead.pid}-12345-abcd1234"
    (stale / "sub").mkdir(parents=True)
    (stale / "sub" / "packer-log123").write_text("root_password=left by a killed Packer\n")
    me = tmp_path / f"{packer.TMP_PREFIX}{os.getpid()}-{start_time(os.getpid())}-live0001"
    me.mkdir()
    other = tmp_path / "suitcase-packer-notours"
    other.mkdir()
    planted = shared / f"{packer.TMP_PREFIX}{dead.pid}-12345-planted0"  # in the shared folder
    planted.mkdir()
    assert packer.stale_temp_dirs(tmp_path) == [stale] == packer.stale_temp_dirs()
    with packer.private_tmp() as mine:
        assert not stale.exists()  # the dead run's folder, log and all, is gone
        assert me.is_dir() and other.is_dir() and planted.is_dir()  # not a dead run's of ours
        assert mine.parent == tmp_path and mine.is_dir()
    assert not mine.exists()
