"""The `suitcase` command: parses options and hands over to the library; no logic of its own."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import click

from suitcase import verbs
from suitcase.aws import endpoint as aws_endpoint
from suitcase.command import Interrupted, interrupt_on_sigterm, signal_of
from suitcase.context import Context
from suitcase.errors import ConfigError, SuitcaseError
from suitcase.safety import own_modes


class OperatorError(click.ClickException):
    """A SuitcaseError shown as `suitcase: error: ...` with the error's exit code, no traceback."""

    def __init__(self, error: SuitcaseError) -> None:
        super().__init__(str(error))
        self.exit_code = error.exit_code  # type: ignore[misc]

    def show(self, file: Any = None) -> None:
        click.echo(f"suitcase: error: {self.message}", err=True)


def _usage_line(exc: click.UsageError) -> OperatorError:
    """click's three-line usage error as Suitcase's one line (exit 2), with where to look."""
    command = exc.ctx.command_path if exc.ctx is not None else "suitcase"
    message = " ".join(exc.format_message().split())
    return OperatorError(ConfigError(f"{message} (see '{command} --help')"))


class SuitcaseCommand(click.Command):
    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            raise _usage_line(exc) from None


class Stopped(click.ClickException):
    """Ctrl-C or SIGTERM: one line `suitcase: interrupted`, exit 128 + the signal (130, 143)."""

    def __init__(self, interrupt: KeyboardInterrupt) -> None:
        signum = signal_of(interrupt)
        super().__init__(f"interrupted ({Interrupted(signum).name})")
        self.exit_code = Interrupted(signum).exit_code  # type: ignore[misc]

    def show(self, file: Any = None) -> None:
        click.echo(f"suitcase: {self.message}", err=True)


class SuitcaseGroup(click.Group):
    command_class = SuitcaseCommand

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            raise _usage_line(exc) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:  # an unknown verb
            raise _usage_line(exc) from None
        except SuitcaseError as exc:
            raise OperatorError(exc) from None
        except OSError as exc:  # the machine said no (read-only, full, gone): one line too
            where = f": {exc.filename}" if exc.filename else ""
            raise OperatorError(SuitcaseError(f"{exc.strerror or exc}{where}")) from None
        except KeyboardInterrupt as exc:  # what it started is stopped by now; say so once
            raise Stopped(exc) from None


@dataclass
class GlobalOptions:
    """The options every verb takes, before the verb (`suitcase --workspace W build`) or after it
    (`suitcase build --workspace W`); after the verb wins. The Context is made from them once."""

    workspace: str | None = None
    site_file: str | None = None
    builder: str | None = None
    accelerator: str | None = None

    def context(self) -> Context:
        return Context.create(
            self.workspace,
            self.site_file,
            {"builder": self.builder, "accelerator": self.accelerator},
        )


WORKSPACE_HELP = "folder holding images/, packer_cache/ and keys/ (default: the current folder)"
SITE_HELP = "site settings YAML file"
BUILDER_HELP = "override the site's builder"
ACCELERATOR_HELP = "QEMU accelerator (tcg, kvm, ...); overrides the site's"


def _global_options(envvars: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """--workspace, --site, --builder, --accelerator (read from SUITCASE_* only on the group)."""

    def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(
            (
                click.option(
                    "--workspace",
                    envvar="SUITCASE_WORKSPACE" if envvars else None,
                    help=WORKSPACE_HELP,
                ),
                click.option(
                    "--site",
                    "site_file",
                    envvar="SUITCASE_SITE" if envvars else None,
                    help=SITE_HELP,
                ),
                click.option(
                    "--builder", type=click.Choice(["qemu", "virtualbox"]), help=BUILDER_HELP
                ),
                click.option("--accelerator", help=ACCELERATOR_HELP),
            )
        ):
            f = option(f)
        return f

    return decorate


def pass_ctx(f: Callable[..., Any]) -> Callable[..., Any]:
    """Give the verb its Context, made from the group's options and the verb's own."""

    def verb(
        given: GlobalOptions,
        *args: Any,
        workspace: str | None,
        site_file: str | None,
        builder: str | None,
        accelerator: str | None,
        **kwargs: Any,
    ) -> Any:
        merged = GlobalOptions(
            workspace if workspace is not None else given.workspace,
            site_file if site_file is not None else given.site_file,
            builder if builder is not None else given.builder,
            accelerator if accelerator is not None else given.accelerator,
        )
        return f(merged.context(), *args, **kwargs)

    functools.update_wrapper(verb, f)  # the verb's name and docstring (its --help)
    return _global_options(envvars=False)(click.pass_obj(verb))


IMAGE_HELP = "master, vagrant, aws-hvm (awshvm), aws-paravirt (awspv), a comma list, or all"


def _image_arg(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.argument("image", required=False, default="all", metavar="[IMAGE]")(f)


def _wait_seconds(ctx: click.Context, param: click.Parameter, value: float) -> float:
    if value < 0 and value != -1:
        raise click.BadParameter(
            f"{value} is neither 0 or more seconds nor -1 (as long as it takes)"
        )
    return value


def _not_blank(variable: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    """click takes an empty variable for an unset one; Suitcase refuses it instead:
    `SUITCASE_TIMESTAMP=$TS suitcase clean` with an empty $TS must not mean every build set."""

    def check(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is None and os.environ.get(variable) == "":
            raise ConfigError(f"{variable} is set but empty: give it a value or unset it")
        return value

    return check


def _os_opt(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--os",
        "os_name",
        envvar="SUITCASE_OS",
        callback=_not_blank("SUITCASE_OS"),
        help="OS template (os/<NAME>.yaml); default from site",
    )(f)


def _ts_opt(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--timestamp",
        envvar="SUITCASE_TIMESTAMP",
        callback=_not_blank("SUITCASE_TIMESTAMP"),
        help="build set to resume: YYYYMMDDhhmmss, YYYYMMDDhhmm or 'latest' (default: a new one)",
    )(f)


def _common(f: Callable[..., Any]) -> Callable[..., Any]:
    return _image_arg(_os_opt(_ts_opt(f)))


@click.group(cls=SuitcaseGroup, context_settings={"help_option_names": ["-h", "--help"]})
@_global_options(envvars=True)
@click.version_option(package_name="suitcase")
@click.pass_context
def cli(
    click_ctx: click.Context,
    workspace: str | None,
    site_file: str | None,
    builder: str | None,
    accelerator: str | None,
) -> None:
    """Build a master OS image, derive Vagrant and AWS images from it, verify, ship.

    IMAGE is one of: master, vagrant, aws-hvm (awshvm), aws-paravirt (awspv), a comma list,
    or all (the default). --workspace, --site, --builder and --accelerator may also follow the
    verb.
    """
    own_modes()  # what any verb creates has Suitcase's modes, not the caller's umask
    click_ctx.obj = GlobalOptions(workspace, site_file, builder, accelerator)


@cli.command()
@_common
@click.option(
    "--on-error",
    default="cleanup",
    type=click.Choice(["cleanup", "abort", "ask", "run-cleanup-provisioner"]),
    help="Packer's -on-error: 'abort' keeps a failed VM running for debugging",
)
@click.option(
    "--wait",
    default=0.0,
    type=click.FloatRange(min=-1),
    callback=_wait_seconds,
    help="seconds to wait if another build holds the build set (-1: as long as it takes)",
)
@pass_ctx
def build(
    ctx: Context, image: str, os_name: str | None, timestamp: str | None, on_error: str, wait: float
) -> None:
    """Build IMAGE (and its master) unless a done stage with the same key exists."""
    verbs.build(ctx, image, os_name, timestamp, on_error, wait, _say)


@cli.command()
@_common
@pass_ctx
def plan(ctx: Context, image: str, os_name: str | None, timestamp: str | None) -> None:
    """Show the stages IMAGE needs, their keys, and which are done or would run (and why)."""
    click.echo(verbs.plan_text(ctx, image, os_name, timestamp))


@cli.command("list")
@pass_ctx
def list_(ctx: Context) -> None:
    """List verbs, image types, OS templates and the build sets in the workspace."""
    click.echo(verbs.list_text(ctx, cli.commands))


@cli.command()
@_common
@click.option("--dry-run", is_flag=True, help="only say what would be removed")
@pass_ctx
def clean(
    ctx: Context, image: str, os_name: str | None, timestamp: str | None, dry_run: bool
) -> None:
    """Remove local artifacts of IMAGE for one build set (or every set of the OS)."""
    for line in verbs.clean(ctx, image, os_name, timestamp, dry_run):
        click.echo(line)


@cli.command("fake-upload")
@_common
@pass_ctx
def fake_upload(ctx: Context, image: str, os_name: str | None, timestamp: str | None) -> None:
    """Write the upload cookie without uploading (to test registration)."""
    for line in verbs.fake_upload(ctx, image, os_name, timestamp):
        click.echo(line)


@cli.group("endpoint")
def endpoint_group() -> None:
    """Manage the embedded AWS endpoint (moto's server on 127.0.0.1, owned by the workspace).

    Verbs that need AWS start it themselves when no AWS account is configured (and stop it when
    they end); its state (buckets, objects, snapshots, AMIs) is on disk in <workspace>/endpoint/
    as soon as it answers, and outlives a stop or a kill. Every request needs the workspace's key.
    """


@endpoint_group.command("start")
@click.option(
    "--port",
    default=0,
    type=click.IntRange(0, 65535),
    help="port on 127.0.0.1 (default: a free one)",
)
@click.option(
    "--idle",
    default=0,
    type=click.IntRange(0, None),
    help="stop after this many seconds without requests while no suitcase uses it (0: never)",
)
@pass_ctx
def endpoint_start(ctx: Context, port: int, idle: int) -> None:
    """Start the embedded endpoint (with its saved state) unless it runs; it stays until stopped."""
    click.echo(aws_endpoint.start(ctx.workspace.root, _say, port, idle))


@endpoint_group.command("stop")
@pass_ctx
def endpoint_stop(ctx: Context) -> None:
    """Stop the embedded endpoint (everything it acknowledged is already on disk)."""
    click.echo(aws_endpoint.EmbeddedEndpoint(ctx.workspace.root).stop())


@endpoint_group.command("env")
@pass_ctx
def endpoint_env(ctx: Context) -> None:
    """Print the shell lines that point the AWS CLI and boto3 at the running endpoint.

    eval "$(suitcase endpoint env)" && aws s3 ls
    """
    click.echo(
        "\n".join(aws_endpoint.EmbeddedEndpoint(ctx.workspace.root).env_lines(ctx.site.region))
    )


@endpoint_group.command("status")
@pass_ctx
def endpoint_status(ctx: Context) -> None:
    """Show its URL, pid, uptime and what it holds (buckets, objects, snapshots, AMIs)."""
    click.echo("\n".join(aws_endpoint.status_lines(ctx.workspace.root, ctx.site.region)))


@cli.command()
@_common
@click.option(
    "--create-bucket", is_flag=True, help="create the site's bucket if missing (real AWS too)"
)
@pass_ctx
def upload(
    ctx: Context, image: str, os_name: str | None, timestamp: str | None, create_bucket: bool
) -> None:
    """Upload IMAGE's stages to S3 (multipart, CRC64NVME-checked, resumable), then the cookie.

    Builds what is missing first; the build set defaults to the newest of the OS.
    """
    for line in verbs.upload(ctx, image, os_name, timestamp, create_bucket, _say):
        click.echo(line)


@cli.command()
@_common
@pass_ctx
def fetch(ctx: Context, image: str, os_name: str | None, timestamp: str | None) -> None:
    """Download IMAGE's stages (and its parents) from S3, verified, so this machine continues."""
    for line in verbs.fetch(ctx, image, os_name, timestamp, _say):
        click.echo(line)


@cli.command()
@_common
@click.option("--force", is_flag=True, help="delete even while AMIs of the build set exist")
@click.option("--dry-run", is_flag=True, help="only list what would be deleted")
@pass_ctx
def delete(
    ctx: Context,
    image: str,
    os_name: str | None,
    timestamp: str | None,
    force: bool,
    dry_run: bool,
) -> None:
    """Delete IMAGE's objects of one build set from S3 (refused while its AMIs exist)."""
    for line in verbs.delete(ctx, image, os_name, timestamp, force, dry_run, _say):
        click.echo(line)


@cli.command()
@_common
@pass_ctx
def register(ctx: Context, image: str, os_name: str | None, timestamp: str | None) -> None:
    """Register IMAGE as an AMI (aws-hvm, aws-paravirt) once its verification passed.

    Only a built stage whose whole spec run passed for its stage key, in a mode the site
    accepts (register_requires), is registered. The build set defaults to the newest of the OS;
    a second run finds the AMI it made.
    """
    from suitcase.aws.register import register as register_images

    for line in register_images(ctx, image, os_name, timestamp, _say):
        click.echo(line)


@cli.command()
@_common
@pass_ctx
def deregister(ctx: Context, image: str, os_name: str | None, timestamp: str | None) -> None:
    """Deregister IMAGE's AMIs (every region recorded) and delete their snapshots."""
    from suitcase.aws.register import deregister as deregister_images

    for line in deregister_images(ctx, image, os_name, timestamp, _say):
        click.echo(line)


@cli.command()
@_common
@click.option(
    "-n",
    "workers",
    default=0,
    type=click.IntRange(min=0, max=64),
    help="pytest-xdist workers (image types in parallel)",
)
@click.option(
    "--mode",
    type=click.Choice(["auto", "offline"]),
    default="auto",
    help="auto: boot what can boot here; offline: mount every image instead",
)
@click.option(
    "--from",
    "source",
    type=click.Choice(["artifact", "ami"]),
    default="artifact",
    help="artifact: the built disk; ami: the registered AMI's snapshot read back (aws-hvm, "
    "aws-paravirt; registers first where needed)",
)
@click.option(
    "--build",
    "build_policy",
    type=click.Choice(["never", "missing", "stale"]),
    default="missing",
    help="what verification may build: never; missing (default): stages not built yet; "
    "stale: also rebuild stages whose inputs or outputs changed",
)
@click.argument("pytest_args", nargs=-1, type=click.UNPROCESSED)
@pass_ctx
def verify(
    ctx: Context,
    image: str,
    os_name: str | None,
    timestamp: str | None,
    workers: int,
    mode: str,
    source: str,
    build_policy: str,
    pytest_args: tuple[str, ...],
) -> None:
    """Run IMAGE's specs (specs/common and specs/IMAGE) against the built artifact.

    Builds stages not built yet first (--build); a stale stage fails unless --build stale. The
    build set defaults to the newest of the OS. Extra arguments after -- go to pytest.
    """
    code = verbs.verify(
        ctx, image, os_name, timestamp, workers, mode, pytest_args, source, build_policy
    )
    if code:
        raise click.exceptions.Exit(code)


@cli.command()
@_common
@pass_ctx
def parity(ctx: Context, image: str, os_name: str | None, timestamp: str | None) -> None:
    """Compare each derived image's packages and config files with its master.

    A difference outside the image type's declared deltas (specs/parity.yaml) fails.
    """
    lines, ok = verbs.parity(ctx, image, os_name, timestamp)
    click.echo("\n".join(lines))
    if not ok:
        raise click.exceptions.Exit(1)


@cli.command("all")
@_common
@click.option("--on-error", default="cleanup", help="Packer's -on-error for the build step")
@click.option(
    "--mode",
    type=click.Choice(["auto", "offline"]),
    default="auto",
    help="verification: auto boots what can boot here; offline mounts every image instead",
)
@click.option(
    "--ship-after-verify",
    is_flag=True,
    help="upload only once verification passed (default: each stage uploads while the next "
    "one builds; AMIs are registered only after verification either way)",
)
@pass_ctx
def all_(
    ctx: Context,
    image: str,
    os_name: str | None,
    timestamp: str | None,
    on_error: str,
    mode: str,
    ship_after_verify: bool,
) -> None:
    """Build, verify, upload and register IMAGE, verify the aws-hvm AMI: the whole pipeline.

    Ends with one table (artifact, size, sha256, specs, S3, AMI, JUnit report, stage timings);
    exit 0 only when all of it holds. With --timestamp latest only what is missing runs.
    """
    from suitcase.pipeline import Pipeline

    outcome = Pipeline(ctx, image, os_name, _say).run(
        timestamp, on_error, mode, overlap=not ship_after_verify
    )
    click.echo(outcome.text)
    if not outcome.ok:
        raise click.exceptions.Exit(1)


def _say(text: str) -> None:
    click.echo(text, err=True)


def main() -> None:
    """Entry point for the console script."""
    interrupt_on_sigterm()
    cli(prog_name="suitcase")
