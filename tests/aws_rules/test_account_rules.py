"""Which account Suitcase's calls reach (`aws_target`), and how often credentials are resolved.

The AWS rules relied on:

- STS GetCallerIdentity "returns details about the IAM user or role whose credentials are used
  to call the operation", the `Account` among them, and needs no permission
  (https://docs.aws.amazon.com/STS/latest/APIReference/API_GetCallerIdentity.html). So it
  says, before anything is uploaded, which account the credentials found would ship to.
- boto3 looks for credentials along a chain (environment, shared credentials file, the
  config file's profiles — `credential_process`, SSO, assume-role with MFA —, container and
  instance roles: https://boto3.amazonaws.com/v1/documentation/api/latest/guide/credentials.html)
  and a Session keeps what it found
  (https://boto3.amazonaws.com/v1/documentation/api/latest/guide/session.html): each new
  Session runs the chain again — another `credential_process` run, another MFA prompt.

Suitcase's answer: with `aws: auto`, credentials alone never choose AWS; the account is used
when site.yaml names it (`account:`) and GetCallerIdentity agrees, and any disagreement is a
one-line refusal. Each target has one Session, whatever the number of clients or threads.
"""

from __future__ import annotations

import dataclasses
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import pytest

from suitcase.aws.clients import AccountMismatch, AwsTarget, aws_target
from suitcase.context import Context
from tests.aws_rules.conftest import Aws
from tests.endpoint_support import embedded_workspace  # noqa: F401  (the `ws` fixture)

#: A credential_process that counts its runs (one line each) and answers with the twin's key.
PROCESS = """\
import json, sys
with open(sys.argv[1], "a") as runs:
    runs.write("ran\\n")
print(json.dumps({"Version": 1, "AccessKeyId": sys.argv[2], "SecretAccessKey": sys.argv[3]}))
"""


def _target(ws: Path) -> tuple[AwsTarget, list[str]]:
    said: list[str] = []
    return aws_target(Context.create(ws), said.append), said


def _twin_sts(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> str:
    """Send the account branch's STS call to the twin (never to AWS); the twin's account."""
    if aws.real or aws.url is None:
        pytest.skip("answers only the twin's STS can give without touching AWS")
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", aws.url)
    return str(aws.client("sts").get_caller_identity()["Account"])


def _stray_profile(
    aws: Aws, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str = "stray"
) -> Path:
    """AWS_PROFILE naming a `credential_process` profile (a developer's, say); its run log."""
    keys = aws.target.credentials
    access, secret = (keys.access_key_id, keys.secret_access_key) if keys else ("AKID", "x")
    script = tmp_path / "process.py"
    script.write_text(PROCESS)
    runs = tmp_path / "runs.log"
    config = tmp_path / "aws-config"
    config.write_text(
        f"[profile {name}]\n"
        f"credential_process = {sys.executable} {script} {runs} {access} {secret}\n"
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_PROFILE", name)
    return runs


def _runs(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


def test_get_caller_identity_names_the_account(aws: Aws) -> None:
    """GetCallerIdentity answers the 12-digit Account, UserId and Arn of the caller."""
    identity = aws.client("sts").get_caller_identity()
    assert len(identity["Account"]) == 12 and identity["Account"].isdigit()
    assert f":{identity['Account']}:" in identity["Arn"] and identity["UserId"]


def test_a_stray_profile_without_a_named_account_stays_embedded(
    aws: Aws, ws: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A profile found on the chain is no reason to ship to its account: nothing names it."""
    runs = _stray_profile(aws, tmp_path, monkeypatch)
    target, said = _target(ws)
    assert target.kind == "embedded"
    assert said[-1] == (
        f"using the embedded AWS endpoint at {target.endpoint_url} (aws: auto: credentials "
        "found (from custom-process) but site.yaml names no `account:`; set `account: <id>` "
        "or `aws: account` to use AWS)"
    )
    assert _runs(runs) == 1  # found once; never asked of STS, and never shown
    secret = aws.target.credentials.secret_access_key  # what the profile's process answers
    assert all(secret not in line for line in said)


def test_the_named_account_is_used_when_sts_agrees(
    aws: Aws, ws: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = _twin_sts(aws, monkeypatch)
    _stray_profile(aws, tmp_path, monkeypatch)
    (ws / "site.yaml").write_text(f"account: '{account}'\n")
    target, said = _target(ws)
    assert target == AwsTarget(kind="account", region="us-east-1")
    assert said == [
        "using the configured AWS account (AWS, us-east-1) "
        f"(aws: auto; credentials from custom-process; account {account})"
    ]


@pytest.mark.parametrize("mode", ["auto", "account"])
def test_another_account_is_refused_in_one_line(
    aws: Aws, ws: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    """Named account ≠ GetCallerIdentity's: refused, never uploaded to either (both named)."""
    account = _twin_sts(aws, monkeypatch)
    _stray_profile(aws, tmp_path, monkeypatch)
    other = "111122223333" if account != "111122223333" else "444455556666"
    (ws / "site.yaml").write_text(f"account: '{other}'\naws: {mode}\n")
    with pytest.raises(AccountMismatch) as refused:
        _target(ws)
    message = str(refused.value)
    assert "\n" not in message and message.startswith(f"aws: {mode}: the AWS credentials")
    assert f"for account {account}, but site.yaml names account {other}" in message
    assert not (ws / "endpoint").exists()


def test_one_credential_process_run_per_target(
    aws: Aws, ws: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The chain runs once for the target: its check, its clients, their threads, its regions."""
    account = _twin_sts(aws, monkeypatch)
    runs = _stray_profile(aws, tmp_path, monkeypatch)
    (ws / "site.yaml").write_text(f"account: '{account}'\n")
    target, _ = _target(ws)
    assert _runs(runs) == 1

    def identity(region: str) -> str:
        there = dataclasses.replace(target, region=region)
        return str(there.client("sts").get_caller_identity()["Account"])

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(identity, ["us-east-1", "eu-west-1"] * 4))
    assert answers == [account] * 8
    assert _runs(runs) == 1
    # boto3's own rule, for contrast: a new Session resolves the chain again
    boto3.session.Session().client("sts", region_name="us-east-1")
    assert _runs(runs) == 2


def test_an_embedded_target_has_one_session(aws: Aws) -> None:
    if aws.real:
        pytest.skip("the twin's target")
    made = aws.target
    target = AwsTarget(made.kind, made.region, made.endpoint_url, made.credentials)
    assert target.sessions.session is None  # a new target: no Session until a client
    first, second = target.client("s3"), target.client("ec2")
    assert first.meta.region_name == second.meta.region_name == "us-east-1"
    assert target.sessions.session is not None and target.sessions is not made.sessions
    assert first.list_buckets()["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert dataclasses.replace(target, region="eu-west-1").sessions is target.sessions


def test_a_named_account_without_credentials_is_refused_not_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """site.yaml names an account but no credentials are found: one line, no endpoint started
    (the embedded endpoint would make `suitcase all` succeed while shipping nowhere)."""
    from click.testing import CliRunner

    from suitcase.cli import cli
    from tests.endpoint_support import clean_aws_env

    clean_aws_env(monkeypatch, tmp_path / "home")
    ws = tmp_path / "ws"
    ws.mkdir()
    monkeypatch.chdir(ws)
    (ws / "site.yaml").write_text("account: '111122223333'\n")
    result = CliRunner().invoke(cli, ["upload", "master", "--os", "Debian-12-x86_64"])
    assert result.exit_code != 0
    lines = [x for x in result.output.splitlines() if x.startswith("suitcase: error")]
    assert len(lines) == 1 and "names account 111122223333, but no AWS credentials" in lines[0]
    assert not (ws / "endpoint").exists()
