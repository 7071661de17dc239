"""The bad-input catalogue of issue 7: every case is one line, a known exit code, no traceback,
and nothing else in the workspace touched (a sentinel file and a built-looking build set).

Cases are grouped by the issue's items: 3 (clean), 5 (a build that cannot start), 6 (inputs that
gave tracebacks), 7 (loose validation) and 8 (--workspace). Plugin cases run through pytester in
tests/test_plugin_bad_input.py.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner

from suitcase.cli import cli
from suitcase.config import Paths
from suitcase.context import Context
from suitcase.workspace import BuildSet, Workspace
from tests.conftest import tree_snapshot
from tests.fakes import workspace_stage

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounts need root")

DEBIAN = "Debian-12-x86_64"
#: The build set every case must leave alone: another OS, so 'latest' of Debian never sees it.
KEPT = ("master", "Rocky-9.7-x86_64", "20250101000000")


@dataclass
class Case:
    """What a case's set-up may use: the workspace, the data folders, and clean-ups to run."""

    ws: Path
    home: Paths
    tmp: Path
    cleanups: list[Callable[[], None]] = field(default_factory=list)

    def site(self, text: str) -> None:
        (self.ws / "site.yaml").write_text(text)

    def os_template(self, name: str, text: str | bytes) -> None:
        path = self.home.os_dir / f"{name}.yaml"
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text)

    def hold(self, bset: BuildSet) -> None:
        lock = Workspace(self.ws).lock(bset)
        lock.__enter__()
        self.cleanups.append(lambda: lock.__exit__(None, None, None))

    def mount(self, point: Path, *options: str) -> None:
        point.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", *options, "tmpfs", str(point)], check=True)
        self.cleanups.append(lambda: subprocess.run(["umount", str(point)], check=True))


Setup = Callable[[Case], list[str]]

# --- helpers that make cases --------------------------------------------------------------------


def _site(text: str) -> Setup:
    def setup(c: Case) -> list[str]:
        c.site(text)
        return ["plan", "--os", DEBIAN]

    return setup


def _template(mutate: Callable[[str], str], base: str = "Debian-12-x86_64") -> Setup:
    def setup(c: Case) -> list[str]:
        text = (c.home.os_dir / f"{base}.yaml").read_text()
        c.os_template("Bad-1-x86_64", mutate(text))
        return ["plan", "--os", "Bad-1-x86_64"]

    return setup


def _alias_bomb(key: str) -> str:
    """A YAML value of 9**9 strings in a few hundred bytes (shared references until walked)."""
    levels = ["&a [" + ", ".join(["lol"] * 9) + "]"]
    for this, prev in zip("bcdefghi", "abcdefgh", strict=True):
        levels.append(f"&{this} [" + ", ".join([f"*{prev}"] * 9) + "]")
    return f"{key}: [{', '.join(levels)}]\n"


def _args(*args: str) -> Setup:
    return lambda c: list(args)


def _deep(levels: int = 5000) -> str:
    return "a: " + "[" * levels + "]" * levels + "\n"


def _stage_with_manifest(c: Case, outputs: list[dict[str, object]], image: str = "master") -> None:
    """A stage whose manifest has the key the plan expects, with the given outputs."""
    plan = Context.create(c.ws).plan(DEBIAN, image, "20260101000000")
    stage = plan.stage(image)
    stage.directory.mkdir(parents=True)
    manifest = {
        "stage": image,
        "os": DEBIAN,
        "timestamp": "20260101000000",
        "key": stage.key,
        "inputs": stage.inputs,
        "parent": None,
        "outputs": outputs,
        "tool_versions": {},
        "git_revision": "x",
        "started": "s",
        "finished": "f",
        "suitcase_version": "0",
        "extra": {},
    }
    (stage.directory / "manifest.json").write_text(json.dumps(manifest))


FAKE_UPLOAD = ["fake-upload", "master", "--os", DEBIAN, "--timestamp", "20260101000000"]


# --- item 3: clean checks everything first, removes all or nothing -------------------------------


def _clean_one_set_in_use(c: Case) -> list[str]:
    for ts in ("20260101000000", "20260201000000", "20260301000000"):
        workspace_stage(c.ws, "master", DEBIAN, ts)
    c.hold(BuildSet(DEBIAN, "20260301000000"))  # the newest: the old code removed the others
    return ["clean", "all", "--os", DEBIAN]


def _clean_symlink_among_real(c: Case) -> list[str]:
    workspace_stage(c.ws, "master", DEBIAN, "20260101000000")
    outside = c.tmp / "outside"
    outside.mkdir()
    (outside / "precious").write_text("x")
    os.symlink(outside, c.ws / "images" / "master" / f"{DEBIAN}-20260201000000")
    return ["clean", "master", "--os", DEBIAN]


def _clean_mount_below(c: Case) -> list[str]:
    workspace_stage(c.ws, "master", DEBIAN, "20260101000000")
    stage = workspace_stage(c.ws, "vagrant", DEBIAN, "20260201000000")
    c.mount(stage / ".build" / "rootfs" / "dev")
    (stage / ".build" / "rootfs" / "dev" / "host-file").write_text("keep")
    return ["clean", "all", "--os", DEBIAN]


def _clean_keys_symlink(c: Case) -> list[str]:
    workspace_stage(c.ws, "master", DEBIAN, "20260101000000")
    os.symlink(c.tmp, c.ws / "keys" / f"{DEBIAN}-20260101000000")
    return ["clean", "all", "--os", DEBIAN, "--timestamp", "20260101000000"]


# --- item 5: a build that cannot start is one line, before anything runs -------------------------


def _verify_no_medium(c: Case) -> list[str]:
    return ["verify", "vagrant", "--os", "CentOS-7.3-x86_64"]  # (aws-hvm: no ENA, refused first)


# --- item 6: inputs that gave tracebacks ---------------------------------------------------------


def _binary_site(c: Case) -> list[str]:
    (c.ws / "site.yaml").write_bytes(bytes(range(256)) * 4)
    return ["plan", "--os", DEBIAN]


def _binary_site_option(c: Case) -> list[str]:
    (c.tmp / "garbage.bin").write_bytes(b"\xff\xfe\x00garbage" * 50)
    return ["--site", str(c.tmp / "garbage.bin"), "plan"]


def _device_site(c: Case) -> list[str]:
    return ["--site", "/dev/zero", "plan"]


def _binary_template(c: Case) -> list[str]:
    c.os_template("Bin-1-x86_64", b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    return ["plan", "--os", "Bin-1-x86_64"]


def _deep_template(c: Case) -> list[str]:
    c.os_template("Deep-1-x86_64", _deep())
    return ["plan", "--os", "Deep-1-x86_64"]


def _symlink_loop_workspace(c: Case) -> list[str]:
    os.symlink(c.tmp / "loop2", c.tmp / "loop1")
    os.symlink(c.tmp / "loop1", c.tmp / "loop2")
    return ["--workspace", str(c.tmp / "loop1"), "list"]


def _read_only_workspace(c: Case) -> list[str]:
    ro = c.tmp / "ro"
    c.mount(ro, "-o", "size=4m,mode=0755")
    (ro / "site.yaml").write_text("mirrors: {debian: 'http://mirror.invalid/debian'}\n")
    subprocess.run(["mount", "-o", "remount,ro", str(ro)], check=True)
    return ["--workspace", str(ro), "build", "master", "--os", DEBIAN]


def _manifest_path_not_a_string(c: Case) -> list[str]:
    _stage_with_manifest(c, [{"path": 5, "kind": "disk", "size": 5, "sha256": "0" * 64}])
    return FAKE_UPLOAD


def _manifest_path_escapes(c: Case) -> list[str]:
    outside = c.tmp / "outside.bin"
    outside.write_bytes(b"x" * 100)
    escape = os.path.relpath(outside, c.ws / "images" / "master" / f"{DEBIAN}-20260101000000")
    _stage_with_manifest(c, [{"path": escape, "kind": "disk", "size": 100, "sha256": "0" * 64}])
    return FAKE_UPLOAD


def _manifest_output_symlinked_out(c: Case) -> list[str]:
    outside = c.tmp / "outside.bin"
    outside.write_bytes(b"x" * 100)
    _stage_with_manifest(
        c, [{"path": "disk.qcow2", "kind": "disk", "size": 100, "sha256": "0" * 64}]
    )
    stage = c.ws / "images" / "master" / f"{DEBIAN}-20260101000000"
    os.symlink(outside, stage / "disk.qcow2")
    return FAKE_UPLOAD


def _manifest_deep_json(c: Case) -> list[str]:
    stage = c.ws / "images" / "master" / f"{DEBIAN}-20260101000000"
    stage.mkdir(parents=True)
    (stage / "manifest.json").write_text("[" * 100000 + "]" * 100000)
    return FAKE_UPLOAD


# --- item 7: every setting and template field checked at load ------------------------------------


def _template_folder(c: Case) -> list[str]:
    (c.home.os_dir / "Folder-1-x86_64.yaml").mkdir()
    return ["plan", "--os", "Folder-1-x86_64"]


def _latest_impossible_date(c: Case) -> list[str]:
    (c.ws / "images" / "master" / f"{DEBIAN}-20261399000000").mkdir(parents=True)
    return ["plan", "master", "--os", DEBIAN, "--timestamp", "latest"]


def _latest_no_completed_stage(c: Case) -> list[str]:
    workspace_stage(c.ws, "master", DEBIAN, "20260101000000", manifest=False)
    return ["plan", "master", "--os", DEBIAN, "--timestamp", "latest"]


def _parity_named_missing(c: Case) -> list[str]:
    workspace_stage(c.ws, "master", DEBIAN, "20260101000000")
    return ["parity", "--os", DEBIAN, "--timestamp", "20260201000000"]


def _verify_named_missing(c: Case) -> list[str]:
    (c.ws / "site.yaml").write_text("mirrors: {debian: 'http://mirror.invalid/debian'}\n")
    return ["verify", "master", "--os", DEBIAN, "--timestamp", "20260101000000"]


# --- item 8 ---------------------------------------------------------------------------------------


def _no_such_user(c: Case) -> list[str]:
    return ["--workspace", "~nosuchuser-suitcase/ws", "list"]


CPUS = "key 'cpus' must be"
#: case -> (set-up, exit code, text the one line holds)
CATALOGUE: dict[str, tuple[Setup, int, str]] = {
    # item 3
    "clean-empty-image": (_args("clean", "", "--os", DEBIAN), 2, "the image type is empty"),
    "clean-blank-image": (_args("clean", "  ", "--os", DEBIAN), 2, "the image type is empty"),
    "clean-empty-list-item": (_args("clean", "master,", "--os", DEBIAN), 2, "empty image type"),
    "clean-empty-timestamp": (
        _args("clean", "master", "--os", DEBIAN, "--timestamp", ""),
        2,
        "timestamp '' is not",
    ),
    "clean-one-set-in-use": (_clean_one_set_in_use, 1, "(nothing was removed)"),
    "clean-symlink-among-real": (_clean_symlink_among_real, 2, "nothing was removed"),
    "clean-mount-below": (_clean_mount_below, 2, "is mounted there (nothing was removed)"),
    "clean-keys-symlink": (_clean_keys_symlink, 2, "it is a symlink"),
    "clean-empty-timestamp-variable": (
        _args("clean", "master", "--os", DEBIAN),
        2,
        "SUITCASE_TIMESTAMP is set but empty",
    ),
    "plan-empty-image": (_args("plan", "", "--os", DEBIAN), 2, "the image type is empty"),
    "build-empty-image": (_args("build", "", "--os", DEBIAN), 2, "the image type is empty"),
    # item 5
    "verify-no-medium": (_verify_no_medium, 2, "no install medium for CentOS-7.3-x86_64"),
    "verify-no-checksum": (
        _args("verify", "--os", "AlmaLinux-9.6-x86_64"),
        2,
        "no published sha256",
    ),
    # item 6
    "binary-site": (_binary_site, 2, "is not UTF-8 text"),
    "binary-site-option": (_binary_site_option, 2, "is not UTF-8 text"),
    "device-site-option": (_device_site, 2, "must be a regular file"),
    "deep-yaml-site": (_site(_deep()), 2, "nested too deeply"),
    "yaml-alias-bomb-site": (_site(_alias_bomb("cpus")), 2, "key 'cpus' must be a whole number"),
    "yaml-alias-bomb-os-template": (
        _template(lambda t: t.replace("suite: bookworm", _alias_bomb("suite").strip())),
        2,
        "key 'bootstrap.suite' must be a string",
    ),
    "binary-os-template": (_binary_template, 2, "is not UTF-8 text"),
    "deep-yaml-os-template": (_deep_template, 2, "nested too deeply"),
    "symlink-loop-workspace": (_symlink_loop_workspace, 2, "cannot be used"),
    "no-such-user-workspace": (_no_such_user, 2, "no such user '~nosuchuser-suitcase'"),
    "read-only-workspace-build": (_read_only_workspace, 2, "is not writable"),
    "manifest-path-not-a-string": (
        _manifest_path_not_a_string,
        2,
        "untrusted manifest.json: key 'outputs[0].path' must be a string",
    ),
    "manifest-path-escapes": (_manifest_path_escapes, 2, "must be a relative path inside the"),
    "manifest-output-symlinked-out": (
        _manifest_output_symlinked_out,
        2,
        "output disk.qcow2 lies outside the stage folder",
    ),
    "manifest-deep-json": (_manifest_deep_json, 2, "untrusted manifest.json"),
    # item 7: site settings, named by file and key, variable or option
    "cpus-negative": (_site("cpus: -1\n"), 2, f"{CPUS} greater than or equal to 1 (got -1)"),
    "cpus-zero": (_site("cpus: 0\n"), 2, f"{CPUS} greater than or equal to 1 (got 0)"),
    "cpus-bool": (_site("cpus: true\n"), 2, f"{CPUS} a whole number (got True)"),
    "cpus-fraction": (_site("cpus: 2.7\n"), 2, f"{CPUS} a whole number (got 2.7)"),
    "cpus-huge": (_site("cpus: 100000\n"), 2, f"{CPUS} less than or equal to 64"),
    "memory-zero": (_site("memory: 0\n"), 2, "key 'memory' must be greater than or equal to 256"),
    "memory-negative": (_site("memory: -5\n"), 2, "key 'memory' must be greater than or equal"),
    "memory-beyond-host": (_site("memory: 99999999\n"), 2, "at most this machine's"),
    "cpus-from-variable": (
        _args("plan", "--os", DEBIAN),
        2,
        "SUITCASE_CPUS: must be a whole number (got 'many')",
    ),
    "accelerator-option": (
        _args("--accelerator", "warp", "plan", "--os", DEBIAN),
        2,
        "--accelerator: must be 'tcg', 'kvm'",
    ),
    "repo-name-newline": (
        _site(
            "repos: {el7: [{name: \"epel\\n%post\\ntouch /x\", baseurl: 'http://m.invalid/'}]}\n"
        ),
        2,
        "key 'repos.el7[0].name' must be letters",
    ),
    "repo-url-scheme": (
        _site("repos: {el7: [{name: epel, baseurl: 'javascript:alert(1)'}]}\n"),
        2,
        "key 'repos.el7[0].baseurl' must be an http(s)://",
    ),
    "repo-extra-key": (
        _site("repos: {el7: [{name: epel, baseurl: 'http://m.invalid/', post: 'rm -rf /'}]}\n"),
        2,
        "unknown key 'repos.el7[0].post'",
    ),
    "repos-unknown-answer-file": (
        _site("repos: {'../x': []}\n"),
        2,
        "key 'repos': '../x' must be an answer file name",
    ),
    "mirror-not-a-url": (_site("mirrors: {debian: 'ftp.invalid'}\n"), 2, "mirrors.debian"),
    "prefix-escapes": (_site("prefix: ../other\n"), 2, "key 'prefix' must be an S3 key prefix"),
    # item 7: OS template fields
    "suite-path": (
        _template(lambda t: t.replace("suite: bookworm", "suite: ../../../etc")),
        2,
        "key 'bootstrap.suite' must be a plain word",
    ),
    "suite-shell": (
        _template(lambda t: t.replace("suite: bookworm", "suite: 'bookworm; touch /tmp/x'")),
        2,
        "key 'bootstrap.suite' must be a plain word",
    ),
    "family-method-mismatch": (
        _template(lambda t: t.replace("family: debian", "family: el")),
        2,
        "family 'el' is not installed by method 'bootstrap'",
    ),
    "root-fs-ntfs": (
        _template(lambda t: t.replace("root_fs: ext4", "root_fs: ntfs")),
        2,
        "key 'root_fs' must be 'ext3', 'ext4' or 'xfs' (got 'ntfs')",
    ),
    "empty-distribution": (
        _template(lambda t: t.replace("distribution: Debian", "distribution: ''")),
        2,
        "key 'distribution' must be a distribution name",
    ),
    "package-option": (
        _template(lambda t: t.replace("- sudo", "- --allow-unauthenticated")),
        2,
        "key 'bootstrap.packages[4]' must be a Debian package name",
    ),
    "iso-path-escapes": (
        _template(
            lambda t: t.replace("iso_path: 7.3.1611/", "iso_path: ../../"),
            base="CentOS-7.3-x86_64",
        ),
        2,
        "key 'installer.iso_path' must be a relative path",
    ),
    "version-major-mismatch": (
        _template(lambda t: t.replace("major: 12", "major: 11")),
        2,
        "version '12' does not start with major 11",
    ),
    "template-is-a-folder": (_template_folder, 2, "unknown OS 'Folder-1-x86_64'"),
    "empty-os": (_args("plan", "--os", ""), 2, "the OS name is empty"),
    "empty-os-variable": (_args("plan"), 2, "SUITCASE_OS is set but empty"),
    # item 7: image lists, timestamps, latest, named sets, workers
    "image-list-with-all-and-bogus": (
        _args("plan", "master,all,bogus", "--os", DEBIAN),
        2,
        "unknown image type 'bogus'",
    ),
    "future-timestamp": (
        _args("plan", "--os", DEBIAN, "--timestamp", "99991231235959"),
        2,
        "timestamp '99991231235959' is in the future",
    ),
    "latest-impossible-date": (_latest_impossible_date, 2, "with a completed stage"),
    "latest-no-completed-stage": (_latest_no_completed_stage, 2, "with a completed stage"),
    "verify-named-missing": (_verify_named_missing, 2, "does not exist"),
    "parity-named-missing": (_parity_named_missing, 2, "does not exist"),
    "verify-negative-workers": (
        _args("verify", "-n", "-1", "--os", DEBIAN),
        2,
        "Invalid value for '-n': -1 is not in the range",
    ),
    "wait-negative-not-forever": (
        _args("build", "--os", DEBIAN, "--wait", "-0.5"),
        2,
        "-0.5 is neither 0 or more seconds nor -1",
    ),
    "bad-on-error-one-line": (
        _args("build", "--on-error", "explode"),
        2,
        "Invalid value for '--on-error'",
    ),
    # item 8
    "empty-workspace": (_args("--workspace", "", "list"), 2, "the workspace is an empty string"),
    "empty-workspace-after-verb": (
        _args("list", "--workspace", ""),
        2,
        "the workspace is an empty string",
    ),
}

NEEDS_ROOT = {"clean-mount-below", "read-only-workspace-build"}
ENV = {
    "cpus-from-variable": {"SUITCASE_CPUS": "many"},
    "clean-empty-timestamp-variable": {"SUITCASE_TIMESTAMP": ""},
    "empty-os-variable": {"SUITCASE_OS": ""},
}


@pytest.fixture
def case(tmp_path: Path, workspace: Path, home: Paths) -> Iterator[Case]:
    """The workspace with a sentinel file and a built-looking build set nothing may touch."""
    (workspace / "sentinel.txt").write_text("do not touch\n")
    workspace_stage(workspace, *KEPT)
    (workspace / "keys" / f"{KEPT[1]}-{KEPT[2]}").mkdir(parents=True)
    (workspace / "keys" / f"{KEPT[1]}-{KEPT[2]}" / "id_ed25519").write_text("key\n")
    c = Case(workspace, home, tmp_path)
    yield c
    for undo in reversed(c.cleanups):
        undo()


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_bad_input(name: str, case: Case, monkeypatch: pytest.MonkeyPatch) -> None:
    if name in NEEDS_ROOT and os.geteuid() != 0:
        pytest.skip("needs root (mounts)")
    setup, code, expected = CATALOGUE[name]
    refused_whole(case, monkeypatch, setup, code, expected, ENV.get(name, {}))


def refused_whole(
    case: Case,
    monkeypatch: pytest.MonkeyPatch,
    setup: Callable[[Case], list[str]],
    code: int,
    expected: str,
    env: dict[str, str],
) -> None:
    """Run the CLI on the case's bad input: one line `suitcase: error: ...` holding `expected`,
    exit `code`, no traceback, and nothing of the case's folder deleted or written."""
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    args = setup(case)
    kept = case.ws / "images" / KEPT[0] / f"{KEPT[1]}-{KEPT[2]}"
    before = tree_snapshot(case.tmp)
    kept_before = {p.name: p.read_bytes() for p in kept.iterdir()}
    result = CliRunner().invoke(cli, args)
    lines = result.output.splitlines()
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    assert len(lines) == 1, result.output
    assert lines[0].startswith("suitcase: error: "), lines
    assert expected in lines[0], lines[0]
    assert (case.ws / "sentinel.txt").read_text() == "do not touch\n"
    assert {p.name: p.read_bytes() for p in kept.iterdir()} == kept_before
    after = tree_snapshot(case.tmp)
    lost = sorted(p for p in before if p not in after)
    assert not lost, f"deleted: {lost}"
    made = sorted(p for p in after if p not in before and ".locks" not in p)
    assert not made, f"written: {made}"


def test_catalogue_covers_the_issue() -> None:
    assert len(CATALOGUE) >= 40
