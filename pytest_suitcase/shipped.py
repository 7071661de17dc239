"""The artifact that ships, reached as its users reach it: the vagrant `.box` unpacked.

`suitcase_box` unpacks the box once per session into images/.verify/<set>/vagrant/ (after its
sha256 was checked against the manifest by `suitcase_artifact`), and removes it afterwards;
`suitcase_disk` gives the box's box.img to every vagrant spec, so what is verified is what
`vagrant box add` would install, not the disk.qcow2 the box was packed from.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_suitcase.session import SuitcaseSession
from suitcase.errors import SuitcaseError
from suitcase.manifest import Manifest
from suitcase.safety import remove_tree
from suitcase.verified import shipped_output, unpack_box, verify_dir


def box_folder(session: SuitcaseSession) -> Path:
    return verify_dir(session.ctx.workspace.images_dir) / session.build_set.id / "vagrant"


@contextlib.contextmanager
def _held(lock: Path) -> Iterator[None]:
    """One session at a time unpacks (and uses) a set's box folder; others wait."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@pytest.fixture(scope="session")
def suitcase_box(
    suitcase_session: SuitcaseSession, suitcase_image: str, suitcase_artifact: Manifest
) -> Iterator[Path]:
    """The folder of the vagrant `.box` unpacked as Vagrant would (box.img, metadata.json,
    Vagrantfile), its sha256 checked against the manifest first."""
    if suitcase_image != "vagrant":
        pytest.fail(f"{suitcase_image} ships no Vagrant box", pytrace=False)
    folder = box_folder(suitcase_session)
    stage_dir = suitcase_session.ctx.workspace.stage_dir("vagrant", suitcase_session.build_set)
    box = stage_dir / shipped_output(suitcase_artifact).path
    with _held(folder.with_name("vagrant.lock")):
        if os.path.lexists(folder):  # left by a killed run
            remove_tree(folder)
        try:
            unpack_box(box, folder)
        except SuitcaseError as exc:
            remove_tree(folder)
            pytest.fail(f"suitcase: {exc}", pytrace=False)
        try:
            yield folder
        finally:
            remove_tree(folder)
