"""The `suitcase` command: parses options and hands over to the library; no logic of its own."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from suitcase import verbs
from suitcase.command import Interrupted, interrupt_on_sigterm, signal_of
from suitcase.context import Context
from suitcase.errors import SuitcaseError

pass_ctx = click.make_pass_decorator(Context)


class OperatorError(click.ClickException):
    """A SuitcaseError shown as `suitcase: error: ...` with the error's exit code, no traceback."""

    def __init__(self, error: SuitcaseError) -> None:
        super().__init__(str(error))
        self.exit_code = error.exit_code  # type: ignore[misc]

    def show(self, file: Any = None) -> None:
        click.echo(f"suitcase: error: {self.message}", err=True)


class Stopped(click.ClickException):
    """Ctrl-C or SIGTERM: one line `suitcase: interrupted`, exit 128 + the signal (130, 143)."""

    def __init__(self, interrupt: KeyboardInterrupt) -> None:
        signum = signal_of(interrupt)
        super().__init__(f"interrupted ({Interrupted(signum).name})")
        self.exit_code = Interrupted(signum).exit_code  # type: ignore[misc]

    def show(self, file: Any = None) -> None:
        click.echo(f"suitcase: {self.message}", err=True)


class SuitcaseGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SuitcaseError as exc:
            raise OperatorError(exc) from None
        except KeyboardInterrupt as exc:  # what it started is stopped by now; say so once
            raise Stopped(exc) from None


IMAGE_HELP = "master, vagrant, aws-hvm (awshvm), aws-paravirt (awspv), a comma list, or all"


def _image_arg(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.argument("image", required=False, default="all", metavar="[IMAGE]")(f)


def _os_opt(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--os",
        "os_name",
        envvar="SUITCASE_OS",
        help="OS template (os/<NAME>.yaml); default from site",
    )(f)


def _ts_opt(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--timestamp",
        envvar="SUITCASE_TIMESTAMP",
        help="build set to resume: YYYYMMDDhhmmss, YYYYMMDDhhmm or 'latest' (default: a new one)",
    )(f)


def _common(f: Callable[..., Any]) -> Callable[..., Any]:
    return _image_arg(_os_opt(_ts_opt(f)))


@click.group(cls=SuitcaseGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--workspace",
    envvar="SUITCASE_WORKSPACE",
    default=None,
    help="folder holding images/, packer_cache/ and keys/ (default: the current folder)",
)
@click.option("--site", "site_file", envvar="SUITCASE_SITE", help="site settings YAML file")
@click.option(
    "--builder", type=click.Choice(["qemu", "virtualbox"]), help="override the site's builder"
)
@click.option("--accelerator", help="QEMU accelerator (tcg, kvm, ...); overrides the site's")
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
    or all (the default).
    """
    click_ctx.obj = Context.create(
        workspace, site_file, {"builder": builder, "accelerator": accelerator}
    )


@cli.command()
@_common
@click.option(
    "--on-error",
    default="cleanup",
    type=click.Choice(["cleanup", "abort", "ask", "run-cleanup-provisioner"]),
    help="Packer's -on-error: 'abort' keeps a failed VM running for debugging",
)
@click.option("--wait", default=0.0, help="seconds to wait if another build holds the build set")
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


def _later(name: str, doc: str) -> None:
    @cli.command(name, help=doc)
    @_common
    @pass_ctx
    def command(ctx: Context, image: str, os_name: str | None, timestamp: str | None) -> None:
        verbs.not_yet(name)


for _name, _doc in (
    ("upload", "Upload IMAGE's artifacts to S3 (multipart, checksummed) and leave a cookie."),
    ("fetch", "Download IMAGE's artifacts from S3 so another machine can continue."),
    ("register", "Register IMAGE as an AMI (aws-hvm, aws-paravirt)."),
    ("deregister", "Deregister IMAGE's AMI and delete its snapshots."),
    ("delete", "Delete IMAGE's artifacts from S3."),
):
    _later(_name, _doc)


@cli.command()
@_common
@click.option("-n", "workers", default=0, help="pytest-xdist workers (image types in parallel)")
@click.option(
    "--mode",
    type=click.Choice(["auto", "offline"]),
    default="auto",
    help="auto: boot what can boot here; offline: mount every image instead",
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
    pytest_args: tuple[str, ...],
) -> None:
    """Run IMAGE's specs (specs/common and specs/IMAGE) against the built artifact.

    Builds whatever is missing first; the build set defaults to the newest of the OS. Extra
    arguments after -- go to pytest.
    """
    code = verbs.verify(ctx, image, os_name, timestamp, workers, mode, pytest_args)
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
@pass_ctx
def all_(
    ctx: Context, image: str, os_name: str | None, timestamp: str | None, on_error: str
) -> None:
    """Build, verify, upload and register IMAGE: the whole pipeline."""
    results = verbs.build(ctx, image, os_name, timestamp, on_error, 0, _say)
    timestamp = results[0].manifest.timestamp if results else timestamp
    code = verbs.verify(ctx, image, os_name, timestamp, 0, "auto")
    if code:
        raise click.exceptions.Exit(code)
    verbs.not_yet("upload")


def _say(text: str) -> None:
    click.echo(text, err=True)


def main() -> None:
    """Entry point for the console script."""
    interrupt_on_sigterm()
    cli(prog_name="suitcase")
