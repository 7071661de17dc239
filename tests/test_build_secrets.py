"""Build secrets (SUITCASE_SECRET_*): checked up front, handed to provisioning through the
templates' sensitive Packer variable, unpacked by the real run-stage.sh, masked everywhere, and
never a stage input. The Packer runs are real (null builder, shell-local: no VM)."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from suitcase import buildsecrets, packer
from suitcase.cli import cli
from suitcase.config import PROJECT_ROOT, Paths
from suitcase.errors import ConfigError
from suitcase.redact import Redactor, forget, redact_text
from tests.test_plan import keys, plan_for

TOKEN = "Registry-Token-5b7d9e1f3a"
TEMPLATES = sorted((PROJECT_ROOT / "image-templates").glob("*.json"))


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"SUITCASE_SECRET_lower": TOKEN}, "bad build secret name SUITCASE_SECRET_lower (A-Z"),
        ({"SUITCASE_SECRET_": TOKEN}, "bad build secret name SUITCASE_SECRET_ (A-Z"),
        ({"SUITCASE_SECRET_9LIVES": TOKEN}, "starting with a letter"),
        ({"SUITCASE_SECRET_A-B": TOKEN}, "bad build secret name SUITCASE_SECRET_A-B"),
        ({"SUITCASE_SECRET_TOKEN": ""}, "build secret SUITCASE_SECRET_TOKEN is empty or shorter"),
        ({"SUITCASE_SECRET_TOKEN": " ab "}, "too short to keep out of the logs"),
        ({"SUITCASE_SECRET_TOKEN": "x" * 20000}, "more than 16384 bytes or a NUL"),
        ({"SUITCASE_SECRET_TOKEN": "abcd\0efgh"}, "more than 16384 bytes or a NUL"),
        ({f"SUITCASE_SECRET_S{n}": TOKEN for n in range(33)}, "33 build secrets"),
    ],
)
def test_bad_secrets_are_refused(env: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError, match=r"^[^\n]*$") as error:
        buildsecrets.build_secrets(env)
    assert expected in str(error.value)
    assert "\n" not in str(error.value)
    assert TOKEN not in str(error.value)  # the refusal never quotes the value


def test_good_secrets_are_found_and_packed() -> None:
    env = {"SUITCASE_SECRET_TOKEN": TOKEN, "SUITCASE_SECRET_B": "p a:s s", "OTHER": "x"}
    found = buildsecrets.build_secrets(env)
    assert found == {"TOKEN": TOKEN, "B": "p a:s s"}
    packed = buildsecrets.packer_value(found)
    pairs = dict(p.split(":", 1) for p in packed.split(" "))
    assert {k: base64.b64decode(v).decode() for k, v in pairs.items()} == found
    assert buildsecrets.packer_value({}) == ""


def test_a_bad_secret_is_one_line_before_anything_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUITCASE_SECRET_token", TOKEN)
    result = CliRunner().invoke(cli, ["--workspace", str(tmp_path), "plan"])
    assert result.exit_code == 2, result.output
    assert result.output.splitlines() == [
        "suitcase: error: bad build secret name SUITCASE_SECRET_token (A-Z, 0-9 and _, "
        "starting with a letter, at most 64 characters)"
    ]
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_once_read_every_redactor_masks_a_secret_and_its_base64(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    encoded = base64.b64encode(TOKEN.encode()).decode()
    text = f"token {TOKEN} or {encoded}"
    assert Redactor()(text) == text  # not a secret until it is set as one
    monkeypatch.setenv("SUITCASE_SECRET_TOKEN", TOKEN)
    try:
        buildsecrets.build_secrets()  # as every verb does first
        assert Redactor()(text) == "token <redacted> or <redacted>"
        assert redact_text(text) == "token <redacted> or <redacted>"
    finally:
        forget(*buildsecrets.forms({"TOKEN": TOKEN}))


def test_packer_gets_them_from_its_environment_never_inherited(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(buildsecrets.PACKER_ENV, "STALE:c3RhbGU=")
    assert packer.packer_env()[buildsecrets.PACKER_ENV] == ""
    monkeypatch.setenv("SUITCASE_SECRET_TOKEN", TOKEN)
    assert packer.packer_env()[buildsecrets.PACKER_ENV] == buildsecrets.packer_value(
        {"TOKEN": TOKEN}
    )


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_every_template_declares_them_sensitive_and_passes_them_on(path: Path) -> None:
    body = json.loads(path.read_text())
    assert body["variables"]["build_secrets"] == "{{env `SUITCASE_PACKER_SECRETS`}}"
    assert "build_secrets" in body["sensitive-variables"]
    stage_envs = [p.get("environment_vars", []) for p in body["provisioners"]]
    assert any("SUITCASE_SECRETS={{user `build_secrets`}}" in env for env in stage_envs)


def test_they_are_no_stage_input(
    home: Paths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = keys(plan_for(home, tmp_path))
    monkeypatch.setenv("SUITCASE_SECRET_TOKEN", TOKEN)
    assert keys(plan_for(home, tmp_path)) == before


def _stage_scripts(tmp_path: Path) -> Path:
    """The real run-stage.sh with one master script that uses the secret (and says it)."""
    scripts = tmp_path / "scripts"
    (scripts / "master").mkdir(parents=True)
    shutil.copy(PROJECT_ROOT / "scripts" / "run-stage.sh", scripts / "run-stage.sh")
    (scripts / "master" / "10-use.sh").write_text(
        "set -eu\n"
        'printf %s "$SUITCASE_SECRET_TOKEN" | sha256sum | cut -d" " -f1 > "$OUT/digest"\n'
        'printf %s "${SUITCASE_SECRETS-unset}" > "$OUT/packed"\n'
        'echo "careless: the token is $SUITCASE_SECRET_TOKEN"\n'
    )
    return scripts


def test_a_provisioning_script_gets_them_through_packer_and_no_log_has_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real qemu-disk template's declaration and hand-over, on Packer's null builder."""
    real = json.loads((PROJECT_ROOT / "image-templates" / "qemu-disk.json").read_text())
    stage_env = next(p["environment_vars"] for p in real["provisioners"] if "environment_vars" in p)
    scripts = _stage_scripts(tmp_path)
    body = {
        "variables": {"build_secrets": real["variables"]["build_secrets"]},
        "sensitive-variables": real["sensitive-variables"],
        "builders": [{"type": "null", "communicator": "none"}],
        "provisioners": [
            {
                "type": "shell-local",
                "environment_vars": [e for e in stage_env if e.startswith("SUITCASE_SECRETS=")]
                + [
                    "SUITCASE_FAMILY=debian",
                    "SUITCASE_OS=Debian-12-x86_64",
                    "SUITCASE_MAJOR=12",
                    "SUITCASE_BUILD=20261128000000",
                    f"OUT={tmp_path}",
                ],
                # the guest never has Suitcase's environment: only the hand-over may bring it
                "inline": [f"env -u SUITCASE_SECRET_TOKEN bash {scripts}/run-stage.sh master"],
            }
        ],
    }
    (tmp_path / "t.json").write_text(json.dumps(body))
    monkeypatch.setenv("SUITCASE_SECRET_TOKEN", TOKEN)
    messages: list[str] = []
    packer.build(
        tmp_path / "t.json",
        {},
        workdir=tmp_path,
        log=tmp_path / "build.log",
        on_message=messages.append,
    )
    assert (tmp_path / "digest").read_text().strip() == hashlib.sha256(TOKEN.encode()).hexdigest()
    assert (tmp_path / "packed").read_text() == "unset"  # the pairs go no further
    log = (tmp_path / "build.log").read_text()
    assert "careless: the token is" in log
    encoded = base64.b64encode(TOKEN.encode()).decode()
    for leak in (TOKEN, encoded):
        assert leak not in log
        assert not any(leak in m for m in messages)
    assert not list(tmp_path.glob("variables.json"))


@pytest.mark.parametrize(
    ("packed", "expected"),
    [("lower:YWJjZA==", "bad name"), ("TOKEN:***", "is not base64"), ("9X:YWJjZA==", "bad name")],
)
def test_run_stage_refuses_what_it_cannot_unpack(
    tmp_path: Path, packed: str, expected: str
) -> None:
    scripts = _stage_scripts(tmp_path)
    env = {
        "PATH": "/usr/bin:/bin",
        "SUITCASE_FAMILY": "debian",
        "SUITCASE_OS": "Debian-12-x86_64",
        "SUITCASE_MAJOR": "12",
        "SUITCASE_BUILD": "20261128000000",
        "SUITCASE_SECRETS": packed,
        "OUT": str(tmp_path),
    }
    result = subprocess.run(
        ["bash", str(scripts / "run-stage.sh"), "master"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert expected in result.stderr
    assert not (tmp_path / "digest").exists()  # no script ran
