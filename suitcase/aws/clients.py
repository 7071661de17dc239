"""One place that builds boto3 clients for a build set: a real account, or the embedded endpoint.

>>> target = AwsTarget(kind="embedded", region="us-east-1", endpoint_url="http://127.0.0.1:5000")
>>> target.describe()
'the embedded AWS endpoint at http://127.0.0.1:5000'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

#: Every call gets these: a stalled connection can never hang a verb, and retries are bounded
#: (SDK retries stacked under our own made one request try dozens of times: coldsnap #437).
CONNECT_TIMEOUT = 10
READ_TIMEOUT = 60
MAX_ATTEMPTS = 5

#: moto accepts any credentials; these never reach a real account.
EMBEDDED_CREDENTIALS = {"aws_access_key_id": "suitcase", "aws_secret_access_key": "suitcase"}


@dataclass(frozen=True)
class AwsTarget:
    """Where AWS calls go: `embedded` (Suitcase's moto endpoint) or `account` (AWS, or
    AWS_ENDPOINT_URL). `endpoint_url` None means AWS's own endpoints."""

    kind: Literal["embedded", "account"]
    region: str
    endpoint_url: str | None = None

    def describe(self) -> str:
        if self.kind == "embedded":
            return f"the embedded AWS endpoint at {self.endpoint_url}"
        where = self.endpoint_url or "AWS"
        return f"the configured AWS account ({where}, {self.region})"

    def client(self, service: str, **config: Any) -> Any:
        """A boto3 client with timeouts and bounded, adaptive retries (overridable by `config`)."""
        import boto3
        from botocore.config import Config

        settings: dict[str, Any] = {
            "connect_timeout": CONNECT_TIMEOUT,
            "read_timeout": READ_TIMEOUT,
            "retries": {"max_attempts": MAX_ATTEMPTS, "mode": "adaptive"},
        }
        settings.update(config)
        kwargs: dict[str, Any] = {"region_name": self.region, "config": Config(**settings)}
        if self.endpoint_url:
            kwargs["endpoint_url"] = self.endpoint_url
        if self.kind == "embedded":
            session = boto3.session.Session(**EMBEDDED_CREDENTIALS)
        else:
            session = boto3.session.Session()
        return session.client(service, **kwargs)


def aws_target_from_env(region: str) -> AwsTarget | None:
    """`AWS_ENDPOINT_URL` set: that endpoint, as a configured account (boto3's credential chain).

    The full rule (account configured → AWS; otherwise the embedded endpoint; site `aws:` and
    SUITCASE_AWS force one) lives in `aws_target`, which builds on this.
    """
    import os

    url = os.environ.get("AWS_ENDPOINT_URL")
    return AwsTarget(kind="account", region=region, endpoint_url=url) if url else None
