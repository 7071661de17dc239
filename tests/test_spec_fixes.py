"""Specs of issue 21 (item 5) that checked less than their names say, on fixture trees and fakes:
each passes on a clean tree and fails on the defect its old version let through (commented sudo
rules, includes not followed, the root file system's type taken from fstab, histories outside
/root, a missing resolv.conf or machine-id, another kernel's drivers, a link that is down, a
missing journalctl, a hash behind `!`, an empty parameter set, AMI attributes compared with the
code that set them)."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from pytest_suitcase import facts
from suitcase.config import Site
from tests.test_facts import TreeHost, spec_module, tree
from tests.test_plugin import ARGS, _specs
from tests.test_spec_trees import DEBIAN, DEBIAN_SUDOERS, IDS, PASSWD, SHADOW, VAGRANT

pytest_plugins = ["pytester"]


def session(family: str = "debian", major: int = 12, root_fs: str = "ext4") -> Any:
    name = "Debian-12-x86_64" if family == "debian" else f"CentOS-{major}-x86_64"
    return SimpleNamespace(
        os=SimpleNamespace(family=family, major=major, name=name, data={"root_fs": root_fs})
    )


def outcome(module: ModuleType | str, name: str, **fixtures: Any) -> str:
    """Run one spec function: "passed", "skipped: ..." or "failed: <its message>"."""
    check = getattr(spec_module(module) if isinstance(module, str) else module, name)
    wanted = check.__code__.co_varnames[: check.__code__.co_argcount]
    args = {"suitcase_image": "master", "suitcase_session": session(), **fixtures}
    if "host" in fixtures and "image" not in fixtures:
        args["image"] = fixtures["host"]
    if "image" in fixtures and "host" not in fixtures:
        args["host"] = fixtures["image"]
    try:
        check(**{a: args[a] for a in wanted})
    except (AssertionError, pytest.fail.Exception) as exc:
        return f"failed: {exc}"
    except pytest.skip.Exception as exc:
        return f"skipped: {exc}"
    return "passed"


@pytest.fixture(autouse=True)
def real_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fixture trees have no block device: the root file system is given."""
    monkeypatch.setattr(facts, "root_filesystem_ids", lambda host: dict(IDS))
    monkeypatch.setattr(facts, "root_filesystem_type", lambda host: "ext4")


KERNEL = "6.1.0-50-amd64"
DRIVERS = f"/lib/modules/{KERNEL}/kernel/drivers/net/ethernet"
CLEAN = {
    **DEBIAN,
    "/etc/machine-id": "",
    "/boot/extlinux/extlinux.conf": (
        f"DEFAULT debian\nLABEL debian\n  LINUX /boot/vmlinuz-{KERNEL}\n"
        f"  INITRD /boot/initrd.img-{KERNEL}\n  APPEND root=LABEL=root ro\n"
    ),
    f"/boot/vmlinuz-{KERNEL}": "",
    f"{DRIVERS}/amazon/ena/ena.ko": "",
    f"{DRIVERS}/intel/ixgbevf/ixgbevf.ko": "",
    f"/lib/modules/{KERNEL}/modules.builtin": "kernel/drivers/block/loop.ko\n",
}
OTHER = "5.10.0-28-amd64"
VAGRANT_SUDO = "Defaults:vagrant !requiretty\nvagrant ALL=(ALL) NOPASSWD: ALL\n"


def unlink(path: str) -> Callable[[Path], None]:
    return lambda root: (root / path.lstrip("/")).unlink()


def move_ena_to_another_kernel(root: Path) -> None:
    ena = root / DRIVERS.lstrip("/") / "amazon/ena/ena.ko"
    other = root / f"lib/modules/{OTHER}/kernel/drivers/net/ethernet/amazon/ena/ena.ko"
    other.parent.mkdir(parents=True)
    ena.rename(other)


def xfs_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real root file system is xfs; fstab still says ext4 (the template says ext4)."""
    monkeypatch.setattr(facts, "root_filesystem_type", lambda host: "xfs")


Change = dict[str, str] | Callable[[Path], None]
# (spec, function, image type, the defect: files, a change to the tree, or a monkeypatch)
DEFECTS: list[tuple[str, str, str, Change | Callable[[pytest.MonkeyPatch], None]]] = [
    (
        "common/test_accounts.py",
        "test_sudo_rules_are_declared",
        "master",
        {
            "/etc/sudoers": DEBIAN_SUDOERS + "@includedir /etc/sudoers.build\n",
            "/etc/sudoers.build/packer": "packer ALL=(ALL) NOPASSWD: ALL\n",
        },
    ),
    (
        "common/test_accounts.py",
        "test_sudo_rules_are_declared",
        "master",
        {
            "/etc/sudoers": DEBIAN_SUDOERS + "#includedir /etc/sudoers.build\n",
            "/etc/sudoers.build/packer": "packer ALL=(ALL) ALL\n",
        },
    ),
    (
        "common/test_accounts.py",
        "test_sudo_rules_are_declared",
        "aws-hvm",
        {
            "/etc/sudoers": DEBIAN_SUDOERS + "@include sudoers.local\n",
            "/etc/sudoers.local": "%sudo ALL=(ALL) NOPASSWD: ALL\n",
        },
    ),
    (
        "common/test_accounts.py",
        "test_sudo_rules_are_declared",
        "master",
        {"/etc/sudoers": DEBIAN_SUDOERS + "#1001 ALL=(ALL) NOPASSWD: ALL\n"},
    ),
    (
        "vagrant/test_vagrant_user.py",
        "test_passwordless_sudo_without_tty",
        "vagrant",
        {
            "/etc/sudoers.d/vagrant": (
                "Defaults:vagrant !requiretty\n# vagrant ALL=(ALL) NOPASSWD: ALL\n"
            )
        },
    ),
    (
        "vagrant/test_vagrant_user.py",
        "test_passwordless_sudo_without_tty",
        "vagrant",
        {
            "/etc/sudoers.d/vagrant": (
                "#Defaults:vagrant !requiretty\nDefaults:vagrant requiretty\n"
                "vagrant ALL=(ALL) NOPASSWD: ALL\n"
            )
        },
    ),
    ("common/test_filesystem.py", "test_root_filesystem_type", "master", xfs_root),
    (
        "common/test_hygiene.py",
        "test_no_shell_history",
        "aws-hvm",
        {"/home/packer/.bash_history": "sudo make install\n"},
    ),
    (
        "common/test_hygiene.py",
        "test_no_shell_history",
        "aws-hvm",
        {
            "/etc/passwd": PASSWD + "build:x:998:998::/var/lib/build:/bin/sh\n",
            "/var/lib/build/.sh_history": "curl ...\n",
        },
    ),
    ("common/test_hygiene.py", "test_machine_id_empty", "master", unlink("/etc/machine-id")),
    (
        "common/test_identity.py",
        "test_resolv_conf_has_no_build_resolver",
        "master",
        unlink("/etc/resolv.conf"),
    ),
    (
        "aws-hvm/test_drivers.py",
        "test_ena_driver_shipped",
        "aws-hvm",
        move_ena_to_another_kernel,
    ),
]


def make(root: Path, image_type: str) -> TreeHost:
    host = tree(root, CLEAN)
    if image_type == "vagrant":
        tree(root, {**VAGRANT, "/etc/sudoers.d/vagrant": VAGRANT_SUDO})
    for folder in ("/tmp", "/var/tmp", "/home"):
        (root / folder.lstrip("/")).mkdir(parents=True, exist_ok=True)
    return host


@pytest.mark.parametrize(
    ("module", "name", "image_type"),
    sorted({(m, n, t) for m, n, t, _ in DEFECTS}),
)
def test_each_fixed_spec_passes_on_a_clean_tree(
    tmp_path: Path, module: str, name: str, image_type: str
) -> None:
    host = make(tmp_path, image_type)
    assert outcome(module, name, image=host, suitcase_image=image_type) == "passed"


@pytest.mark.parametrize(
    ("module", "name", "image_type", "change"),
    DEFECTS,
    ids=[f"{d[1]}-{i}" for i, d in enumerate(DEFECTS)],
)
def test_each_fixed_spec_fails_on_its_defect(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    module: str,
    name: str,
    image_type: str,
    change: Any,
) -> None:
    host = make(tmp_path, image_type)
    if isinstance(change, dict):
        tree(tmp_path, change)
    elif change is xfs_root:
        change(monkeypatch)
    else:
        change(tmp_path)
    result = outcome(module, name, image=host, suitcase_image=image_type)
    assert result.startswith("failed"), f"{module}::{name} did not fail on its defect: {result}"


def test_continued_and_builtin_pass(tmp_path: Path) -> None:
    """What sudo and the kernel accept passes too: a rule continued with a backslash, a driver
    built into the kernel, a kernel named through a link."""
    host = make(tmp_path, "vagrant")
    tree(
        tmp_path,
        {
            "/etc/sudoers.d/vagrant": (
                "Defaults:vagrant !requiretty\nvagrant ALL=(ALL) \\\n  NOPASSWD: ALL\n"
            )
        },
    )
    assert (
        outcome("vagrant/test_vagrant_user.py", "test_passwordless_sudo_without_tty", image=host)
        == "passed"
    )
    (tmp_path / DRIVERS.lstrip("/") / "amazon/ena/ena.ko").unlink()
    tree(
        tmp_path,
        {
            f"/lib/modules/{KERNEL}/modules.builtin": (
                "kernel/drivers/net/ethernet/amazon/ena/ena.ko\n"
            )
        },
    )
    (tmp_path / "boot/vmlinuz").symlink_to(f"vmlinuz-{KERNEL}")
    tree(
        tmp_path,
        {
            "/boot/extlinux/extlinux.conf": (
                "LABEL d\n  KERNEL /boot/vmlinuz\n  APPEND root=LABEL=root\n"
            )
        },
    )
    assert outcome("aws-hvm/test_drivers.py", "test_ena_driver_shipped", image=host) == "passed"
    assert outcome("aws-hvm/test_drivers.py", "test_sriov_drivers_shipped", image=host) == "passed"


def test_machine_id_may_be_missing_only_where_declared(tmp_path: Path) -> None:
    host = make(tmp_path, "master")
    (tmp_path / "etc/machine-id").unlink()
    el6 = session("el", 6)
    assert (
        outcome("common/test_hygiene.py", "test_machine_id_empty", image=host, suitcase_session=el6)
        == "passed"
    )
    tree(tmp_path, {"/etc/machine-id": "0123456789abcdef0123456789abcdef\n"})
    assert outcome("common/test_hygiene.py", "test_machine_id_empty", image=host).startswith(
        "failed"
    )


def test_one_shadow_parser_reports_a_locked_hash(tmp_path: Path) -> None:
    """`!$6$...` is locked (root's lock spec passes) and a hash (no account may carry one):
    both specs read /etc/shadow through facts.password_states, which names it a locked hash."""
    host = make(tmp_path, "master")
    tree(tmp_path, {"/etc/shadow": SHADOW.replace("root:*", "root:!$6$salt$hash")})
    assert outcome("common/test_hygiene.py", "test_root_password_locked", image=host) == "passed"
    result = outcome("common/test_accounts.py", "test_no_account_has_a_password", image=host)
    assert result.startswith("failed") and "locked hash" in result and "$6$" not in result
    tree(tmp_path, {"/etc/shadow": SHADOW.replace("root:*", "root:$6$salt$hash")})
    result = outcome("common/test_hygiene.py", "test_root_password_locked", image=host)
    assert result.startswith("failed") and "$6$" not in result
    for path in (
        spec_module("common/test_hygiene.py").__file__,
        spec_module("common/test_accounts.py").__file__,
    ):
        text = Path(str(path)).read_text()
        assert not re.search(r"[\"']/etc/shadow[\"']\s*\)", text), (
            f"{path} reads /etc/shadow itself"
        )


class Booted:
    """A booted host as the network and journal specs see it."""

    def __init__(self, flags: str = "BROADCAST,MULTICAST,UP,LOWER_UP", state: str = "up") -> None:
        self.flags, self.state = flags, state
        self.journal = True

    def interface(self, name: str) -> Any:
        return SimpleNamespace(exists=True, addresses=["10.0.2.15", "fe80::1"])

    def exists(self, command: str) -> bool:
        return self.journal

    def run(self, command: str) -> Any:
        if command.startswith("ip -o link"):
            out = f"2: eth0: <{self.flags}> mtu 1500 qdisc pfifo_fast state {self.state.upper()}\n"
        elif "operstate" in command:
            out = self.state + "\n"
        elif command.startswith("journalctl"):
            out = "Server listening on 0.0.0.0 port 22.\nServer listening on :: port 22.\n"
        else:
            raise AssertionError(f"unexpected command {command}")
        return SimpleNamespace(rc=0, stdout=out, stderr="")

    def check_output(self, command: str) -> str:
        return str(self.run(command).stdout)


def test_eth0_must_be_up_not_only_addressed() -> None:
    spec = "common/test_network.py"
    assert outcome(spec, "test_eth0_is_up_with_an_address", host=Booted()) == "passed"
    down = Booted("BROADCAST,MULTICAST", "down")  # an address kept, the link down
    assert outcome(spec, "test_eth0_is_up_with_an_address", host=down).startswith("failed")


def test_no_journalctl_is_a_failure_not_a_skip() -> None:
    spec = "aws-hvm/test_cloud_init.py"
    assert outcome(spec, "test_first_boot_does_not_restart_sshd", host=Booted()) == "passed"
    host = Booted()
    host.journal = False
    assert outcome(spec, "test_first_boot_does_not_restart_sshd", host=host).startswith("failed")


class Ec2:
    """The region's DescribeImages answering with whatever AKI registration also found."""

    def __init__(self, aki: str) -> None:
        self.aki = aki

    def describe_images(self, **kwargs: Any) -> dict[str, Any]:
        return {"Images": [{"ImageId": self.aki, "Name": "pv-grub-hd0_1.05-x86_64.gz"}]}


def ami(description: dict[str, Any], aki: str = "aki-919dcaf8") -> Any:
    target = SimpleNamespace(region="us-east-1", client=lambda name: Ec2(aki))
    return SimpleNamespace(description=description, target=target)


def test_pv_kernel_is_checked_against_aws_s_table() -> None:
    spec = "aws-paravirt/test_pv_ami.py"
    good = ami({"KernelId": "aki-919dcaf8"})
    assert outcome(spec, "test_kernel_is_the_regions_pv_grub", suitcase_ami=good) == "passed"
    # registration and its lookup agree on a wrong kernel (hd00, another version): still wrong
    wrong = ami({"KernelId": "aki-00000000"}, aki="aki-00000000")
    assert outcome(spec, "test_kernel_is_the_regions_pv_grub", suitcase_ami=wrong).startswith(
        "failed"
    )


HVM = {
    "State": "available",
    "Architecture": "x86_64",
    "VirtualizationType": "hvm",
    "RootDeviceType": "ebs",
    "RootDeviceName": "/dev/xvda",
    "EnaSupport": True,
    "SriovNetSupport": "simple",
    "BootMode": "legacy-bios",
    "ImdsSupport": "v2.0",
}


def test_boot_mode_is_checked_against_the_site_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The site file asks for legacy-bios; registration's settings say uefi (a bug in how they
    were loaded) and the AMI got uefi: comparing with those settings would pass."""
    monkeypatch.delenv("SUITCASE_AMI_BOOT_MODE", raising=False)
    monkeypatch.delenv("SUITCASE_AMI_IMDS_SUPPORT", raising=False)
    site_file = tmp_path / "site.yaml"
    site_file.write_text("region: us-east-1\n")
    run = SimpleNamespace(ctx=SimpleNamespace(site=Site(), site_file=site_file))
    spec = "aws-hvm/test_hvm_ami.py"
    assert (
        outcome(spec, "test_hvm_attributes", suitcase_ami=ami(HVM), suitcase_session=run)
        == "passed"
    )
    run.ctx.site = Site(ami_boot_mode="uefi")
    uefi = ami({**HVM, "BootMode": "uefi"})
    assert outcome(spec, "test_hvm_attributes", suitcase_ami=uefi, suitcase_session=run).startswith(
        "failed"
    )
    site_file.write_text("ami_boot_mode: uefi\nami_imds_support: ''\n")
    both = ami({k: v for k, v in {**HVM, "BootMode": "uefi"}.items() if k != "ImdsSupport"})
    assert outcome(spec, "test_hvm_attributes", suitcase_ami=both, suitcase_session=run) == "passed"


@pytest.mark.usefixtures("fake_home")
def test_a_spec_for_other_image_types_is_deselected_and_an_empty_set_fails(
    pytester: pytest.Pytester,
) -> None:
    _specs(pytester)
    spec = pytester.path / "specs" / "common" / "test_only.py"
    spec.write_text(
        textwrap.dedent("""
        import pytest

        @pytest.mark.suitcase_images("master")
        def test_master_only(suitcase_image):
            pass
    """)
    )
    result = pytester.runpytest("specs", "--image=aws-hvm", "--collect-only", "-q", *ARGS)
    assert result.ret == pytest.ExitCode.OK, result.stderr.str()
    out = result.stdout.str()
    assert "test_master_only" not in out and "deselected" in out, out
    spec.write_text(
        textwrap.dedent("""
        import pytest

        @pytest.mark.parametrize("path", [])
        def test_nothing(suitcase_image, path):
            pass
    """)
    )
    result = pytester.runpytest("specs", "--image=aws-hvm", "--collect-only", "-q", *ARGS)
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()
    assert "empty parameter set" in result.stderr.str()
