"""The pytest plugin through pytester: options, markers, collection check, builds as fixtures.

Builds here run the real Packer with tiny templates (null builder + shell-local making qcow2
files with qemu-img), so the fixtures, locks and xdist sharing are exercised in seconds.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]


def _specs(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", site="mirrors: {debian: 'http://mirror.invalid/debian'}\n")
    specs = pytester.mkdir("specs")
    # the build set these runs name exists (started, nothing built): naming one that does not
    # is a usage error
    (pytester.path / "images" / "master" / "Fake-12-x86_64-20260101000000").mkdir(parents=True)
    for folder in ("common", "vagrant", "aws-hvm"):
        (specs / folder).mkdir()
    (specs / "common" / "test_built.py").write_text(
        textwrap.dedent("""
        def test_artifact_is_built(suitcase_artifact, suitcase_image):
            assert suitcase_artifact.stage == suitcase_image
            assert suitcase_artifact.outputs
    """)
    )
    (specs / "vagrant" / "test_box.py").write_text(
        textwrap.dedent("""
        def test_box_listed(suitcase_artifact):
            assert suitcase_artifact.output("box") is not None
    """)
    )


ARGS = ["--os=Fake-12-x86_64", "--timestamp=20260101000000", "-p", "no:cacheprovider"]


def test_plugin_is_inert_without_its_options(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_plain():\n    assert 1 + 1 == 2\n")
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    assert not (pytester.path / "reports").exists()
    assert "suitcase verification" not in result.stdout.str()


def test_markers_are_registered(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(
        ["*suitcase_images(*names)*", "*suitcase_family*", "*suitcase_booted*"]
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--image=awsx", "--os=Debian-12-x86_64"], "unknown image type 'awsx'*suitcase list*"),
        (["--image=all", "--os=Nope-1"], "unknown OS 'Nope-1'*"),
        (["--os=Debian-12-x86_64", "--timestamp=2026"], "*is not YYYYMMDDhhmmss*"),
    ],
)
def test_bad_options_are_usage_errors(
    pytester: pytest.Pytester, args: list[str], message: str
) -> None:
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{message}"])


def test_misnamed_spec_file_fails_collection(pytester: pytest.Pytester, fake_home: Path) -> None:
    _specs(pytester)
    (pytester.path / "specs" / "aws-hvm" / "sriov_spec.py").write_text("def test_x(): pass\n")
    result = pytester.runpytest("specs", "--image=aws-hvm", *ARGS)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*sriov_spec.py would never run*"])


def test_only_selected_image_folders_are_collected(
    pytester: pytest.Pytester, fake_home: Path
) -> None:
    _specs(pytester)
    result = pytester.runpytest("specs", "--image=aws-hvm", "--collect-only", "-q", *ARGS)
    out = result.stdout.str()
    assert "test_artifact_is_built[aws-hvm]" in out
    assert "test_box" not in out and "[vagrant]" not in out


def test_build_shared_by_xdist_workers_happens_once(
    pytester: pytest.Pytester, fake_home: Path
) -> None:
    _specs(pytester)
    result = pytester.runpytest_subprocess("specs", "--image=vagrant,aws-hvm", "-n", "2", *ARGS)
    result.assert_outcomes(passed=3)
    runs = (fake_home / "packer-runs.txt").read_text().split()
    assert sorted(runs) == ["aws-hvm", "master", "vagrant"], runs
    result.stdout.fnmatch_lines(["*suitcase verification*", "*aws-hvm*common*1*0*0*0*"])
    manifest = json.loads(
        (
            pytester.path / "images" / "vagrant" / "Fake-12-x86_64-20260101000000" / "manifest.json"
        ).read_text()
    )
    assert manifest["extra"]["verification"]["passed"] is True
    junit = pytester.path / "reports" / "junit-Fake-12-x86_64-20260101000000.xml"
    assert 'tests="3"' in junit.read_text()
    # a second run reuses everything: no Packer run at all
    again = pytester.runpytest_subprocess("specs", "--image=vagrant,aws-hvm", *ARGS)
    again.assert_outcomes(passed=3)
    assert (fake_home / "packer-runs.txt").read_text().split() == runs
    # a typo (exit 4) and an empty selection (exit 5) keep the set's last report as it was
    report = junit.read_bytes()
    typo = pytester.runpytest_subprocess("specz", "--image=vagrant,aws-hvm", *ARGS)
    assert typo.ret == pytest.ExitCode.USAGE_ERROR
    nothing = pytester.runpytest_subprocess("specs", "--image=aws-hvm", "-k", "nomatch", *ARGS)
    assert nothing.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    assert junit.read_bytes() == report
    assert sorted(p.name for p in junit.parent.iterdir()) == [junit.name]  # nothing beside


def test_failed_build_is_an_error_not_a_pass(pytester: pytest.Pytester, fake_home: Path) -> None:
    _specs(pytester)
    (fake_home / "fail-aws-hvm").write_text("")
    result = pytester.runpytest_subprocess("specs", "--image=aws-hvm", *ARGS)
    result.assert_outcomes(errors=1, passed=0)
    result.stdout.fnmatch_lines(["*packer build failed*"])


def test_each_image_type_runs_on_one_worker(pytester: pytest.Pytester, fake_home: Path) -> None:
    _specs(pytester)
    (pytester.path / "specs" / "common" / "test_where.py").write_text(
        textwrap.dedent("""
        import os
        import pytest

        @pytest.mark.parametrize("n", range(6))
        def test_where(suitcase_image, n, request):
            log = request.config.rootpath / "where.txt"
            with log.open("a") as handle:
                handle.write(f"{suitcase_image} {os.environ['PYTEST_XDIST_WORKER']}\\n")
    """)
    )
    result = pytester.runpytest_subprocess("specs", "--image=vagrant,aws-hvm", "-n", "2", *ARGS)
    result.assert_outcomes(passed=15)
    seen: dict[str, set[str]] = {}
    for line in (pytester.path / "where.txt").read_text().splitlines():
        image, worker = line.split()
        seen.setdefault(image, set()).add(worker)
    assert set(seen) == {"vagrant", "aws-hvm"}
    assert all(len(workers) == 1 for workers in seen.values()), seen


def test_verify_verb_runs_the_specs_and_passes_on_their_verdict(
    fake_home: Path, tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from suitcase.cli import cli

    (fake_home / "specs" / "common").mkdir()
    spec = fake_home / "specs" / "common" / "test_built.py"
    spec.write_text("def test_built(suitcase_artifact):\n    assert suitcase_artifact.outputs\n")
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "site.yaml").write_text("mirrors: {debian: 'http://mirror.invalid/debian'}\n")
    ts = ["--os", "Fake-12-x86_64", "--timestamp", "20260101000000"]
    args = ["--workspace", str(ws), "verify", "aws-hvm", *ts]
    # verify never builds a build set the user named that does not exist: one line, exit 2
    missing = CliRunner().invoke(cli, args)
    assert missing.exit_code == 2, missing.output
    assert missing.output.splitlines() == [
        f"suitcase: error: build set Fake-12-x86_64-20260101000000 does not exist in {ws}/images: "
        "build it with 'suitcase build --os Fake-12-x86_64 --timestamp 20260101000000', or leave "
        "out --timestamp for the newest one"
    ]
    assert not (ws / "images").exists() and not (ws / "reports").exists()
    built = CliRunner().invoke(cli, ["build", "aws-hvm", *ts, "--workspace", str(ws)])
    assert built.exit_code == 0, built.output
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    manifest = json.loads(
        (ws / "images" / "aws-hvm" / "Fake-12-x86_64-20260101000000" / "manifest.json").read_text()
    )
    assert manifest["extra"]["verification"]["passed"] is True
    spec.write_text(
        "def test_built(suitcase_artifact):\n    assert not suitcase_artifact.outputs\n"
    )
    assert CliRunner().invoke(cli, args).exit_code == 1
