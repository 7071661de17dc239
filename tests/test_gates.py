"""Gates that mean what they say (issue 21, item 6): what a passed verification is worth.

- a rerun of `all` skips verification only after a pass in the same mode or a stronger one;
- `register` needs a whole, passed verification of that stage key in a mode the site accepts
  (the CLI side, against the embedded endpoint, is in tests/test_ami.py);
- a run of part of the specs, or one with a spec skipped where it was to run, is no pass.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from suitcase.cli import cli
from suitcase.context import Context
from suitcase.gates import at_least, planned, reached, required, verification_problem
from suitcase.pipeline import Pipeline
from suitcase.summary import PipelineRecord, StepRecord

pytest_plugins = ["pytester"]

OS = "Debian-12-x86_64"
KEY = "a" * 64
SHA = "b" * 64


def test_modes_have_a_strength() -> None:
    assert reached("aws-hvm", "auto") == "boot" and reached("aws-hvm", "offline") == "offline"
    assert reached("aws-paravirt", "auto") == "offline"  # no PV boot here, whatever is asked
    assert at_least("boot", "offline") and at_least("offline", "offline")
    assert not at_least("offline", "boot") and not at_least("", "offline")
    assert required("aws-hvm", "boot") == "boot" and required("aws-hvm", "offline") == "offline"
    assert required("aws-paravirt", "boot") == "offline"  # the strongest it can reach
    assert planned("planned: only for el") and planned("Skipped: planned: x")
    assert not planned("the file is missing") and not planned("")


def _record(**changes: Any) -> dict[str, Any]:
    record = {
        "key": KEY,
        "source": "artifact",
        "file": {"path": "disk.raw", "sha256": SHA},
        "complete": True,
        "passed": True,
        "reached": "boot",
    }
    record.update(changes)
    return record


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({}, None),
        ({"key": "c" * 64}, "another build of the stage"),
        ({"source": "ami"}, "only its AMI was verified"),
        ({"file": {"path": "disk.raw", "sha256": None}}, "did not match its manifest"),
        ({"file": {"path": "disk.raw", "sha256": "d" * 64}}, "not the one that ships"),
        ({"complete": False}, "only part of the specs ran"),
        ({"passed": False}, "did not pass"),
        ({"reached": "offline"}, "register_requires asks for boot"),
        ({"reached": None}, "in an unknown mode"),
    ],
)
def test_what_a_verification_record_is_worth(changes: dict[str, Any], problem: str | None) -> None:
    found = verification_problem("aws-hvm", KEY, SHA, _record(**changes), "boot")
    assert found == problem if problem is None else problem in str(found)


def test_no_record_and_the_sites_minimum() -> None:
    assert verification_problem("aws-hvm", KEY, SHA, None, "boot") == "never verified"
    offline = _record(reached="offline")
    assert verification_problem("aws-hvm", KEY, SHA, offline, "offline") is None
    assert verification_problem("aws-paravirt", KEY, SHA, offline, "boot") is None


def test_a_rerun_verifies_again_after_a_weaker_pass(workspace: Path, tmp_path: Path) -> None:
    """An offline pass of aws-hvm stands for an offline rerun, never a booted one; aws-paravirt
    reaches offline in every mode, so its offline pass stands for both."""
    ctx = Context.create(workspace)
    pipeline = Pipeline(ctx, "aws-hvm,aws-paravirt", OS, lambda _line: None)
    junit = workspace / "reports" / "junit.xml"
    junit.parent.mkdir()
    junit.write_text("<testsuites/>")
    record = PipelineRecord(tmp_path / "pipeline.json")
    for image in ("aws-hvm", "aws-paravirt"):
        entry = StepRecord("ran", 1.0, KEY, junit="reports/junit.xml", reached="offline")
        record.put("verify", image, entry)
    assert pipeline._verified(record, "verify", "aws-hvm", KEY, "offline")
    assert not pipeline._verified(record, "verify", "aws-hvm", KEY, "auto")
    assert pipeline._verified(record, "verify", "aws-paravirt", KEY, "auto")
    record.put("verify", "aws-hvm", StepRecord("ran", 1.0, KEY, junit="reports/junit.xml"))
    assert not pipeline._verified(record, "verify", "aws-hvm", KEY, "offline")  # unknown: rerun
    booted = StepRecord("ran", 1.0, KEY, junit="reports/junit.xml", reached="boot")
    record.put("verify", "aws-hvm", booted)
    assert pipeline._verified(record, "verify", "aws-hvm", KEY, "auto")
    assert pipeline._verified(record, "verify", "aws-hvm", KEY, "offline")
    assert not pipeline._verified(record, "verify", "aws-hvm", "c" * 64, "auto")


def test_all_in_a_mode_register_would_not_accept_is_refused_first(
    workspace: Path, runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SUITCASE_REGISTER_REQUIRES", raising=False)
    result = runner.invoke(cli, ["all", "aws-hvm", "--os", OS, "--mode", "offline"])
    assert result.exit_code == 2, result.output
    assert result.output.splitlines() == [
        "suitcase: error: --mode offline verifies aws-hvm offline only, and the site's "
        "register_requires is boot: use --mode auto, or set register_requires: offline in "
        "site.yaml"
    ]
    assert sorted(p.name for p in workspace.iterdir()) == []  # nothing built, nothing started


SPECS = {
    "test_one.py": """
        def test_one(suitcase_artifact):
            assert suitcase_artifact.outputs
    """,
    "test_family.py": """
        import pytest

        @pytest.mark.suitcase_family("el")
        def test_el_only(suitcase_artifact):
            assert False, "never runs on Fake-12"
    """,
}
RUNTIME_SKIP = """
    import pytest

    def test_found_nothing_to_check(suitcase_artifact):
        pytest.skip("/etc/cloud/cloud.cfg is missing")
"""
ARGS = ["--os=Fake-12-x86_64", "--timestamp=20260101000000", "-p", "no:cacheprovider"]


def _verification(pytester: pytest.Pytester) -> dict[str, Any]:
    manifest = pytester.path / "images" / "aws-hvm" / "Fake-12-x86_64-20260101000000"
    record: dict[str, Any] = json.loads((manifest / "manifest.json").read_text())["extra"]
    return record["verification"]  # type: ignore[no-any-return]


def test_the_plugin_records_a_pass_only_for_the_whole_tree_with_planned_skips(
    pytester: pytest.Pytester, fake_home: Path
) -> None:
    pytester.makefile(".yaml", site="mirrors: {debian: 'http://mirror.invalid/debian'}\n")
    (pytester.path / "images" / "master" / "Fake-12-x86_64-20260101000000").mkdir(parents=True)
    specs = pytester.mkdir("specs")
    (specs / "common").mkdir()
    (specs / "aws-hvm").mkdir()
    for name, text in SPECS.items():
        (specs / "common" / name).write_text(textwrap.dedent(text))
    whole = pytester.runpytest_subprocess("specs", "--image=aws-hvm", *ARGS)
    whole.assert_outcomes(passed=1, skipped=1)  # the family skip is planned: a pass
    record = _verification(pytester)
    assert record["passed"] is True and record["complete"] is True
    assert record["reached"] == "boot" and record["unplanned_skips"] == []
    assert len(record["key"]) == 64

    for args, skipped in (
        (["specs", "-k", "test_one"], 0),
        (["specs/common/test_one.py"], 0),
        (["specs/common"], 1),
    ):
        part = pytester.runpytest_subprocess(*args, "--image=aws-hvm", *ARGS)
        part.assert_outcomes(passed=1, skipped=skipped)
        assert _verification(pytester)["complete"] is False, args

    (specs / "aws-hvm" / "test_cloud.py").write_text(textwrap.dedent(RUNTIME_SKIP))
    skipped = pytester.runpytest_subprocess("specs", "--image=aws-hvm", *ARGS)
    skipped.assert_outcomes(passed=1, skipped=2)
    record = _verification(pytester)
    assert record["passed"] is False and record["complete"] is True
    assert record["unplanned_skips"] == [
        "specs/aws-hvm/test_cloud.py::test_found_nothing_to_check[aws-hvm]"
    ]
