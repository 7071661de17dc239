"""Test support for AMI registration: the fixed moto server over HTTP (`endpoint`, `aws_env`) and
request recording. Fake stage folders are tests/fakes.py's."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from suitcase.aws.clients import AwsTarget
from tests.endpoint_support import REGION, Launched, launch


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Launched]:
    """`python -m suitcase.aws.moto_fixes` (the fixes alone: any key, reset per test)."""
    with launch("fixes", tmp_path_factory.mktemp("moto")) as server:
        yield server


@pytest.fixture
def aws_env(endpoint: Launched, monkeypatch: pytest.MonkeyPatch) -> Launched:
    """A reset endpoint, named by AWS_ENDPOINT_URL, with dummy credentials."""
    endpoint.reset()
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return endpoint


@dataclass(frozen=True)
class RecordingTarget(AwsTarget):
    """An AwsTarget whose clients record every API call (operation, parameters) they make."""

    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list, compare=False)

    def client(self, service: str, **config: Any) -> Any:
        made = super().client(service, **config)

        def record(params: dict[str, Any], model: Any, **kwargs: Any) -> None:
            kept = {k: v for k, v in params.items() if k != "BlockData"}
            self.calls.append((model.name, kept))

        made.meta.events.register("provide-client-params", record)
        return made

    def named(self, operation: str) -> list[dict[str, Any]]:
        return [params for name, params in self.calls if name == operation]


def target_for(url: str, region: str = REGION) -> RecordingTarget:
    return RecordingTarget(kind="account", region=region, endpoint_url=url)
