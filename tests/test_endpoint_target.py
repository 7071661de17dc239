"""Where AWS calls go (`aws_target`): the rule, its forcing, and the one-line AWS errors.

"Real AWS" is never reached: where the account branch makes its one call (STS
GetCallerIdentity), AWS_ENDPOINT_URL or AWS_ENDPOINT_URL_STS send it to a second embedded
endpoint process, which for the credential tests enforces IAM authentication as AWS does.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import pytest
from click.testing import CliRunner

from suitcase.aws.clients import AccountMismatch, AwsTarget, aws_target, credential_source
from suitcase.aws.endpoint import EmbeddedEndpoint
from suitcase.aws.errors import CredentialsRejected, UnknownRegion
from suitcase.aws.presence import check_bucket
from suitcase.cli import cli
from suitcase.context import Context
from suitcase.errors import ConfigError, SuitcaseError
from tests.endpoint_support import (
    embedded_workspace,  # noqa: F401  (the `ws` fixture)
    endpoint_pids,
    launch,
)

Other = Callable[..., str]


@pytest.fixture
def other(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Other]:
    """Start a moto server (standing in for AWS, which takes any key: not the workspace's
    endpoint, which takes only its own) in its own folder; returns its URL."""
    with contextlib.ExitStack() as started:
        count = iter(range(100))

        def start(auth_free_actions: int | None = None) -> str:
            with monkeypatch.context() as env:
                if auth_free_actions is not None:  # moto then checks every signature and policy
                    env.setenv("INITIAL_NO_AUTH_ACTION_COUNT", str(auth_free_actions))
                folder = tmp_path / f"other{next(count)}"
                server = started.enter_context(launch("fixes", folder))
            return server.url

        yield start


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One moto server standing in for AWS (no authentication) for the whole module: its URL."""
    with launch("fixes", tmp_path_factory.mktemp("stand-in")) as server:
        yield server.url


def target_for(ws: Path) -> tuple[AwsTarget, list[str]]:
    said: list[str] = []
    return aws_target(Context.create(ws), said.append), said


def test_nothing_configured_means_embedded(ws: Path) -> None:
    assert credential_source() is None
    target, said = target_for(ws)
    assert target.kind == "embedded" and said[-1].startswith("using the embedded AWS endpoint at")


def test_endpoint_url_means_that_endpoint(
    ws: Path, stand_in: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = stand_in
    monkeypatch.setenv("AWS_ENDPOINT_URL", url)
    with pytest.raises(CredentialsRejected, match=r"^verifying the AWS account: no AWS cred"):
        target_for(ws)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-a-secret")
    target, said = target_for(ws)
    assert target == AwsTarget(kind="account", region="us-east-1", endpoint_url=url)
    assert said == [
        f"using the configured AWS account ({url}, us-east-1) "
        "(aws: auto; AWS_ENDPOINT_URL is set; credentials from env; account 123456789012)"
    ]
    assert not (ws / "endpoint").exists() and not endpoint_pids(ws)
    # an explicit endpoint whose STS names another account than site.yaml: refused too
    (ws / "site.yaml").write_text("account: '111122223333'\n")
    with pytest.raises(AccountMismatch, match=r"^aws: auto: .* account 123456789012, but site"):
        target_for(ws)


def _configure(where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if where == "env":
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-a-secret")
    else:
        aws_dir = tmp_path / "home" / ".aws"
        aws_dir.mkdir()
        (aws_dir / "credentials").write_text(
            "[default]\naws_access_key_id = AKIDEXAMPLE\naws_secret_access_key = not-a-secret\n"
        )
    assert credential_source() == where


@pytest.mark.parametrize("where", ["env", "shared-credentials-file"])
def test_credentials_alone_mean_the_embedded_endpoint(
    ws: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    _configure(where, tmp_path, monkeypatch)
    target, said = target_for(ws)
    assert target.kind == "embedded"
    assert said[-1] == (
        f"using the embedded AWS endpoint at {target.endpoint_url} (aws: auto: credentials found "
        f"(from {where}) but site.yaml names no `account:`; set `account: <id>` or "
        "`aws: account` to use AWS)"
    )


@pytest.mark.parametrize("where", ["env", "shared-credentials-file"])
def test_the_named_account_means_the_account(
    ws: Path, tmp_path: Path, stand_in: str, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    _configure(where, tmp_path, monkeypatch)
    (ws / "site.yaml").write_text("account: '123456789012'\n")  # the stand-in's account
    # the account's one check goes to a local endpoint, never to AWS
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", stand_in)
    target, said = target_for(ws)
    assert target == AwsTarget(kind="account", region="us-east-1", endpoint_url=None)
    assert said == [
        "using the configured AWS account (AWS, us-east-1) "
        f"(aws: auto; credentials from {where}; account 123456789012)"
    ]
    assert not endpoint_pids(ws)


@pytest.mark.parametrize("mode", ["auto", "account"])
def test_another_account_is_refused_in_one_line(
    ws: Path, stand_in: str, monkeypatch: pytest.MonkeyPatch, runner: CliRunner, mode: str
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-a-secret")
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", stand_in)
    (ws / "site.yaml").write_text(f"account: '111122223333'\naws: {mode}\n")
    result = runner.invoke(cli, ["--workspace", str(ws), "upload", "master"])
    assert result.exit_code == 2, result.output
    assert result.output.splitlines() == [
        f"suitcase: error: aws: {mode}: the AWS credentials (from env) are for account "
        "123456789012, but site.yaml names account 111122223333; refusing to use either — "
        "fix `account:` (or SUITCASE_ACCOUNT) or the credentials (AWS_PROFILE)"
    ]
    assert "not-a-secret" not in result.output and "AKIDEXAMPLE" not in result.output
    assert not (ws / "endpoint").exists()


@pytest.mark.parametrize("force", ["site", "env"])
def test_embedded_can_be_forced(
    ws: Path, stand_in: str, monkeypatch: pytest.MonkeyPatch, force: str
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", stand_in)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-a-secret")
    if force == "site":
        (ws / "site.yaml").write_text("aws: embedded\n")
    else:
        monkeypatch.setenv("SUITCASE_AWS", "embedded")
    target, said = target_for(ws)
    assert target.kind == "embedded" and target.endpoint_url != stand_in
    assert said[-1] == f"using the embedded AWS endpoint at {target.endpoint_url} (aws: embedded)"
    # the account's credentials never go to the embedded endpoint, nor into its process
    key = EmbeddedEndpoint(ws).credentials()
    assert key is not None and key.access_key_id.startswith("SCK")
    assert target.client("s3")._request_signer._credentials.access_key == key.access_key_id
    pid = EmbeddedEndpoint(ws).pid_file.read_text().strip()
    assert b"not-a-secret" not in Path(f"/proc/{pid}/environ").read_bytes()


def test_account_forced_without_credentials_is_one_line(
    ws: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUITCASE_AWS", "account")
    with pytest.raises(CredentialsRejected, match=r"^aws: account is set, but no AWS credentials"):
        target_for(ws)
    assert not (ws / "endpoint").exists()


def test_unknown_mode_and_region_are_bad_input(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (ws / "site.yaml").write_text("aws: cloud\n")
    result = CliRunner().invoke(cli, ["--workspace", str(ws), "endpoint", "status"])
    assert result.exit_code == 2
    assert result.output.splitlines() == [
        f"suitcase: error: {ws / 'site.yaml'}: key 'aws' must be "
        "'auto', 'embedded' or 'account' (got 'cloud')"
    ]
    (ws / "site.yaml").write_text("region: us-east-9\n")
    with pytest.raises(UnknownRegion, match=r"region 'us-east-9' is not an AWS region") as bad:
        target_for(ws)
    assert isinstance(bad.value, ConfigError) and re.search(
        r"did you mean [^)]*us-east-1", str(bad.value)
    )
    assert not (ws / "endpoint").exists()
    monkeypatch.setenv("SUITCASE_REGION", "eu-west-1")
    target, _ = target_for(ws)
    assert target.region == "eu-west-1"


def test_rejected_credentials_are_one_line(
    ws: Path, other: Other, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", other(auth_free_actions=0))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDNOTKNOWNHERE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-a-secret")
    with pytest.raises(CredentialsRejected) as rejected:
        target_for(ws)
    message = str(rejected.value)
    assert "rejected the credentials (InvalidClientTokenId)" in message and "\n" not in message
    assert "not-a-secret" not in message


@pytest.mark.slow
def test_someone_elses_bucket_is_one_line(
    ws: Path, other: Other, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = other(auth_free_actions=3)
    owner = {"endpoint_url": url, "region_name": "us-east-1"}
    keys = {"aws_access_key_id": "suitcase", "aws_secret_access_key": "suitcase"}
    boto3.client("s3", **owner, **keys).create_bucket(Bucket="theirs")  # free action 1
    iam = boto3.client("iam", **owner, **keys)
    iam.create_user(UserName="me")  # 2
    key = iam.create_access_key(UserName="me")["AccessKey"]  # 3: from here on, auth as AWS
    monkeypatch.setenv("AWS_ENDPOINT_URL", url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    target = AwsTarget(kind="account", region="us-east-1", endpoint_url=url)
    # moto makes the IAM user in the bucket owner's own account: S3's 403 is then this
    # account's policy (the user has none), which ListBuckets tells apart from another's bucket
    with pytest.raises(SuitcaseError) as bad:
        check_bucket(target, "theirs")
    message = str(bad.value)
    assert "\n" not in message and "HeadBucket: 403" in message
    assert message.startswith("access to bucket theirs is denied") or "is this account's" in message


def test_check_bucket_on_the_embedded_endpoint(ws: Path) -> None:
    target, _ = target_for(ws)
    assert check_bucket(target, "suitcase-images") is False
    target.client("s3").create_bucket(Bucket="suitcase-images")
    assert check_bucket(target, "suitcase-images") is True


def test_unknown_profile_is_bad_input(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_PROFILE", "no-such-profile")
    with pytest.raises(ConfigError, match=r"^AWS profile: .*no-such-profile") as bad:
        target_for(ws)
    assert "\n" not in str(bad.value) and not (ws / "endpoint").exists()
    # forced to the embedded endpoint, the operator's profile does not matter
    monkeypatch.setenv("SUITCASE_AWS", "embedded")
    target, _ = target_for(ws)
    assert target.client("s3").list_buckets()["Buckets"] == []
