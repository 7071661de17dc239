"""The plugin's `suitcase_upload` fixture through pytester: uploads once, across xdist workers."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.aws_proxy import FaultProxy
from tests.endpoint_support import Launched, launch
from tests.s3_support import point_at
from tests.test_plugin import ARGS, _specs
from tests.test_s3 import held, s3

pytest_plugins = ["pytester"]
SET = "Fake-12-x86_64-20260101000000"


@pytest.fixture
def endpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Launched, FaultProxy]]:
    """The twin (the endpoint Suitcase ships) as the configured account, behind a proxy."""
    with launch("twin", tmp_path / "twin") as server, FaultProxy(server.url) as proxy:
        point_at(monkeypatch, server, "suitcase-fixture", tmp_path, url=proxy.url)
        s3(server).create_bucket(Bucket="suitcase-fixture")
        yield server, proxy


def test_suitcase_upload_uploads_once_across_workers(
    endpoint: tuple[Launched, FaultProxy],  # first: the twin runs the project's own data
    pytester: pytest.Pytester,
    fake_home: Path,
) -> None:
    server, proxy = endpoint
    _specs(pytester)
    (pytester.path / "specs" / "common" / "test_uploaded.py").write_text(
        textwrap.dedent(
            """
        def test_uploaded(suitcase_upload, suitcase_image, suitcase_artifact):
            assert suitcase_upload["fake"] is False
            assert suitcase_upload["key"] == suitcase_artifact.key
            keys = {o["key"] for o in suitcase_upload["objects"]}
            assert any(k.endswith(f"{suitcase_image}/SETID/manifest.json") for k in keys)
    """
        ).replace("SETID", SET)
    )
    result = pytester.runpytest_subprocess("specs", "--image=vagrant,aws-hvm", "-n", "2", *ARGS)
    result.assert_outcomes(passed=5)
    objects = held(server, "suitcase-fixture")
    for image in ("master", "vagrant", "aws-hvm"):
        assert f"suitcase/{image}/{SET}/manifest.json" in objects
    # both workers needed the master; only one uploaded it
    master_disk = [
        path
        for method, path, query in proxy.log
        if method == "POST"
        and query == "uploads"
        and f"/master/{SET}/" in path
        and not path.endswith("manifest.json")
    ]
    assert len(master_disk) == 1, master_disk
    # a second run finds the cookies and their objects, and sends nothing
    before = len(proxy.log)
    again = pytester.runpytest_subprocess("specs", "--image=vagrant,aws-hvm", *ARGS)
    again.assert_outcomes(passed=5)
    # (POST / is the one STS GetCallerIdentity that checks the account's credentials)
    assert {method for method, path, _ in proxy.log[before:] if path != "/"} <= {"HEAD"}
    # an object lost behind the cookie's back (an endpoint that lost its state) goes up again
    s3(server).delete_object(Bucket="suitcase-fixture", Key=f"suitcase/aws-hvm/{SET}/manifest.json")
    third = pytester.runpytest_subprocess("specs", "--image=aws-hvm", *ARGS)
    third.assert_outcomes(passed=2)
    assert f"suitcase/aws-hvm/{SET}/manifest.json" in held(server, "suitcase-fixture")


def test_a_fake_cookie_does_not_satisfy_the_fixture(
    endpoint: tuple[Launched, FaultProxy],  # first: the twin runs the project's own data
    pytester: pytest.Pytester,
    fake_home: Path,
) -> None:
    server, _ = endpoint
    _specs(pytester)
    (pytester.path / "specs" / "common" / "test_uploaded.py").write_text(
        "def test_uploaded(suitcase_upload):\n    assert suitcase_upload['objects']\n"
    )
    first = pytester.runpytest_subprocess("specs", "--image=aws-hvm", "-k", "built", *ARGS)
    first.assert_outcomes(passed=1)
    cookie = pytester.path / "images" / "aws-hvm" / SET / ".upload_done"
    cookie.write_text('{"fake": true, "key": "x", "objects": []}\n')
    result = pytester.runpytest_subprocess("specs", "--image=aws-hvm", *ARGS)
    result.assert_outcomes(passed=2)
    assert f"suitcase/aws-hvm/{SET}/manifest.json" in held(server, "suitcase-fixture")
