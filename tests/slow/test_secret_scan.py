"""A secret scan through the whole pipeline: `suitcase all` with secrets set, then every log,
manifest, report, cookie and record in the workspace searched for them.

A hard-linked copy of the shared built set, its aws-paravirt stage rebuilt (so Packer runs with
its sensitive input, the build key, and a provisioning script sets a root password), then
`suitcase all aws-paravirt`: build, verify, upload and register. The AWS calls go to the
workspace's endpoint as a configured account, with distinctive credentials in the environment
(a secret key and a session token, which the requests carry). The root password is set by a
planted script that also says it carelessly (`root_password="..."` and the crypt hash, as a
provisioning script's output would): Suitcase's redaction must catch both in Packer's stream.
None of the secrets, nor any line of the build key, may appear in any file the run wrote
(the disks themselves excepted: the image's /etc/shadow holds the hash by design), nor in
what it printed.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from suitcase.config import PROJECT_ROOT
from suitcase.manifest import inspect_manifest
from tests.conftest import DATA_DIRS
from tests.slow.conftest import OS_NAME, BuiltSet, hardlink_workspace, suitcase
from tests.slow.reliability import (
    Run,
    clients,
    endpoint_url,
    leftovers,
    scratch_mounts,
    stop_endpoint,
)

pytestmark = pytest.mark.slow

ROOT_PASSWORD = "Scan-Root-Pw-7f3a9c21e8"
AWS_SECRET = "scanSecretKey/7f3a9c21e8b4d6a0c2e4f6a8b0c2d4e6f8a0b2c4"
AWS_TOKEN = "scanSessionToken7f3a9c21e8b4d6a0//c2e4f6a8b0c2d4e6f8a0b2c4d6e8f0a2b4c6d8e0f2a4=="


def _home_with_a_root_password(tmp_path: Path, crypt_hash: str) -> Path:
    """The project's data folders, with one more aws-paravirt script: only that stage's key
    changes, so the master of the shared set stays done."""
    home = tmp_path / "home"
    for name in DATA_DIRS:
        shutil.copytree(PROJECT_ROOT / name, home / name, symlinks=True)
    shutil.copy(PROJECT_ROOT / "site.yaml", home / "site.yaml")
    script = home / "scripts" / "aws-paravirt" / "05-root-password.sh"
    script.write_text(
        "#!/bin/bash\n"
        "# planted by tests/slow/test_secret_scan.py: a root password, set and said carelessly\n"
        "set -eu\n"
        f"usermod -p '{crypt_hash}' root\n"
        f"echo 'root_password=\"{ROOT_PASSWORD}\"'\n"
        f"echo 'root now has the hash {crypt_hash}'\n"
    )
    script.chmod(0o755)
    return home


def _written_files(ws: Path) -> list[Path]:
    """Every file of the workspace but the disks (manifest outputs, object bodies) and the keys."""
    disks: set[Path] = set()
    for manifest_path in ws.glob("images/*/*/manifest.json"):
        manifest, _ = inspect_manifest(manifest_path.parent)
        if manifest is not None:
            disks |= {(manifest_path.parent / o.path).resolve() for o in manifest.outputs}
    files = []
    for path in ws.rglob("*"):
        if not path.is_file() or path.is_symlink() or path.resolve() in disks:
            continue
        rel = path.relative_to(ws).parts
        if rel[0] in ("keys", "packer_cache") or rel[:2] == ("endpoint", "blobs"):
            continue
        files.append(path)
    return files


def test_no_secret_in_any_file_of_a_pipeline_run(built_set: BuiltSet, tmp_path: Path) -> None:
    ts = built_set.timestamp
    ws = hardlink_workspace(built_set.workspace, tmp_path / "ws")
    crypt_hash = subprocess.run(
        ["openssl", "passwd", "-6", "-salt", "scan7f3a9c21", ROOT_PASSWORD],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    home = _home_with_a_root_password(tmp_path, crypt_hash)
    build_key = (ws / "keys" / f"{OS_NAME}-{ts}" / "id_ed25519").read_text()
    suitcase("clean", "aws-paravirt", "--os", OS_NAME, "--timestamp", ts, workspace=ws)
    before = scratch_mounts()
    try:
        suitcase("endpoint", "start", workspace=ws, env={"SUITCASE_AWS": "embedded"})
        url = endpoint_url(ws)
        s3, _ = clients(url)
        s3.create_bucket(Bucket="suitcase-images")  # an account's bucket exists beforehand
        env = {
            "SUITCASE_HOME": str(home),
            "SUITCASE_AWS": "account",
            "AWS_ENDPOINT_URL": url,
            "AWS_ACCESS_KEY_ID": "AKIASUITCASESCAN7F3A",
            "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
            "AWS_SESSION_TOKEN": AWS_TOKEN,
        }
        run = Run.start(ws, "all", "aws-paravirt", "--os", OS_NAME, "--timestamp", ts, env=env)
        printed = run.finish() + run.stdout()
        assert "[aws-paravirt] building" in printed  # Packer ran, with the planted script
        assert "[master] up to date" in printed
        assert "registered" in printed or "ami-" in printed, printed[-2000:]
        log = (ws / "images" / "aws-paravirt" / f"{OS_NAME}-{ts}" / "build.log").read_text()
        assert "05-root-password" in log or "root_password=<redacted>" in log, log[-3000:]
    finally:
        stop_endpoint(ws)
    assert leftovers(ws, before) == []

    secrets = {
        "root password": ROOT_PASSWORD,
        "root password hash": crypt_hash,
        "hash digest": crypt_hash.rsplit("$", 1)[-1],
        "AWS secret key": AWS_SECRET,
        "AWS session token": AWS_TOKEN,
    }
    key_lines = [x for x in build_key.splitlines() if len(x) >= 20 and "PRIVATE KEY" not in x]
    assert key_lines
    secrets |= {f"build key line {n}": line for n, line in enumerate(key_lines)}
    files = _written_files(ws)
    names = {p.name for p in files}
    for expected in ("build.log", "console.log", "manifest.json", ".upload_done", "endpoint.log"):
        assert expected in names, f"{expected} was not written: the scan would prove nothing"
    assert any(p.parent.name == "reports" for p in files)
    found = []
    for path in [*files, run.err, run.out]:
        data = path.read_bytes()
        found += [f"{what} in {path}" for what, value in secrets.items() if value.encode() in data]
    assert found == []
