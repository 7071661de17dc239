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

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from suitcase.aws.clients import AwsTarget
from tests.endpoint_support import REGION, Launched, launch


@dataclass
class Aws:
    """Where a rule is checked: the twin, or (with --aws-account) a real account."""

    target: AwsTarget
    real: bool
    launched: Launched | None = None

    @property
    def url(self) -> str | None:
        return self.launched.url if self.launched else None

    @property
    def key(self) -> str | None:
        return self.launched.access_key_id if self.launched else None

    def client(self, service: str, **config: Any) -> Any:
        return self.target.client(service, **config)

    def twin(self, **settings: Any) -> dict[str, Any]:
        """Set the twin's switches (POST /_suitcase/twin); skips the test against an account."""
        if self.real or self.launched is None:
            pytest.skip("this switch exists only on the twin")
        return self.launched.twin(**settings)


@pytest.fixture(scope="module")
def aws(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Aws]:
    """The twin (a real embedded endpoint in a private workspace), or the account."""
    if request.config.getoption("--aws-account"):
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or REGION
        yield Aws(AwsTarget(kind="account", region=region), real=True)
        return
    with launch("twin", tmp_path_factory.mktemp("twin")) as twin:
        yield Aws(twin.target(), real=False, launched=twin)


@pytest.fixture(autouse=True)
def _twin_defaults(aws: Aws) -> Iterator[None]:
    """Every test starts from the twin's defaults, whatever the one before switched."""
    yield
    if not aws.real:
        aws.twin(reset=True)


@pytest.fixture(scope="module")
def stock(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AwsTarget]:
    """Stock moto (`moto_server`, none of Suitcase's fixes): to show a rule is the twin's."""
    with launch("stock", tmp_path_factory.mktemp("stock")) as server:
        # kind "embedded" without the workspace's key: fixed dummy keys, no profile of the host
        yield server.target()
