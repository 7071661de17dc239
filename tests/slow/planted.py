"""Secrets planted in a pipeline run, and the scan for them afterwards (issue 12 item 3).

`plant` prepares a run of `suitcase all` with secrets set: the AWS calls go to the workspace's
endpoint as a configured account, with distinctive credentials in the environment (a secret key
and a session token, which the requests carry); the aws-paravirt stage gets one more provisioning
script (a copy of the project's data folders: only that stage's key changes, so the master of the
shared set stays done) that sets a root password and says it carelessly (`root_password="..."`
and the crypt hash, as a provisioning script's output would; then puts the accounts back, so
the image itself stays clean), for Suitcase's redaction to catch
in Packer's stream; a build secret (SUITCASE_SECRET_SCAN_TOKEN) reaches that script through the
templates' sensitive Packer variable, which it checks by digest and then prints; and Packer logs
in with the build key, its sensitive input. `scan` then
searches every file the runs wrote — logs, manifests, reports, cookies, records, the endpoint's
log and state; the disks excepted (what they hold is the specs' business) — and what they
printed, for each secret and each line of the build key.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from suitcase.config import PROJECT_ROOT
from suitcase.manifest import inspect_manifest
from tests.conftest import DATA_DIRS
from tests.slow.conftest import OS_NAME, suitcase
from tests.slow.reliability import clients, endpoint_url

ROOT_PASSWORD = "Scan-Root-Pw-7f3a9c21e8"
AWS_KEY_ID = "AKIASUITCASESCAN7F3A"
AWS_SECRET = "scanSecretKey/7f3a9c21e8b4d6a0c2e4f6a8b0c2d4e6f8a0b2c4"
AWS_TOKEN = "scanSessionToken7f3a9c21e8b4d6a0//c2e4f6a8b0c2d4e6f8a0b2c4d6e8f0a2b4c6d8e0f2a4=="
BUILD_SECRET = "Scan-Build-Secret-7f3a9c21e8-d4"  # SUITCASE_SECRET_SCAN_TOKEN


@dataclass(frozen=True)
class Planted:
    env: dict[str, str]  # for every `suitcase` run of the test
    secrets: dict[str, str]  # what must never appear, by name


def _home_with_a_root_password(tmp_path: Path, crypt_hash: str) -> Path:
    home = tmp_path / "home"
    for name in DATA_DIRS:
        shutil.copytree(PROJECT_ROOT / name, home / name, symlinks=True)
    shutil.copy(PROJECT_ROOT / "site.yaml", home / "site.yaml")
    script = home / "scripts" / "aws-paravirt" / "05-root-password.sh"
    script.write_text(
        "#!/bin/bash\n"
        "# planted by tests/slow/planted.py: a root password, set and said carelessly\n"
        "set -eu\n"
        # the password is the build's, never the image's: the accounts are put back byte for
        # byte afterwards (from /run, which never ships), so the specs and parity still hold
        "cp -p /etc/shadow /run/suitcase-shadow\n"
        "if [ -e /etc/shadow- ]; then cp -p /etc/shadow- /run/suitcase-shadow-; fi\n"
        # the build secret came through Packer's sensitive variable, intact; said carelessly too
        f"digest=$(printf %s \"$SUITCASE_SECRET_SCAN_TOKEN\" | sha256sum | cut -d' ' -f1)\n"
        f'[ "$digest" = {hashlib.sha256(BUILD_SECRET.encode()).hexdigest()} ] || '
        "{ echo 'the build secret did not arrive intact' >&2; exit 1; }\n"
        'echo "the scan token is $SUITCASE_SECRET_SCAN_TOKEN"\n'
        f"usermod -p '{crypt_hash}' root\n"
        f"echo 'root_password=\"{ROOT_PASSWORD}\"'\n"
        f"echo 'root now has the hash {crypt_hash}'\n"
        "cp -p /run/suitcase-shadow /etc/shadow\n"
        "if [ -e /run/suitcase-shadow- ]; then cp -p /run/suitcase-shadow- /etc/shadow-; "
        "else rm -f /etc/shadow-; fi\n"
        "rm -f /run/suitcase-shadow /run/suitcase-shadow-\n"
    )
    script.chmod(0o755)
    return home


def plant(ws: Path, tmp_path: Path, timestamp: str) -> Planted:
    """Start the workspace's endpoint, make the bucket, and return the run's secrets and env."""
    crypt_hash = subprocess.run(
        ["openssl", "passwd", "-6", "-salt", "scan7f3a9c21", ROOT_PASSWORD],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    home = _home_with_a_root_password(tmp_path, crypt_hash)
    # the endpoint's key is the planted one: the run reaches it as an account with these
    (ws / "endpoint").mkdir(mode=0o700, exist_ok=True)
    fd = os.open(ws / "endpoint" / "key", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({"access_key_id": AWS_KEY_ID, "secret_access_key": AWS_SECRET}, out)
    suitcase("endpoint", "start", workspace=ws, env={"SUITCASE_AWS": "embedded"})
    url = endpoint_url(ws)
    s3, _ = clients(ws)
    s3.create_bucket(Bucket="suitcase-images")  # an account's bucket exists beforehand
    env = {
        "SUITCASE_HOME": str(home),
        "SUITCASE_AWS": "account",
        "AWS_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": AWS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
        "AWS_SESSION_TOKEN": AWS_TOKEN,
        "SUITCASE_SECRET_SCAN_TOKEN": BUILD_SECRET,
    }
    secrets = {
        "root password": ROOT_PASSWORD,
        "root password hash": crypt_hash,
        "hash digest": crypt_hash.rsplit("$", 1)[-1],
        "AWS secret key": AWS_SECRET,
        "AWS session token": AWS_TOKEN,
        "build secret (Packer sensitive variable)": BUILD_SECRET,
        "build secret, base64": base64.b64encode(BUILD_SECRET.encode()).decode(),
    }
    key = (ws / "keys" / f"{OS_NAME}-{timestamp}" / "id_ed25519").read_text()
    lines = [x for x in key.splitlines() if len(x) >= 20 and "PRIVATE KEY" not in x]
    assert lines
    secrets |= {f"build key line {n}": line for n, line in enumerate(lines)}
    return Planted(env, secrets)


def written_files(ws: Path) -> list[Path]:
    """Every file of the workspace but the disks (manifest outputs, their raw copies in the
    flat cache, object bodies) and the keys (the build key, the endpoint's key)."""
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
        # object bodies, and the endpoint's key (which is the planted one: it is where the
        # account's key lives, as the build key lives in keys/)
        if rel[0] in ("keys", "packer_cache") or rel[:2] in (
            ("endpoint", "data"),
            ("endpoint", "key"),
        ):
            continue
        if rel[:3] == ("images", ".verify", "flat"):  # a disk's raw copy: a disk, as above
            continue
        files.append(path)
    return files


def scan(ws: Path, printed: list[Path], planted: Planted) -> list[str]:
    """Where any planted secret appears: in a file of the workspace, or in what runs printed."""
    files = written_files(ws)
    names = {p.name for p in files}
    for expected in ("build.log", "console.log", "manifest.json", ".upload_done", "endpoint.log"):
        assert expected in names, f"{expected} was not written: the scan would prove nothing"
    assert any(p.parent.name == "reports" for p in files)
    found = []
    for path in [*files, *printed]:
        data = path.read_bytes()
        found += [
            f"{what} in {path}" for what, value in planted.secrets.items() if value.encode() in data
        ]
    return found
