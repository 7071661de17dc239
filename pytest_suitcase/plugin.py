"""pytest plugin: options, markers and fixtures; inert unless --os/--image/--suitcase-* are used.

pytest specs --image=aws-hvm --os=Debian-12-x86_64      # build what is missing, then verify
pytest specs --image=all -n 3                           # image types in parallel, built once
"""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Any

import pytest

from pytest_suitcase import report
from pytest_suitcase.ami import suitcase_ami, suitcase_disk  # noqa: F401  (fixtures)
from pytest_suitcase.fixtures import (  # noqa: F401  (fixtures are found by name)
    image,
    suitcase_artifact,
    suitcase_build_key,
    suitcase_host,
    suitcase_image,
    suitcase_master,
    suitcase_master_snapshot,
    suitcase_parity,
    suitcase_root,
    suitcase_session,
    suitcase_upload,
)
from pytest_suitcase.schedule import image_of
from pytest_suitcase.session import SuitcaseSession, family_matches, spec_folder
from pytest_suitcase.shipped import suitcase_box  # noqa: F401  (fixture)
from suitcase.command import interrupt_on_sigterm
from suitcase.gates import PLANNED
from suitcase.imagetypes import IMAGE_TYPES
from suitcase.safety import own_modes
from suitcase.verified import DEFAULT_BUILD_POLICY

# the AMI specs' shared checks: their asserts explained as a spec's are (before any spec imports it)
pytest.register_assert_rewrite("pytest_suitcase.amichecks")

#: (where junitxml writes, where the report goes once the run ran something)
JUNIT = pytest.StashKey[tuple[Path, Path]]()

MARKERS = (
    "suitcase_images(*names): run this spec only for these image types (master, vagrant, ...)",
    "suitcase_family(*families): run only on these OS families: debian, el, el6, el7, el8+, el9",
    "suitcase_booted: needs the running system (skipped with --suitcase-mode=offline)",
    "suitcase_needs(*capabilities): needs what the OS template may lack (cloud-init, ena)",
    "suitcase_ami: an AMI spec: registers the image (embedded endpoint; an account only with "
    "--suitcase-register) and checks the AMI and its snapshot against the verified disk",
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("suitcase", "Suitcase image building and verification")
    group.addoption(
        "--os",
        dest="suitcase_os",
        metavar="OS",
        help="OS template to build and verify (os/<OS>.yaml)",
    )
    group.addoption(
        "--image",
        dest="suitcase_images",
        action="append",
        metavar="IMAGE",
        help="image type(s) to verify: repeatable, comma list, or 'all'",
    )
    group.addoption(
        "--timestamp",
        dest="suitcase_timestamp",
        metavar="TS",
        help="build set: YYYYMMDDhhmmss or 'latest' (default: latest, else a new one)",
    )
    group.addoption(
        "--suitcase-workspace",
        metavar="DIR",
        help="workspace holding images/ (default: the current folder)",
    )
    group.addoption("--suitcase-site", metavar="FILE", help="site settings YAML file")
    group.addoption(
        "--suitcase-mode",
        default="auto",  # checked by the session: a bad value is one line, not argparse's usage
        help="auto: boot what can boot here; offline: mount every image, boot none",
    )
    group.addoption(
        "--suitcase-register",
        action="store_true",
        default=False,
        help="let AMI specs register in a real AWS account (the embedded endpoint needs no option)",
    )
    group.addoption(
        "--suitcase-build",
        default=DEFAULT_BUILD_POLICY,
        help="what verification may build: never; missing (default: stages not built yet); "
        "stale (also rebuild stages whose inputs or outputs changed)",
    )
    group.addoption(
        "--suitcase-source",
        default="artifact",
        help="artifact: verify the built disk; ami: the AMI's snapshot read back (aws-hvm, "
        "aws-paravirt only)",
    )


def pytest_configure(config: pytest.Config) -> None:
    for line in MARKERS:
        config.addinivalue_line("markers", line)
    if not SuitcaseSession.wanted(config):
        return
    own_modes()  # what verification builds or fetches has Suitcase's modes, not the umask's
    session = SuitcaseSession.from_config(config)
    if not hasattr(config, "workerinput"):  # the controller checks once; workers trust it
        session.preflight()
    config.stash[SuitcaseSession.KEY] = session
    interrupt_on_sigterm()  # a killed run still stops its VMs and releases its mounts
    # every verification boot has fresh host keys: paramiko's warning about them is noise
    config.addinivalue_line("filterwarnings", "ignore:Unknown .* host key for:UserWarning")
    if not getattr(config.option, "xmlpath", None) and not hasattr(config, "workerinput"):
        # written beside, and put in place only by a run that ran something: a typo
        # (`pytest specz`, exit 4) or an empty selection keeps the set's last report
        final = session.junit_path()
        pending = final.with_name(f".{final.name}.writing")
        config.option.xmlpath = str(pending)
        config.stash[JUNIT] = (pending, final)
    config.pluginmanager.register(
        report.Recorder(session, report.whole_run(config)), "suitcase-recorder"
    )


def pytest_unconfigure(config: pytest.Config) -> None:
    """After junitxml wrote its report (at session finish): in place, or gone."""
    pending, final = config.stash.get(JUNIT, (None, None))
    if pending is None or final is None:
        return
    recorder = config.pluginmanager.get_plugin("suitcase-recorder")
    ran = isinstance(recorder, report.Recorder) and bool(recorder.counts)
    if ran and pending.exists():
        pending.replace(final)
    else:
        pending.unlink(missing_ok=True)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist: every worker verifies the same build set as the controller."""
    session = node.config.stash.get(SuitcaseSession.KEY, None)
    if session is not None:
        node.workerinput["suitcase_timestamp"] = session.build_set.timestamp


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """xdist: each image type's specs go to one worker, which boots that image once."""
    session = config.stash.get(SuitcaseSession.KEY, None)
    if session is None or config.getvalue("dist") not in ("load", "loadgroup", "loadscope"):
        return None
    from pytest_suitcase.schedule import ImageScheduling

    return ImageScheduling(config, log, session.image_names)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    session = config.stash.get(SuitcaseSession.KEY, None)
    if session is None or not collection_path.is_dir():
        return None
    if (collection_path.parent / "common").is_dir() and collection_path.name != "common":
        return collection_path.name not in session.image_names
    return None


def pytest_collection(session: pytest.Session) -> None:
    """No spec file may be silently skipped: a .py file in a spec folder must be collectable."""
    config = session.config
    if config.stash.get(SuitcaseSession.KEY, None) is None:
        return
    patterns = config.getini("python_files")
    for arg in config.args:
        root = Path(arg.split("::")[0])
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*.py")):
            if path.name in ("conftest.py", "__init__.py") or "__pycache__" in path.parts:
                continue
            if not any(fnmatch.fnmatch(path.name, p) for p in patterns):
                raise pytest.UsageError(
                    f"spec file {path} would never run: pytest only collects {' '.join(patterns)}; "
                    "rename it (e.g. test_" + path.name + ")"
                )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "suitcase_image" not in metafunc.fixturenames:
        return
    session = metafunc.config.stash.get(SuitcaseSession.KEY, None)
    if session is None:
        return
    folder = spec_folder(Path(str(metafunc.definition.path)))
    names = [n for n in session.image_names if folder in (None, "common", n)]
    marker = metafunc.definition.get_closest_marker("suitcase_images")
    if marker is not None:
        names = [n for n in names if n in marker.args]
    params = [pytest.param(n, id=n, marks=pytest.mark.xdist_group(n)) for n in names]
    if not params:
        # not for the image types of this run: deselected (pytest_collection_modifyitems), never
        # an empty parameter set, which pytest would report as a skip of a spec that was run
        params = [pytest.param(NOT_APPLICABLE, id=NOT_APPLICABLE)]
    metafunc.parametrize("suitcase_image", params, indirect=True, scope="session")


#: the suitcase_image of a spec that runs on none of this run's image types
NOT_APPLICABLE = "not-applicable"
EMPTY = "got empty parameter set"


def _not_applicable(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect specs that run on none of this run's image types; any other empty parameter set
    is a usage error: a spec whose parameter list came out empty never checked anything."""
    gone = [
        i
        for i in items
        if getattr(i, "callspec", None) is not None
        and i.callspec.params.get("suitcase_image") == NOT_APPLICABLE  # type: ignore[attr-defined]
    ]
    if gone:
        items[:] = [i for i in items if i not in gone]
        config.hook.pytest_deselected(items=gone)
    empty = [
        i.nodeid
        for i in items
        for m in i.iter_markers("skip")
        if str(m.kwargs.get("reason", m.args[0] if m.args else "")).startswith(EMPTY)
    ]
    if empty:
        raise pytest.UsageError(
            f"{', '.join(empty)}: an empty parameter set (a spec that would check nothing); "
            "every parameter list of a spec must hold at least one value"
        )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    session = config.stash.get(SuitcaseSession.KEY, None)
    if session is None:
        return
    from pytest_suitcase.markers import validate

    validate(items)
    _not_applicable(config, items)
    for item in items:
        reason = planned_skip(item, session)
        if reason is not None:
            item.add_marker(pytest.mark.skip(reason=PLANNED + reason))


def planned_skip(item: pytest.Item, session: SuitcaseSession) -> str | None:
    """Why `item` cannot run on this OS, image type and mode, decided from the spec files and
    the OS template before anything runs (None: it must run, and pass). Any other skip is
    unplanned, and a run with one has not passed (suitcase.gates)."""
    marker = item.get_closest_marker("suitcase_family")
    if marker is not None and not family_matches(session.os, marker.args):
        return f"only for {', '.join(marker.args)}; this is {session.os.name}"
    for marker in item.iter_markers("suitcase_needs"):
        for capability in marker.args:
            lacking = lacks(session, str(capability))
            if lacking:
                return lacking
    if item.get_closest_marker("suitcase_booted"):
        image = image_of(item.nodeid, session.image_names)
        offline = image is not None and IMAGE_TYPES[image].verification == "offline"
        if session.mode == "offline" or offline:
            # a chroot would answer with the host's running state, never the image's
            return f"needs the running system; {image} is verified offline here"
    return None


def lacks(session: SuitcaseSession, capability: str) -> str | None:
    """Why the OS of this run lacks `capability` (markers.CAPABILITIES), or None."""
    from suitcase.media import master_has_cloud_init

    if capability == "cloud-init" and not master_has_cloud_init(session.os, session.ctx.paths):
        return f"{session.os.name}'s media carry no cloud-init (no AWS images)"
    caps = session.os.spec.capabilities
    if capability == "ena" and not caps.ena:
        return f"{session.os.name}'s kernel ({caps.kernel}) has no ENA driver (its capabilities)"
    if capability == "ena" and session.ctx.site.ami_xen_only:
        return "the site registers Xen-only AMIs (ami_xen_only): no ENA asked for"
    return None
