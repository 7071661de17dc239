"""The plugin's view of one run: which OS, image types and build set, resolved once."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest

from suitcase.context import Context, image_types
from suitcase.errors import ConfigError, SuitcaseError
from suitcase.imagetypes import IMAGE_TYPES
from suitcase.ostemplate import OSTemplate
from suitcase.plan import BuildPlan
from suitcase.verbs import check_source, preflight_plan
from suitcase.verified import BUILD_POLICIES
from suitcase.workspace import BuildSet


def spec_folder(path: Path) -> str | None:
    """'common', an image type, or None: the spec folder a test file lives in."""
    for parent in path.parents:
        if (parent.parent / "common").is_dir() and parent.name in ("common", *IMAGE_TYPES):
            return parent.name
    return None


def family_matches(os_template: OSTemplate, wanted: tuple[str, ...]) -> bool:
    """Does the OS match any of: debian, el, el6, el7, el8+, el9 (major-specific families)?"""
    family, major = os_template.family, os_template.major
    for want in wanted:
        if want == family:
            return True
        if want.startswith(family) and want[len(family) :].rstrip("+").isdigit():
            floor = int(want[len(family) :].rstrip("+"))
            if major == floor or (want.endswith("+") and major >= floor):
                return True
    return False


def _check_workspace(given: str | None, root: Path) -> None:
    """A workspace named on the command line must exist: a typo would start a whole new one."""
    if given is not None and not root.is_dir():
        raise ConfigError(
            f"workspace {given} does not exist (--suitcase-workspace); create it first for a "
            "new one"
        )


#: plugin options with a fixed set of values (checked here: one line, not argparse's usage)
CHOICES = {
    "suitcase_mode": ("auto", "offline"),
    "suitcase_build": BUILD_POLICIES,
    "suitcase_source": ("artifact", "ami"),
}


def from_env(value: str | None, variable: str) -> str | None:
    """An option's value, else the CLI's environment variable for it; set but empty is an error."""
    if value is not None:  # an empty option is refused where it is used, as before
        return value
    found = os.environ.get(variable)
    if found == "":
        raise ConfigError(f"{variable} is set but empty")
    return found


@dataclass
class SuitcaseSession:
    KEY: ClassVar[pytest.StashKey[SuitcaseSession]] = pytest.StashKey()

    ctx: Context
    os: OSTemplate
    image_names: list[str]
    build_set: BuildSet
    mode: str
    source: str = "artifact"  # or "ami": the specs look at the AMI's snapshot read back
    build: str = "missing"  # what the fixtures may build: never, missing, stale

    @staticmethod
    def wanted(config: pytest.Config) -> bool:
        opt = config.option
        return bool(
            getattr(opt, "suitcase_os", None)
            or getattr(opt, "suitcase_images", None)
            or getattr(opt, "suitcase_workspace", None)
        )

    @classmethod
    def from_config(cls, config: pytest.Config) -> SuitcaseSession:
        opt = config.option
        try:
            for name, allowed in CHOICES.items():
                value = getattr(opt, name, None)
                if value is not None and value not in allowed:
                    flag = "--" + name.replace("_", "-")
                    raise ConfigError(f"{flag} {value!r}: choose one of {', '.join(allowed)}")
            # the same variables as the CLI's, so `SUITCASE_OS=... pytest specs` never verifies
            # (or builds) the site's default OS instead of the one asked for
            opt.suitcase_os = from_env(opt.suitcase_os, "SUITCASE_OS")
            opt.suitcase_timestamp = from_env(opt.suitcase_timestamp, "SUITCASE_TIMESTAMP")
            opt.suitcase_workspace = from_env(opt.suitcase_workspace, "SUITCASE_WORKSPACE")
            opt.suitcase_site = from_env(opt.suitcase_site, "SUITCASE_SITE")
            ctx = Context.create(opt.suitcase_workspace, opt.suitcase_site)
            _check_workspace(opt.suitcase_workspace, ctx.workspace.root)
            os_template = ctx.os_template(opt.suitcase_os)
            spec = ",".join(opt.suitcase_images or ["all"])
            names = [t.name for t in image_types(os_template, spec, xen_only=ctx.site.ami_xen_only)]
            workerinput = getattr(config, "workerinput", None)
            if workerinput is not None and "suitcase_timestamp" in workerinput:
                timestamp = workerinput["suitcase_timestamp"]
            elif opt.suitcase_timestamp is None:  # the newest completed set, else a new one
                timestamp = ctx.workspace.latest(os_template.name)
            else:
                timestamp = opt.suitcase_timestamp
            build_set = ctx.build_set(os_template, timestamp)
            if opt.suitcase_timestamp is not None and not ctx.workspace.exists(build_set):
                raise ConfigError(  # verification never starts a set someone named by mistake
                    f"build set {build_set.id} does not exist in {ctx.workspace.images_dir}; "
                    "leave out --timestamp for the newest one (or a new one)"
                )
            source = getattr(opt, "suitcase_source", None) or "artifact"
            check_source(source, names)
        except SuitcaseError as exc:
            hint = "; see 'suitcase list' for what exists" if "unknown" in str(exc) else ""
            raise pytest.UsageError(f"suitcase: {exc}{hint}") from None
        build = getattr(opt, "suitcase_build", None) or "missing"
        return cls(ctx, os_template, names, build_set, opt.suitcase_mode, source, build)

    def plan(self, image: str) -> BuildPlan:
        return self.ctx.plan(self.os.name, image, self.build_set.timestamp)

    def preflight(self) -> None:
        """Once per run, before any spec: a build that cannot start is one usage error, and so
        is a workspace that cannot take the results (stage manifests, reports/)."""
        try:
            self.ctx.workspace.check_writable()
            if self.reports_dir.exists():  # else junitxml makes it, in the writable workspace
                self.ctx.workspace.check_writable(self.reports_dir)
            preflight_plan(self.ctx, self.plan(",".join(self.image_names)))
        except SuitcaseError as exc:
            message = str(exc)
            if str(self.reports_dir) in message:
                message = f"cannot write reports to {self.reports_dir}: {message}"
            raise pytest.UsageError(f"suitcase: {message}") from None

    @property
    def reports_dir(self) -> Path:
        return self.ctx.workspace.root / "reports"

    def junit_path(self) -> Path:
        """reports/junit-<build set>.xml (the folder was checked by `preflight`)."""
        return self.reports_dir / f"junit-{self.build_set.id}.xml"
