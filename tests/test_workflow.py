"""The CI workflow that scales Suitcase past one machine (.github/workflows/images.yml).

Checked by real tools: actionlint (types of expressions, job outputs, needs, matrix, runner
labels, action versions, and shellcheck over every `run:`), and GitHub's workflow schema
(check-jsonschema's vendored copy). Then the shape README promises: one master job whose build
set timestamp is a job output, the derived image types fanned out in a matrix that fetches the
master, registering after them, credentials only from `secrets.*`, JUnit reports kept.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from suitcase.config import PROJECT_ROOT
from suitcase.errors import ConfigError
from suitcase.imagetypes import IMAGE_TYPES
from suitcase.workspace import Workspace

WORKFLOW = PROJECT_ROOT / ".github" / "workflows" / "images.yml"

#: each action at the commit its tag named when pinned (read from the actions' own repositories)
PINNED: dict[str, str] = {
    "actions/checkout": "fbc6f3992d24b796d5a048ff273f7fcc4a7b6c09",  # v5.1.0
    "aws-actions/configure-aws-credentials": "e6de054238d6b7531b4efff3b6587d9aade6a06c",  # v6.2.3
    "actions/upload-artifact": "b7c566a772e6b6bfb58ed0dc250532a479d7789f",  # v6.0.0
}
BIN = Path(sys.executable).parent
CI_BUILD_KEY = PROJECT_ROOT / "bin" / "ci-build-key"


def _actionlint(path: Path) -> subprocess.CompletedProcess[str]:
    # shellcheck (a Debian package bin/setup-host installs) must be found: it checks `run:`
    env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}
    assert shutil.which("shellcheck", path=env["PATH"]), "shellcheck is missing"
    return subprocess.run(
        [str(BIN / "actionlint"), "-no-color", str(path)],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        cwd=path.parent,
    )


def _workflow() -> dict[str, Any]:
    data = yaml.safe_load(WORKFLOW.read_text())
    assert isinstance(data, dict)
    return data


def _runs(job: dict[str, Any]) -> list[str]:
    return [step["run"] for step in job["steps"] if "run" in step]


def test_actionlint_passes() -> None:
    result = _actionlint(WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("mutate", "complaint"),
    [
        (
            lambda t: t.replace("needs: master\n", "needs: mastr\n"),
            'needs job "mastr" which does not exist',
        ),
        (
            lambda t: t.replace("needs.master.outputs.timestamp", "needs.master.outputs.stamp"),
            'property "stamp" is not defined',
        ),
        (lambda t: t.replace('"$TIMESTAMP"', "$TIMESTAMP", 1), "SC2086"),  # shellcheck, in run:
        (
            lambda t: t.replace(
                f"upload-artifact@{PINNED['actions/upload-artifact']}", "upload-artifact@v1"
            ),
            "is retired",
        ),
    ],
    ids=["unknown-need", "undefined-output", "unquoted-shell", "old-action"],
)
def test_actionlint_catches_a_broken_copy(tmp_path: Path, mutate: Any, complaint: str) -> None:
    """The check can fail: each mutation of the real workflow is caught, with the reason."""
    broken = tmp_path / ".github" / "workflows" / "images.yml"
    broken.parent.mkdir(parents=True)
    text = WORKFLOW.read_text()
    assert mutate(text) != text, "the mutation no longer applies"
    broken.write_text(mutate(text))
    result = _actionlint(broken)
    assert result.returncode == 1, result.stdout + result.stderr
    assert complaint in result.stdout, result.stdout


def test_github_workflow_schema() -> None:
    argv = [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows"]
    result = subprocess.run([*argv, str(WORKFLOW)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_can_fail(tmp_path: Path) -> None:
    broken = tmp_path / "images.yml"
    broken.write_text(WORKFLOW.read_text().replace("runs-on:", "run-on:"))
    argv = [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows"]
    result = subprocess.run([*argv, str(broken)], capture_output=True, text=True, check=False)
    assert result.returncode == 1, result.stdout


def test_master_job_builds_uploads_and_names_the_build_set() -> None:
    jobs = _workflow()["jobs"]
    master = jobs["master"]
    assert master["outputs"]["timestamp"] == "${{ steps.set.outputs.timestamp }}"
    runs = "\n".join(_runs(master))
    assert "timestamp=$(date -u +%Y%m%d%H%M%S)" in runs and "$GITHUB_OUTPUT" in runs
    for verb in ("build master", "verify master", "upload master"):
        assert f".venv/bin/suitcase {verb} --timestamp" in runs


def test_derived_images_fan_out_from_the_fetched_master() -> None:
    jobs = _workflow()["jobs"]
    derived = jobs["derived"]
    images = derived["strategy"]["matrix"]["image"]
    assert sorted(images) == sorted(n for n, t in IMAGE_TYPES.items() if not t.is_master)
    assert derived["needs"] == "master"
    assert derived["env"]["TIMESTAMP"] == "${{ needs.master.outputs.timestamp }}"
    runs = _runs(derived)
    fetch = next(i for i, r in enumerate(runs) if "suitcase fetch master" in r)
    build = next(i for i, r in enumerate(runs) if "suitcase build" in r)
    assert fetch < build  # the master comes from S3 first, so the build finds it done
    assert all("build master" not in r and "build all" not in r for r in runs)
    for verb in ("verify", "upload"):
        assert any(f'suitcase {verb} "${{{{ matrix.image }}}}"' in r for r in runs), verb


def test_registering_waits_for_every_derived_build() -> None:
    jobs = _workflow()["jobs"]
    register = jobs["register"]
    assert set(register["needs"]) == {"master", "derived"}
    runs = "\n".join(_runs(register))
    assert "suitcase fetch aws-hvm,aws-paravirt" in runs
    assert "suitcase register aws-hvm,aws-paravirt" in runs
    assert "--from ami" in runs


def test_credentials_come_from_secrets_and_are_never_echoed() -> None:
    data = _workflow()
    assert data["permissions"] == {}  # nothing by default: each job asks for what it uses
    for job in data["jobs"].values():
        assert job["permissions"] == {"contents": "read", "id-token": "write"}  # OIDC role
    assert data["env"]["SUITCASE_AWS"] == "account"
    for name, job in data["jobs"].items():
        steps = job["steps"]
        creds = [s for s in steps if str(s.get("uses", "")).startswith("aws-actions/")]
        assert len(creds) == 1, name
        given = creds[0]["with"]
        assert given["role-to-assume"] == "${{ secrets.AWS_ROLE_ARN }}"
        assert given["aws-secret-access-key"] == "${{ secrets.AWS_SECRET_ACCESS_KEY }}"
        for run in _runs(job):
            # a secret reaches a shell only through env (never pasted into the script text)
            assert "secrets." not in run, (name, run)
            assert "BUILD_KEY" not in run.replace("bin/ci-build-key", ""), (name, run)
        key_steps = [s for s in steps if "ci-build-key" in s.get("run", "")]
        assert key_steps and key_steps[0]["env"]["BUILD_KEY"] == "${{ secrets.SUITCASE_BUILD_KEY }}"


def test_junit_reports_are_kept_as_artifacts() -> None:
    for name, job in _workflow()["jobs"].items():
        uploads = [s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/upload-")]
        assert len(uploads) == 1, name
        assert uploads[0]["if"] == "always()"  # a failed verification keeps its report too
        assert uploads[0]["with"]["path"] == "reports/*.xml"


def test_ci_build_key_installs_the_pair_without_printing_it(tmp_path: Path) -> None:
    key = tmp_path / "k"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    set_id = "Debian-12-x86_64-20260101000000"
    env = {**os.environ, "BUILD_KEY": key.read_text(), "SUITCASE_WORKSPACE": str(tmp_path)}
    result = subprocess.run(
        [str(CI_BUILD_KEY), set_id], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 0, result.stderr
    folder = tmp_path / "keys" / set_id
    assert (folder / "id_ed25519").read_text() == key.read_text()
    assert (folder / "id_ed25519").stat().st_mode & 0o077 == 0
    assert folder.stat().st_mode & 0o077 == 0
    public = (folder / "id_ed25519.pub").read_text().split()
    assert public[:2] == (tmp_path / "k.pub").read_text().split()[:2]
    assert public[2] == f"suitcase-build-{set_id}"
    secret_line = key.read_text().splitlines()[1]
    assert secret_line not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("value", "set_id", "expected"),
    [
        ("", "Debian-12-x86_64-20260101000000", "BUILD_KEY is empty"),
        ("not a key", "Debian-12-x86_64-20260101000000", "not an unencrypted OpenSSH private key"),
        ("x", "../../etc", "is not a build set name"),
    ],
)
def test_ci_build_key_refuses_bad_input(
    tmp_path: Path, value: str, set_id: str, expected: str
) -> None:
    env = {**os.environ, "BUILD_KEY": value, "SUITCASE_WORKSPACE": str(tmp_path)}
    result = subprocess.run(
        [str(CI_BUILD_KEY), set_id], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 2
    assert expected in result.stderr
    assert value not in result.stdout or not value
    assert not (tmp_path / "keys").exists() or not any((tmp_path / "keys").rglob("id_*"))


def _checkout_of_its_own(tmp_path: Path) -> Path:
    """A copy of bin/ci-build-key in another checkout: what it resolves against the checkout
    lands there (not in this repository), where the test sees it."""
    script = tmp_path / "checkout" / "bin" / "ci-build-key"
    script.parent.mkdir(parents=True)
    shutil.copy2(CI_BUILD_KEY, script)
    return script


@pytest.mark.parametrize("given", ["ws", "./ws", "sub/../ws", "~/ws", "~", None])
def test_ci_build_key_finds_the_workspace_as_suitcase_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, given: str | None
) -> None:
    """SUITCASE_WORKSPACE relative to the current folder, `~` for HOME, unset for the current
    folder: the key is where `suitcase build` will look for it (Workspace.at)."""
    script = _checkout_of_its_own(tmp_path)
    job, home = tmp_path / "job", tmp_path / "home"
    (job / "sub").mkdir(parents=True)
    home.mkdir()
    key = tmp_path / "k"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    monkeypatch.chdir(job)
    monkeypatch.setenv("HOME", str(home))
    if given is None:
        monkeypatch.delenv("SUITCASE_WORKSPACE", raising=False)
    else:
        monkeypatch.setenv("SUITCASE_WORKSPACE", given)
    set_id = "Debian-12-x86_64-20260101000000"
    result = subprocess.run(
        [str(script), set_id],
        capture_output=True,
        text=True,
        env={**os.environ, "BUILD_KEY": key.read_text()},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    installed = Workspace.at(None).keys_dir / set_id / "id_ed25519"
    assert installed.read_text() == key.read_text()
    assert [p.name for p in script.parent.parent.iterdir()] == ["bin"]  # nothing in the checkout


def test_ci_build_key_refuses_an_empty_workspace_as_suitcase_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = _checkout_of_its_own(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SUITCASE_WORKSPACE", "")
    with pytest.raises(ConfigError, match="the workspace is an empty string"):
        Workspace.at(None)
    result = subprocess.run(
        [str(script), "Debian-12-x86_64-20260101000000"],
        capture_output=True,
        text=True,
        env={**os.environ, "BUILD_KEY": "not read"},
        check=False,
    )
    assert result.returncode == 2
    assert "SUITCASE_WORKSPACE is set but empty" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkout"]


def test_ci_build_key_passes_shellcheck() -> None:
    result = subprocess.run(
        ["shellcheck", "-x", str(CI_BUILD_KEY)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout


def test_actions_are_pinned_by_commit_and_installs_come_before_credentials() -> None:
    """A tag can be moved to other code; a commit cannot. And nothing is installed while AWS
    credentials are in the environment: bin/setup-host (hash-locked) runs first."""
    lines = [line for line in WORKFLOW.read_text().splitlines() if "uses:" in line]
    assert lines
    for line in lines:
        match = re.search(r"uses: ([\w.-]+/[\w.-]+)@([0-9a-f]{40}) # v\d+(\.\d+)*$", line)
        assert match, f"not pinned by commit with its tag noted: {line.strip()}"
        assert PINNED[match.group(1)] == match.group(2), line
    for name, job in _workflow()["jobs"].items():
        steps = job["steps"]
        setup = next(i for i, s in enumerate(steps) if s.get("run") == "bin/setup-host")
        creds = next(
            i for i, s in enumerate(steps) if str(s.get("uses", "")).startswith("aws-actions/")
        )
        assert setup < creds, name
        checkout = next(s for s in steps if str(s.get("uses", "")).startswith("actions/checkout"))
        assert checkout["with"]["persist-credentials"] is False, name
