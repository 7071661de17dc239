"""Writing into an untrusted tree (a verification copy of an image) never follows its links."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from suitcase import artifact
from suitcase.errors import BuildError
from suitcase.machine import NOCLOUD, NOCLOUD_CFG, _with_nocloud, mounted
from suitcase.safety import UnsafeFolder, write_beneath


def test_a_file_is_made_through_real_folders(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    write_beneath(tmp_path, "etc/cloud/cloud.cfg.d/x.cfg", "a\n")
    assert (tmp_path / "etc/cloud/cloud.cfg.d/x.cfg").read_text() == "a\n"
    write_beneath(tmp_path, "etc/cloud/cloud.cfg.d/x.cfg", "b\n")  # replaced, not appended
    assert (tmp_path / "etc/cloud/cloud.cfg.d/x.cfg").read_text() == "b\n"


def test_a_linked_folder_is_refused_and_nothing_written_there(tmp_path: Path) -> None:
    host = tmp_path / "host-etc"
    host.mkdir()
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "etc").symlink_to(host)  # an image's /etc pointing at the host's
    with pytest.raises(UnsafeFolder, match=r"/etc in .* is not a folder"):
        write_beneath(tree, "etc/cloud/x.cfg", "a\n")
    assert list(host.iterdir()) == []


def test_a_link_in_place_of_the_file_is_replaced_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("host\n")
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "x.cfg").symlink_to(victim)
    write_beneath(tree, "x.cfg", "a\n")
    assert victim.read_text() == "host\n"
    assert not (tree / "x.cfg").is_symlink() and (tree / "x.cfg").read_text() == "a\n"


def _image(tmp_path: Path, tree: Path) -> Path:
    image = tmp_path / "image.raw"
    subprocess.run(["truncate", "-s", "32M", str(image)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(tree), str(image)], check=True)
    return image


def test_the_verification_copy_gets_nocloud_and_the_image_does_not(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "etc" / "cloud" / "cloud.cfg.d").mkdir(parents=True)
    image = _image(tmp_path, tree)
    before = artifact.disk_info(image)
    work = tmp_path / "work"
    work.mkdir()
    copy = _with_nocloud(image, before, work)
    with mounted(copy) as root:
        assert (root / NOCLOUD_CFG).read_text() == NOCLOUD
    with mounted(image) as root:
        assert not (root / NOCLOUD_CFG).exists()


def test_an_image_whose_etc_leads_out_gets_no_verification_boot(tmp_path: Path) -> None:
    host = tmp_path / "host-etc"
    host.mkdir()
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "etc").symlink_to(host)
    image = _image(tmp_path, tree)
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(BuildError, match="cannot add the verification's NoCloud"):
        _with_nocloud(image, artifact.disk_info(image), work)
    assert list(host.iterdir()) == []
