"""AWS failures as one line an operator can act on: rejected credentials, an unknown region,
somebody else's bucket, an endpoint that cannot start, state the endpoint lost.

Wrap every AWS call a verb makes in `aws_errors("uploading X", target)`:

    with aws_errors(f"reading s3://{bucket}/{key}", target):
        s3.head_object(Bucket=bucket, Key=key)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from suitcase.errors import ConfigError, SuitcaseError

if TYPE_CHECKING:
    from suitcase.aws.clients import AwsTarget


class AwsError(SuitcaseError):
    """An AWS call failed in a way the operator must fix (or retry)."""


class CredentialsRejected(AwsError):
    """Credentials were found but AWS refuses them (unknown key, bad secret, expired token)."""


class UnknownRegion(ConfigError):
    """The site's region is not one botocore knows (a typo, or a botocore older than it)."""


class BucketNotOwned(AwsError):
    """The bucket exists but belongs to another account (HeadBucket answers 403)."""


class EndpointError(AwsError):
    """The embedded endpoint could not start, answer or save its state."""


class LostState(AwsError):
    """A manifest or cookie names an object, snapshot or AMI that is no longer there."""


#: Error codes AWS services use for "these credentials are not valid", across services.
CREDENTIAL_CODES = frozenset(
    {
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidAccessKeyId",
        "InvalidToken",
        "AuthFailure",
        "UnrecognizedClientException",
        "IncompleteSignature",
    }
)


#: What to do about an error code, where the code alone says it.
HINTS = {
    "AccessDenied": "the account's IAM or bucket policy does not allow it: grant that action",
    "AccessDeniedException": "the account's IAM policy does not allow it: grant that action",
    "UnauthorizedOperation": "the account's IAM policy does not allow it: grant that action",
    "InvalidAMIName.Duplicate": "another AMI has that name: deregister it or change `prefix`",
    "RequestLimitExceeded": "AWS is throttling this account: run again in a few minutes",
    "InvalidBlockDeviceMapping": "the disk does not fit the volume asked for: rebuild the stage",
}


def error_code(exc: Any) -> str:
    """The AWS error code of a botocore ClientError ('' for anything else)."""
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def explain(exc: Exception, doing: str, target: AwsTarget | None = None) -> AwsError:
    """A botocore failure as one AwsError line: what failed, where, and what to do."""
    from botocore.exceptions import (
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        ReadTimeoutError,
    )
    from botocore.parsers import ResponseParserError

    where = target.describe() if target else "AWS"
    code = error_code(exc)
    if isinstance(exc, ClientError) and code in CREDENTIAL_CODES:
        return CredentialsRejected(
            f"{doing}: {where} rejected the credentials ({code}); check AWS_ACCESS_KEY_ID/"
            "AWS_PROFILE, or set `aws: embedded` in site.yaml to use the embedded endpoint"
        )
    if isinstance(exc, ClientError):
        message = exc.response.get("Error", {}).get("Message", "") or str(exc)
        hint = HINTS.get(code, "")
        operation = getattr(exc, "operation_name", "") or "a call"
        return AwsError(
            f"{doing}: {where} answered {code or 'an error'} to {operation}: {message}"
            + (f"; {hint}" if hint else "")
        )
    if isinstance(exc, NoCredentialsError):
        return CredentialsRejected(
            f"{doing}: no AWS credentials found for {where}; configure an account or set "
            "`aws: embedded` in site.yaml"
        )
    if isinstance(exc, EndpointConnectionError | ReadTimeoutError):
        hint = (
            "; run `suitcase endpoint status`"
            if target is not None and target.kind == "embedded"
            else ""
        )
        return AwsError(f"{doing}: cannot reach {where} ({exc}){hint}")
    if isinstance(exc, ResponseParserError):  # its message quotes the whole reply: not shown
        if target is not None and target.kind == "account" and target.endpoint_url:
            return AwsError(
                f"{doing}: AWS_ENDPOINT_URL answers, but not as AWS does ({target.endpoint_url} "
                "replied with no S3/STS response); point it at an S3/STS endpoint, or unset it"
            )
        return AwsError(f"{doing}: {where} answered with something that is no AWS response")
    return AwsError(f"{doing}: {type(exc).__name__}: {exc}")


@contextmanager
def aws_errors(doing: str, target: AwsTarget | None = None) -> Iterator[None]:
    """Turn botocore's exceptions raised inside the block into one-line AwsErrors."""
    from botocore.exceptions import BotoCoreError, ClientError
    from botocore.parsers import ResponseParserError  # a plain Exception, no BotoCoreError

    try:
        yield
    except (ClientError, BotoCoreError, ResponseParserError) as exc:
        raise explain(exc, doing, target) from None
