"""Session fixtures: build (once, even across xdist workers), then reach the image for specs."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_suitcase.session import SuitcaseSession
from suitcase.build import build_key, run_plan
from suitcase.errors import SuitcaseError
from suitcase.imagetypes import IMAGE_TYPES
from suitcase.machine import booted, mounted, vm_cpus
from suitcase.manifest import Manifest
from suitcase.parity import Snapshot


@pytest.fixture(scope="session")
def suitcase_session(request: pytest.FixtureRequest) -> SuitcaseSession:
    """The OS, image types and build set of this run."""
    session = request.config.stash.get(SuitcaseSession.KEY, None)
    if session is None:
        pytest.fail(
            "specs need Suitcase's options, e.g. pytest specs --os=Debian-12-x86_64 "
            "--image=aws-hvm",
            pytrace=False,
        )
    return session


@pytest.fixture(scope="session")
def suitcase_image(request: pytest.FixtureRequest) -> str:
    """The image type under test (parametrized by the plugin from --image)."""
    name = getattr(request, "param", None)
    if name is None:
        pytest.fail("suitcase_image is parametrized by the plugin: pass --image", pytrace=False)
    return str(name)


def _say(request: pytest.FixtureRequest) -> Any:
    capture = request.config.pluginmanager.getplugin("capturemanager")
    terminal = request.config.pluginmanager.getplugin("terminalreporter")

    def say(text: str) -> None:
        if terminal is None or capture is None:
            return
        with capture.global_and_fixture_disabled():
            terminal.write_line(text)

    return say


def build_or_reuse(request: pytest.FixtureRequest, session: SuitcaseSession, name: str) -> Manifest:
    """Build `name` and its master unless done with a matching key; one builder per build set."""
    from suitcase.verified import check_build_policy

    try:
        plan = session.plan(name)
        with session.ctx.workspace.lock(plan.build_set, wait=-1):  # what another worker builds
            check_build_policy(plan, session.build, "--suitcase-build")  # is not stale
        results = run_plan(session.ctx, plan, _say(request), wait=-1)
        manifest = next(r.manifest for r in results if r.stage == name)
        checked(session, manifest)
    except SuitcaseError as exc:  # a failed build is its message, not a traceback per spec
        pytest.fail(f"suitcase: {exc}", pytrace=False)
    return manifest


def checked(session: SuitcaseSession, manifest: Manifest) -> str:
    """The sha256 of the stage's shipped output, checked against its manifest before any spec
    looks inside (cached per file version: cheap after the first run)."""
    from suitcase.verified import check_output, digest_cache, shipped_output

    workspace = session.ctx.workspace
    stage_dir = workspace.stage_dir(manifest.stage, session.build_set)
    return check_output(stage_dir, shipped_output(manifest), digest_cache(workspace.images_dir))


def checked_output(session: SuitcaseSession, manifest: Manifest, kind: str) -> Path:
    """For specs: the path of the stage's `kind` output, its sha256 checked (else they fail)."""
    from suitcase.verified import check_output, digest_cache

    output = manifest.output(kind)
    if output is None:
        pytest.fail(f"the {manifest.stage} manifest lists no {kind} output", pytrace=False)
    workspace = session.ctx.workspace
    stage_dir = workspace.stage_dir(manifest.stage, session.build_set)
    try:
        check_output(stage_dir, output, digest_cache(workspace.images_dir))
    except SuitcaseError as exc:
        pytest.fail(str(exc), pytrace=False)
    return stage_dir / output.path


@pytest.fixture(scope="session")
def suitcase_artifact(
    request: pytest.FixtureRequest, suitcase_session: SuitcaseSession, suitcase_image: str
) -> Manifest:
    """The manifest of the image under test, built first if needed."""
    return build_or_reuse(request, suitcase_session, suitcase_image)


@pytest.fixture(scope="session")
def suitcase_upload(
    request: pytest.FixtureRequest,
    suitcase_session: SuitcaseSession,
    suitcase_image: str,
    suitcase_artifact: Manifest,
) -> dict[str, Any]:
    """The upload cookie of the image under test: its stages uploaded to S3 first if needed.

    Once across xdist workers: the build-set lock is waited for, and a stage another worker
    confirmed meanwhile (its cookie, its objects still in S3) is not uploaded again.
    """
    from suitcase.aws.ship import real_upload, upload_plan
    from suitcase.errors import SuitcaseError

    plan = suitcase_session.plan(suitcase_image)
    stage_dir = plan.stage(suitcase_image).directory
    try:  # cookies are checked against S3, so lost endpoint state is uploaded again
        upload_plan(suitcase_session.ctx, plan, False, _say(request), wait=-1, trust_cookies=True)
    except SuitcaseError as exc:
        pytest.fail(f"suitcase upload of {suitcase_image}: {exc}", pytrace=False)
    cookie = real_upload(stage_dir, suitcase_artifact)
    if cookie is None:
        pytest.fail(f"{suitcase_image} has no upload cookie after its upload", pytrace=False)
    return cookie


@pytest.fixture(scope="session")
def suitcase_master(
    request: pytest.FixtureRequest, suitcase_session: SuitcaseSession, suitcase_artifact: Manifest
) -> Manifest:
    """The master's manifest (for parity checks)."""
    return build_or_reuse(request, suitcase_session, "master")


def disk_of(session: SuitcaseSession, manifest: Manifest) -> Path:
    kind = IMAGE_TYPES[manifest.stage].disk
    output = manifest.output(kind)
    if output is None:
        pytest.fail(f"{manifest.stage} manifest lists no {kind} output", pytrace=False)
    return session.ctx.workspace.stage_dir(manifest.stage, session.build_set) / output.path


def disk_sha256(session: SuitcaseSession, manifest: Manifest) -> str:
    """The sha256 of the stage's disk, checked against its manifest (cached per file version)."""
    from suitcase.verified import check_output, digest_cache

    output = manifest.output(IMAGE_TYPES[manifest.stage].disk)
    if output is None:
        pytest.fail(f"{manifest.stage} manifest lists no disk", pytrace=False)
    workspace = session.ctx.workspace
    stage_dir = workspace.stage_dir(manifest.stage, session.build_set)
    return check_output(stage_dir, output, digest_cache(workspace.images_dir))


def to_mount(session: SuitcaseSession, manifest: Manifest, disk: Path) -> Path:
    """What to mount read-only for `disk`: itself when raw, else its raw copy in the flat cache
    (made once per stage key and verified sha256), else (a disk with no verified sha256) the
    disk itself, which `mounted` converts privately."""
    from suitcase.artifact import disk_info
    from suitcase.verified import digest_cache, flat_cache, stage_cache_name

    images = session.ctx.workspace.images_dir
    if disk_info(disk).get("format") == "raw":
        return disk
    part = ""
    if disk == disk_of(session, manifest):
        sha256 = disk_sha256(session, manifest)
    elif manifest.stage == "vagrant" and disk.name == "box.img":
        # unpacked from the box checked against its manifest: its entry is named by its own
        # sha256, so it is the flattening of exactly these bytes (beside the stage disk's own
        # entry, which the parity verb uses)
        sha256, part = digest_cache(images).sha256(disk), "box"
    else:
        return disk
    stage = stage_cache_name(manifest.stage, session.build_set.id, part)
    return flat_cache(images).raw_of(disk, stage, manifest.key, sha256)


@pytest.fixture(scope="session")
def suitcase_root(
    suitcase_session: SuitcaseSession, suitcase_artifact: Manifest, suitcase_disk: Path
) -> Iterator[Path]:
    """The image under test mounted read-only, once per session (specs and parity share it)."""
    try:
        with mounted(to_mount(suitcase_session, suitcase_artifact, suitcase_disk)) as root:
            yield root
    except SuitcaseError as exc:
        pytest.fail(f"suitcase: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def image(suitcase_root: Path) -> Any:
    """testinfra host over the image as shipped (mounted read-only, never booted); with
    --suitcase-source=ami, over the AMI's snapshot read back (pytest_suitcase.ami)."""
    from pytest_suitcase.sandboxed import image_host

    return image_host(suitcase_root)


@pytest.fixture(scope="session")
def suitcase_host(
    suitcase_session: SuitcaseSession, suitcase_image: str, suitcase_disk: Path, image: Any
) -> Iterator[Any]:
    """testinfra host of the image under test: booted in QEMU where it can boot, else offline."""
    from pytest_suitcase.ssh import ssh_host

    kind = IMAGE_TYPES[suitcase_image]
    if suitcase_session.mode == "offline" or kind.verification == "offline":
        yield image
        return
    ctx = suitcase_session.ctx
    try:
        key = build_key(ctx, suitcase_session.plan(suitcase_image))
    except SuitcaseError as exc:
        pytest.fail(f"suitcase: {exc}", pytrace=False)
    with booted(
        suitcase_disk,
        kind.login,
        key,
        accelerator=ctx.site.accelerator,
        # xdist: one VM per worker at once, each sized to its share of the cores
        cpus=vm_cpus(int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))),
        runs_dir=ctx.workspace.images_dir / ".runs",  # VMs of a killed run are swept from here
    ) as login:
        yield ssh_host(login)


@pytest.fixture(scope="session")
def suitcase_build_key(suitcase_session: SuitcaseSession, suitcase_image: str) -> str:
    """The build set's public key: the master keeps it, no derived image may."""
    try:
        return build_key(suitcase_session.ctx, suitcase_session.plan(suitcase_image)).public_line
    except SuitcaseError as exc:  # never a new key for a set built with another one
        pytest.fail(f"suitcase: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def suitcase_master_snapshot(
    suitcase_session: SuitcaseSession, suitcase_master: Manifest
) -> Snapshot:
    """The master's parity snapshot: taken once per master disk, rules and code (one mount, in
    one xdist worker), then read from images/.verify/parity/ by every other check."""
    from suitcase.parity import Rules, master_snapshot
    from suitcase.verified import stage_cache_name

    session = suitcase_session
    try:
        return master_snapshot(
            session.ctx.workspace.images_dir,
            stage_cache_name("master", session.build_set.id),
            suitcase_master.key,
            disk_of(session, suitcase_master),
            disk_sha256(session, suitcase_master),
            session.os.family,
            Rules.load(session.ctx.paths),
        )
    except SuitcaseError as exc:
        pytest.fail(f"suitcase: parity of the master: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def suitcase_parity(
    suitcase_session: SuitcaseSession,
    suitcase_image: str,
    suitcase_root: Path,
    suitcase_master_snapshot: Snapshot,
) -> list[str]:
    """Differences between this image and its master outside the declared deltas."""
    from suitcase.parity import Rules, compare, snapshot

    try:
        rules = Rules.load(suitcase_session.ctx.paths)
        derived = snapshot(suitcase_root, suitcase_session.os.family, rules)
    except SuitcaseError as exc:
        pytest.fail(f"suitcase: parity of {suitcase_image}: {exc}", pytrace=False)
    return compare(suitcase_master_snapshot, derived, suitcase_image, rules)
