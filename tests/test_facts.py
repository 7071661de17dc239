"""Kernel-line facts from fixture trees of every boot loader layout Suitcase meets."""

from __future__ import annotations

import importlib.util
import re
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from pytest_suitcase import facts
from suitcase.answerfile import render
from suitcase.config import Paths
from suitcase.ostemplate import list_os, load_os

EL = [n for n in list_os(Paths.default()) if load_os(n).family == "el"]
ARGS = "root=LABEL=root ro net.ifnames=0 biosdevname=0 console=ttyS0,115200n8"


class TreeHost:
    """Enough of a testinfra host for facts: `run` with absolute paths inside a folder."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def run(self, command: str) -> Any:
        inside = re.sub(r"(?<=[\s'])/", f"{self.root}/", command)
        done = subprocess.run(["sh", "-c", inside], capture_output=True, text=True, check=False)
        done.stdout = done.stdout.replace(f"{self.root}/", "/")
        done.rc = done.returncode  # type: ignore[attr-defined]
        return done


def tree(root: Path, files: dict[str, str]) -> TreeHost:
    for name, text in files.items():
        path = root / name.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return TreeHost(root)


EL6_GRUB = f"""default=0
timeout=5
title CentOS (2.6.32-573.el6.x86_64)
        root (hd0,0)
        kernel /boot/vmlinuz-2.6.32-573.el6.x86_64 {ARGS} elevator=noop
        initrd /boot/initramfs-2.6.32-573.el6.x86_64.img
"""
EL7_GRUB2 = f"""menuentry 'CentOS Linux' --class centos {{
        linux16 /vmlinuz-3.10.0-514.el7.x86_64 {ARGS} elevator=noop
        initrd16 /initramfs-3.10.0-514.el7.x86_64.img
}}
"""
EL8_GRUB2 = "set default=0\nload_env\nblscfg\n"
BLS = "title Rocky Linux\nversion 5.14.0\nlinux /vmlinuz-5.14.0\ninitrd /initramfs-5.14.0.img\n"


def test_grub_legacy(tmp_path: Path) -> None:
    host = tree(tmp_path, {"/boot/grub/grub.conf": EL6_GRUB})
    assert facts.kernel_lines(host) == [f"{ARGS} elevator=noop"]


def test_menu_lst_alone(tmp_path: Path) -> None:
    host = tree(tmp_path, {"/boot/grub/menu.lst": EL6_GRUB})
    assert facts.kernel_lines(host) == [f"{ARGS} elevator=noop"]


def test_grub2_linux16(tmp_path: Path) -> None:
    host = tree(tmp_path, {"/boot/grub2/grub.cfg": EL7_GRUB2})
    assert facts.kernel_lines(host) == [f"{ARGS} elevator=noop"]


def test_bls_entries_with_literal_options(tmp_path: Path) -> None:
    host = tree(
        tmp_path,
        {
            "/boot/grub2/grub.cfg": EL8_GRUB2,
            "/boot/loader/entries/abc-5.14.0.conf": BLS + f"options {ARGS}\n",
            "/boot/loader/entries/abc-0-rescue.conf": BLS + "options root=LABEL=root\n",
        },
    )
    assert facts.kernel_lines(host) == [ARGS]  # the rescue entry is not a kernel line to check


def test_bls_entries_with_kernelopts_from_grubenv(tmp_path: Path) -> None:
    host = tree(
        tmp_path,
        {
            "/boot/grub2/grub.cfg": EL8_GRUB2,
            "/boot/grub2/grubenv": f"# GRUB Environment Block\nkernelopts={ARGS}\n",
            "/boot/loader/entries/abc-4.18.0.conf": BLS + "options $kernelopts\n",
        },
    )
    assert facts.kernel_lines(host) == [ARGS]


def test_extlinux(tmp_path: Path) -> None:
    host = tree(tmp_path, {"/boot/extlinux/extlinux.conf": f"LABEL linux\n  APPEND {ARGS}\n"})
    assert facts.kernel_lines(host) == [ARGS]


def test_no_kernel_line_fails_instead_of_passing_vacuously(tmp_path: Path) -> None:
    host = tree(tmp_path, {"/boot/grub2/grub.cfg": EL8_GRUB2})  # BLS entries missing
    with pytest.raises(facts.NoKernelLine, match="no kernel command line"):
        facts.kernel_lines(host)


def test_an_explicit_config_is_the_only_one_read(tmp_path: Path) -> None:
    host = tree(tmp_path, {"/boot/grub2/grub.cfg": EL7_GRUB2})
    with pytest.raises(facts.NoKernelLine, match=r"/boot/grub/grub\.conf"):
        facts.kernel_lines(host, "/boot/grub/grub.conf")


# --- the specs pass on what the kickstarts make ---------------------------------------------------


def spec_module(relative: str) -> ModuleType:
    path = Paths.default().specs_dir / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def installed_kernel_line(name: str) -> str:
    """The kernel arguments anaconda writes: the kickstart's bootloader --append."""
    text = render(load_os(name), Paths.default(), "ssh-ed25519 AAAA k", [], "x")
    match = re.search(r'^bootloader .*--append="([^"]*)"', text, re.M)
    assert match, "the kickstart sets no kernel arguments"
    return "root=LABEL=root ro " + match.group(1)


@pytest.mark.parametrize("name", EL)
def test_el_kernel_line_specs_pass_on_the_installed_line(name: str, tmp_path: Path) -> None:
    specs = spec_module("common/test_filesystem.py")
    major = load_os(name).major
    line = installed_kernel_line(name)
    layout = {
        6: ("/boot/grub/grub.conf", f"title x\n  kernel /vmlinuz {line}\n"),
        7: ("/boot/grub2/grub.cfg", f"menuentry 'x' {{\n  linux16 /vmlinuz {line}\n}}\n"),
    }.get(major, ("/boot/loader/entries/x.conf", f"{BLS}options {line}\n"))
    host = tree(tmp_path, {layout[0]: layout[1]})
    if major in (6, 7):
        specs.test_elevator_noop_on_el6_and_el7(host)
    if major == 6:
        specs.test_printk_time_on_el6(host)
    assert "net.ifnames=0" in facts.kernel_lines(host)[0]


def test_cloud_init_reporting_follows_the_capability_table() -> None:
    """Issue 22, blocker 4: `cloud-init status` from 17.2 only; 0.7.5 reports in its data folder."""
    from pytest_suitcase.facts import cloud_init_reporting
    from suitcase.ostemplate import load_os

    assert cloud_init_reporting(load_os("Debian-12-x86_64").spec.capabilities) == (
        True,
        "/run/cloud-init",
    )
    for name in ("CentOS-6.5-x86_64", "CentOS-7.3-x86_64"):
        caps = load_os(name).spec.capabilities
        assert cloud_init_reporting(caps) == (False, "/var/lib/cloud/data"), name
    assert cloud_init_reporting(load_os("Rocky-9.7-x86_64").spec.capabilities)[0]
