"""The AWS conformance suite: one test per AWS rule Suitcase relies on (docs/aws-twin.md).

Each test names the AWS documentation it follows and runs against the **twin** — the embedded
endpoint Suitcase ships (`suitcase.aws.endpoint_server`, moto with Suitcase's fixes), started
for real in a private workspace. With `--aws-account` (opt-in, never in CI) the same tests run
against the AWS account boto3's credential chain finds, so anyone with an account can check the
twin against AWS:

    pytest tests/aws_rules --aws-account      # AWS_PROFILE / AWS_REGION select the account

A test that needs a switch only the twin has (`Aws.twin(...)`) is skipped against an account.
A test that shows stock moto lacks the rule uses the `stock` fixture (moto_server, no fixes).
"""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from suitcase.aws.clients import AwsTarget
from suitcase.aws.endpoint import EmbeddedEndpoint
from suitcase.aws.endpoint_server import KEY_HEADER
from tests.aws_proxy import moto_server
from tests.endpoint_support import kill_leftovers

REGION = "us-east-1"


@dataclass
class Aws:
    """Where a rule is checked: the twin, or (with --aws-account) a real account."""

    target: AwsTarget
    real: bool
    url: str | None = None
    key: str | None = None

    def client(self, service: str, **config: Any) -> Any:
        return self.target.client(service, **config)

    def twin(self, **settings: Any) -> dict[str, Any]:
        """Set the twin's switches (POST /_suitcase/twin); skips the test against an account."""
        if self.real or self.url is None or self.key is None:
            pytest.skip("this switch exists only on the twin")
        request = urllib.request.Request(
            f"{self.url}/_suitcase/twin",
            data=json.dumps(settings).encode(),
            method="POST",
            headers={KEY_HEADER[5:].replace("_", "-"): self.key},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            data: dict[str, Any] = json.loads(answer.read())
        return data


@pytest.fixture(scope="module")
def aws(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Aws]:
    """The twin (a real embedded endpoint in a private workspace), or the account."""
    if request.config.getoption("--aws-account"):
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or REGION
        yield Aws(AwsTarget(kind="account", region=region), real=True)
        return
    root = tmp_path_factory.mktemp("twin")
    endpoint = EmbeddedEndpoint(root)
    running, _ = endpoint.ensure(lambda _line: None, idle=0)
    credentials = endpoint.credentials()
    assert credentials is not None
    target = AwsTarget(
        kind="embedded", region=REGION, endpoint_url=running.url, credentials=credentials
    )
    try:
        yield Aws(target, real=False, url=running.url, key=credentials.access_key_id)
    finally:
        endpoint.stop(timeout=60)
        assert not kill_leftovers(root), "the twin was left running"


@pytest.fixture(autouse=True)
def _twin_defaults(aws: Aws) -> Iterator[None]:
    """Every test starts from the twin's defaults, whatever the one before switched."""
    yield
    if not aws.real:
        aws.twin(reset=True)


@pytest.fixture(scope="module")
def stock(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AwsTarget]:
    """Stock moto (`moto_server`, none of Suitcase's fixes): to show a rule is the twin's."""
    with moto_server(tmp_path_factory.mktemp("stock") / "moto.log") as url:
        # kind "embedded" without the workspace's key: fixed dummy keys, no profile of the host
        yield AwsTarget(kind="embedded", region=REGION, endpoint_url=url)
