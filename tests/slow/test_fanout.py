"""Past one machine, locally: two workspaces share one S3, the second only fetches the master.

The first workspace (a hard-linked copy of the shared built set) uploads its master to its
embedded AWS endpoint. The second workspace is another machine: empty, it reaches that endpoint
as an AWS account (`AWS_ENDPOINT_URL` and credentials, `aws: account`: what a CI job gets from
its secrets), receives the build key as CI does (bin/ci-build-key), `fetch`es the master,
builds aws-paravirt on top of it — the master is never rebuilt: no debootstrap, no Packer run for
it, its fetched files untouched — then registers it, so the first sees the AMI.
This is .github/workflows/images.yml's fan-out on one machine.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from suitcase.aws.endpoint import EmbeddedEndpoint
from suitcase.config import PROJECT_ROOT
from tests.slow.conftest import OS_NAME, BuiltSet, suitcase
from tests.slow.reliability import aws_holdings, endpoint_url, leftovers, stage_dir, stop_endpoint

pytestmark = pytest.mark.slow


def test_second_workspace_fetches_the_master_and_builds_on_it(
    built_set: BuiltSet, tmp_path: Path
) -> None:
    ts = built_set.timestamp
    first = built_set.copy(tmp_path / "first")
    second = tmp_path / "second"
    second.mkdir()
    set_id = f"{OS_NAME}-{ts}"
    try:
        suitcase("upload", "master", "--os", OS_NAME, "--timestamp", ts, workspace=first)
        url = endpoint_url(first)  # the first machine's S3 and EC2, reached with its key
        access = EmbeddedEndpoint(first).credentials()
        assert access is not None
        account = {
            "AWS_ENDPOINT_URL": url,
            "AWS_ACCESS_KEY_ID": access.access_key_id,
            "AWS_SECRET_ACCESS_KEY": access.secret_access_key,
            "SUITCASE_AWS": "account",
        }
        # the build key travels as a CI secret, never through S3
        key = (first / "keys" / set_id / "id_ed25519").read_text()
        subprocess.run(
            [str(PROJECT_ROOT / "bin" / "ci-build-key"), set_id],
            env={**os.environ, "BUILD_KEY": key, "SUITCASE_WORKSPACE": str(second)},
            check=True,
            capture_output=True,
        )

        fetched = suitcase(
            "fetch", "master", "--os", OS_NAME, "--timestamp", ts, workspace=second, env=account
        )
        assert "using the configured AWS account" in fetched.stderr
        master1, master2 = stage_dir(first, "master", ts), stage_dir(second, "master", ts)
        assert json.loads((master2 / "manifest.json").read_text()) == json.loads(
            (master1 / "manifest.json").read_text()
        )
        fetched_files = {p.name: p.stat().st_ino for p in master2.iterdir()}

        built = suitcase(
            "build", "aws-paravirt", "--os", OS_NAME, "--timestamp", ts, workspace=second
        )
        assert "[master] up to date" in built.stderr, built.stderr
        assert "[master] building" not in built.stderr
        assert "debootstrap" not in built.stderr
        assert not (second / "packer_cache" / "debootstrap").exists()
        # the master's folder is exactly what fetch wrote: no build.log, nothing replaced
        assert {p.name: p.stat().st_ino for p in master2.iterdir()} == fetched_files
        assert not (master2 / "build.log").exists()
        pv = stage_dir(second, "aws-paravirt", ts)
        pv_manifest = json.loads((pv / "manifest.json").read_text())
        master_key = json.loads((master2 / "manifest.json").read_text())["key"]
        assert pv_manifest["parent"] == {"stage": "master", "key": master_key}
        assert pv_manifest["inputs"]["parent"] == master_key

        # registering writes the disk into EBS directly (no S3 round trip): fake-upload's cookie
        # lets it start without shipping 4 GiB to S3 first, as the original's fake_upload did;
        # but only a verified stage is registered, a cookie is never enough (suitcase.gates)
        where = ("aws-paravirt", "--os", OS_NAME, "--timestamp", ts)
        suitcase("fake-upload", *where, workspace=second, env=account)
        refused = suitcase("register", *where, workspace=second, env=account, check=False)
        assert refused.returncode == 1 and "is not registered: never verified" in refused.stderr
        suitcase("verify", *where, "--mode", "offline", workspace=second, env=account)
        suitcase("register", *where, workspace=second, env=account)
        # the first machine's S3 and EC2 hold what the second made
        held = aws_holdings(first, pv_manifest["key"])
        assert len(held["amis"]) == 1
        assert held["unfinished uploads"] == 0
        assert any(k.endswith(f"master/{set_id}/disk.qcow2") for k in held["keys"])
        assert not (second / "endpoint").exists()  # the second never ran an endpoint of its own
        assert leftovers(second) == []
    finally:
        stop_endpoint(first)
