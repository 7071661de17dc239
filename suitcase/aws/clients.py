"""One place that builds boto3 clients for a build set: a real account, or the embedded endpoint.

>>> target = AwsTarget(kind="embedded", region="us-east-1", endpoint_url="http://127.0.0.1:5000")
>>> target.describe()
'the embedded AWS endpoint at http://127.0.0.1:5000'
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from suitcase.aws.errors import AwsError, CredentialsRejected, UnknownRegion, explain
from suitcase.errors import ConfigError

if TYPE_CHECKING:
    from suitcase.context import Context

#: Every call gets these: a stalled connection can never hang a verb, and retries are bounded
#: (SDK retries stacked under our own made one request try dozens of times: coldsnap #437).
CONNECT_TIMEOUT = 10
READ_TIMEOUT = 60
MAX_ATTEMPTS = 5

#: For an embedded target made without the workspace's key (a bare moto server in tests); the
#: workspace's endpoint refuses them.
EMBEDDED_CREDENTIALS = {"aws_access_key_id": "suitcase", "aws_secret_access_key": "suitcase"}


class AccountMismatch(ConfigError):
    """The credentials found are for another account than the one site.yaml names."""


class SessionCache:
    """A target's one boto3 Session, made on first use and shared by its clients' threads.

    boto3 resolves credentials once per Session: one Session per target means one MFA prompt,
    one `credential_process` run, one SSO token read, however many clients the verb makes.
    boto3 Sessions are not thread-safe, so clients are made under the lock.
    """

    def __init__(self, session: Any = None) -> None:
        self.lock = threading.Lock()
        self.session = session


@dataclass(frozen=True)
class AwsTarget:
    """Where AWS calls go: `embedded` (Suitcase's moto endpoint) or `account` (AWS, or
    AWS_ENDPOINT_URL). `endpoint_url` None means AWS's own endpoints."""

    kind: Literal["embedded", "account"]
    region: str
    endpoint_url: str | None = None
    #: the embedded endpoint's key (suitcase.aws.endpoint.Credentials); never shown
    credentials: Any = field(default=None, repr=False, compare=False)
    #: the one Session (dataclasses.replace, e.g. for another region, keeps sharing it)
    sessions: SessionCache = field(default_factory=SessionCache, repr=False, compare=False)

    def describe(self) -> str:
        if self.kind == "embedded":
            return f"the embedded AWS endpoint at {self.endpoint_url}"
        where = self.endpoint_url or "AWS"
        return f"the configured AWS account ({where}, {self.region})"

    def client(self, service: str, **config: Any) -> Any:
        """A boto3 client with timeouts and bounded, adaptive retries (overridable by `config`),
        from the target's one Session."""
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
        with self.sessions.lock:
            if self.sessions.session is None:
                self.sessions.session = self._session()
            return self.sessions.session.client(service, **kwargs)

    def _session(self) -> Any:
        """The embedded endpoint's isolated session, or boto3's default credential chain."""
        import boto3

        if self.kind == "account":
            return boto3.session.Session()
        # nothing of the operator's AWS set-up applies here: not even AWS_PROFILE
        import botocore.session

        isolated = botocore.session.Session(session_vars={"profile": (None, None, None, None)})
        keys = dict(EMBEDDED_CREDENTIALS)
        if self.credentials is not None:
            keys = {
                "aws_access_key_id": self.credentials.access_key_id,
                "aws_secret_access_key": self.credentials.secret_access_key,
            }
        return boto3.session.Session(**keys, botocore_session=isolated)


def aws_target_from_env(region: str) -> AwsTarget | None:
    """`AWS_ENDPOINT_URL` set: that endpoint, as a configured account (boto3's credential chain).

    The full rule (account configured → AWS; otherwise the embedded endpoint; site `aws:` and
    SUITCASE_AWS force one) lives in `aws_target`, which builds on this.
    """
    url = os.environ.get("AWS_ENDPOINT_URL")
    if not url:
        return None
    return AwsTarget(kind="account", region=region, endpoint_url=check_endpoint_url(url))


def check_endpoint_url(url: str, name: str = "AWS_ENDPOINT_URL") -> str:
    """The URL, if botocore can send requests to it; else one line saying the form it must have.

    >>> check_endpoint_url("http://127.0.0.1:5000")
    'http://127.0.0.1:5000'
    """
    from botocore.utils import is_valid_endpoint_url, is_valid_ipv6_endpoint_url

    try:
        parts = urllib.parse.urlsplit(url)
        _ = parts.port  # a port that is no number from 0 to 65535 raises here
        valid = parts.scheme in ("http", "https") and bool(
            is_valid_endpoint_url(url) or is_valid_ipv6_endpoint_url(url)
        )
    except ValueError:  # urlsplit's answer for a broken [IPv6] host, or a bad port
        valid = False
    if not valid:
        # botocore would say `ValueError: Invalid endpoint` from deep inside client creation
        raise ConfigError(f"{name} {url[:200]!r} is not a URL: it must be http(s)://host[:port]")
    return url


MODES = ("auto", "embedded", "account")

#: An instance role is looked up over the network (the instance metadata service): only where
#: the machine says it is an EC2 instance, and then with a short timeout, so nothing waits here.
METADATA_TIMEOUT = 1
EC2_MARKERS = (
    (Path("/sys/devices/virtual/dmi/id/sys_vendor"), "Amazon EC2"),
    (Path("/sys/devices/virtual/dmi/id/board_asset_tag"), "i-"),
    (Path("/sys/hypervisor/uuid"), "ec2"),
)


def aws_target(ctx: Context, say: Callable[[str], None]) -> AwsTarget:
    """Where this verb's AWS calls go, said in one line on `say` (stderr), starting the
    endpoint if needed.

    `aws: account` (site.yaml, or SUITCASE_AWS): AWS_ENDPOINT_URL if set, else AWS with boto3's
    credential chain. `aws: embedded`: the workspace's embedded endpoint. `aws: auto` (the
    default): AWS_ENDPOINT_URL if set (an explicit endpoint); AWS only when site.yaml names the
    `account:` and STS GetCallerIdentity says the credentials are for it; otherwise the
    embedded endpoint — a stray AWS_PROFILE or `credential_process` never ships anywhere.
    Wherever `account:` is named and the credentials are for another account: a refusal.
    """
    mode = ctx.site.aws
    if mode not in MODES:
        raise ConfigError(f"aws '{mode}' is not one of {', '.join(MODES)}")
    region = check_region(ctx.site.region)
    named = ctx.site.account
    if mode == "embedded":
        return _embedded(ctx, region, say, "aws: embedded")
    target = aws_target_from_env(region)
    session, source = account_session(full=mode == "account")
    if target is not None:
        # an explicit endpoint (a CI's stand-in, a proxy): chosen by whoever set it, as before
        target = dataclasses.replace(target, sessions=SessionCache(session))
        account = check_credentials(target)
        _check_account(mode, named, account, source)
        say(
            f"using {target.describe()} (aws: {mode}; AWS_ENDPOINT_URL is set; "
            f"credentials from {source or 'nowhere'}{_as_account(account)})"
        )
        return target
    if source is None:
        if mode == "account":
            raise CredentialsRejected(
                "aws: account is set, but no AWS credentials were found (environment, "
                "~/.aws/credentials, ~/.aws/config, instance role); configure them, or set "
                "`aws: embedded`"
            )
        if named:
            # naming an account says AWS was meant: the embedded endpoint would let `suitcase
            # all` "succeed" while shipping nowhere (the same reason a mismatch is refused)
            raise CredentialsRejected(
                f"aws: auto: site.yaml names account {named}, but no AWS credentials were found "
                "(environment, ~/.aws, instance role); configure them, or empty `account:` to "
                "use the embedded endpoint"
            )
        return _embedded(ctx, region, say, "aws: auto, no AWS account configured")
    if mode == "auto" and not named:
        # credentials alone prove nothing about intent (a stray AWS_PROFILE, a developer's
        # credential_process): shipping there is the accident this rule exists to prevent
        return _embedded(
            ctx,
            region,
            say,
            f"aws: auto: credentials found (from {source}) but site.yaml names no `account:`; "
            "set `account: <id>` or `aws: account` to use AWS",
        )
    target = AwsTarget(kind="account", region=region, sessions=SessionCache(session))
    account = check_credentials(target)
    _check_account(mode, named, account, source)
    say(f"using {target.describe()} (aws: {mode}; credentials from {source}{_as_account(account)})")
    return target


def _as_account(account: str | None) -> str:
    return f"; account {account}" if account else ""


def _check_account(mode: str, named: str, account: str | None, source: str | None) -> None:
    """Refuse, in one line, credentials for another account than the one site.yaml names.

    A refusal rather than the embedded endpoint: naming an account says AWS was meant, so a
    fallback would turn `suitcase all` into a run that "ships" nowhere and says it succeeded;
    and using the account the credentials are for would ship to the wrong one. Either way the
    operator must change something, and this line says what.
    """
    # no answer (an AWS_ENDPOINT_URL that serves no STS; AWS itself always answers or fails)
    if not named or account is None or account == named:
        return
    raise AccountMismatch(
        f"aws: {mode}: the AWS credentials (from {source or 'nowhere'}) are for account "
        f"{account}, but site.yaml names account {named}; refusing to use either — fix "
        "`account:` (or SUITCASE_ACCOUNT) or the credentials (AWS_PROFILE)"
    )


def _embedded(ctx: Context, region: str, say: Callable[[str], None], why: str) -> AwsTarget:
    """The workspace's embedded endpoint, started if needed, and one line saying why."""
    from suitcase.aws.endpoint import EmbeddedEndpoint

    endpoint = EmbeddedEndpoint(ctx.workspace.root)
    running, started = endpoint.ensure(say)
    endpoint.hold()  # for this process's life: an idle endpoint nobody holds stops
    if started:
        endpoint.started_by_this_run()  # and is stopped when this process ends
        say(f"started the embedded AWS endpoint (pid {running.pid}; {running.restored})")
    say(f"using the embedded AWS endpoint at {running.url} ({why})")
    return AwsTarget(
        kind="embedded",
        region=region,
        endpoint_url=running.url,
        credentials=endpoint.credentials(),
    )


def known_regions() -> set[str]:
    """Every region botocore's partition data lists, in every partition (no session, no profile)."""
    import botocore.loaders

    endpoints = botocore.loaders.create_loader().load_data("endpoints")
    return {region for partition in endpoints["partitions"] for region in partition["regions"]}


def check_region(region: str) -> str:
    """The region, if botocore knows it; else one line with the nearest names."""
    known = known_regions()
    if region in known:
        return region
    import botocore

    near = difflib.get_close_matches(region, sorted(known), n=3)
    hint = f" (did you mean {', '.join(near)}?)" if near else ""
    raise UnknownRegion(
        f"region '{region}' is not an AWS region botocore {botocore.__version__} knows{hint}; "
        "fix `region` in site.yaml (or SUITCASE_REGION)"
    )


def on_ec2() -> bool:
    """Does this machine say it is an EC2 instance (DMI/hypervisor data, no network)?"""
    if os.environ.get("AWS_EC2_METADATA_DISABLED", "").lower() == "true":
        return False
    for path, marker in EC2_MARKERS:
        try:
            if path.read_text().strip().lower().startswith(marker.lower()):
                return True
        except OSError:
            continue
    return False


def credential_source(full: bool = False) -> str | None:
    """Which link of boto3's credential chain has credentials (botocore's method name), or None.

    Nothing here calls AWS. The instance-role link needs the metadata service: it runs only on a
    machine that says it is EC2, or with `full` (aws: account), and with a 1 s timeout.
    """
    return account_session(full)[1]


def account_session(full: bool = False) -> tuple[Any, str | None]:
    """A boto3 Session on boto3's default credential chain, its credentials resolved once, and
    which link gave them (None: no link did); see `credential_source`.

    The Session is the one an `account` target then uses, so a `credential_process` or an MFA
    prompt runs once for the whole verb, this look included.
    """
    import boto3
    import botocore.exceptions
    import botocore.session

    session = botocore.session.Session()
    session.set_config_variable("metadata_service_timeout", METADATA_TIMEOUT)
    session.set_config_variable("metadata_service_num_attempts", 1)
    try:
        resolver = session.get_component("credential_provider")
        if not (full or on_ec2()):
            resolver.remove("iam-role")
        credentials = session.get_credentials()  # kept by the session: resolved this once
    except botocore.exceptions.ProfileNotFound as exc:
        raise ConfigError(f"AWS profile: {exc}") from None
    except botocore.exceptions.BotoCoreError as exc:
        raise CredentialsRejected(f"AWS credentials cannot be read: {exc}") from None
    source = str(credentials.method) if credentials is not None else None
    return boto3.session.Session(botocore_session=session), source


def check_credentials(target: AwsTarget) -> str | None:
    """One cheap call (STS GetCallerIdentity) so rejected credentials fail here, in one line;
    the account the credentials are for (None: an AWS_ENDPOINT_URL that serves no STS)."""
    from botocore.exceptions import BotoCoreError, ClientError
    from botocore.parsers import ResponseParserError

    from suitcase.aws.errors import CREDENTIAL_CODES, error_code

    try:
        sts = target.client("sts", retries={"max_attempts": 2, "mode": "standard"})
        identity = sts.get_caller_identity()
    except ClientError as exc:
        # an AWS_ENDPOINT_URL that serves no STS is fine; refused credentials are not
        if target.endpoint_url is None or error_code(exc) in CREDENTIAL_CODES:
            raise explain(exc, "verifying the AWS account", target) from None
        return None
    except (BotoCoreError, ResponseParserError) as exc:  # the latter: a web server, not AWS
        error: AwsError = explain(exc, "verifying the AWS account", target)
        raise error from None
    account = identity.get("Account")
    return str(account) if account else None
