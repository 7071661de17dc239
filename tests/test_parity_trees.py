"""Parity on small fake trees: the whole of /etc and /boot, accounts and keys, minus glob deltas."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path

import pytest

from suitcase.config import Paths
from suitcase.errors import ConfigError
from suitcase.parity import Delta, Rules, compare, contents, matches

BUILD_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBuildKeyBuildKeyBuildKeyBuildKey build"
MASTER = {
    "etc/passwd": "root:x:0:0:root:/root:/bin/bash\n",
    "etc/shadow": "root:*:19000:0:99999:7:::\n",
    "etc/group": "root:x:0:\n",
    "etc/ssh/sshd_config": "Include /etc/ssh/sshd_config.d/*.conf\n",
    "etc/ssh/sshd_config.d/01-suitcase.conf": "PermitRootLogin prohibit-password\n",
    "boot/extlinux/extlinux.conf": "APPEND root=LABEL=root\n",
    "boot/initrd.img-6.1.0": "initrd",
    "root/.ssh/authorized_keys": BUILD_KEY + "\n",
}
RULES = Rules(
    trees=["/etc", "/boot"],
    files=[],
    ignore=["/etc/ld.so.cache"],
    deltas={
        "aws-hvm": Delta(
            ["/boot/extlinux/extlinux.conf", "/boot/initrd.img-*"],
            set(),
            ["/root/.ssh/authorized_keys"],
        ),
        "vagrant": Delta(
            ["/etc/passwd", "/etc/shadow", "/etc/group", "/home/vagrant/**"],
            {"vagrant"},
            ["/root/.ssh/authorized_keys"],
        ),
    },
)


def make(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def differences(tmp_path: Path, image: str, change: Mapping[str, str | None]) -> list[str]:
    master = make(tmp_path / "master", MASTER)
    derived = tmp_path / "derived"
    shutil.copytree(master, derived, symlinks=True)
    (derived / "root/.ssh/authorized_keys").write_text("\n")  # every derived image drops the key
    for name, text in change.items():
        if text is None:
            (derived / name).unlink()
        else:
            make(derived, {name: text})
    packages = {"openssh-server": "1:9.2"}
    return compare(
        contents(master, RULES, packages), contents(derived, RULES, packages), image, RULES
    )


def test_a_clean_derived_image_holds_parity(tmp_path: Path) -> None:
    assert differences(tmp_path, "aws-hvm", {"boot/extlinux/extlinux.conf": "APPEND x\n"}) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"etc/ssh/sshd_config.d/50-cloud.conf": "PasswordAuthentication yes\n"},
            "/etc/ssh/sshd_config.d/50-cloud.conf is not in the master",
        ),
        (
            {"etc/ssh/sshd_config.d/01-suitcase.conf": "PermitRootLogin yes\n"},
            "/etc/ssh/sshd_config.d/01-suitcase.conf differs",
        ),
        ({"etc/ssh/sshd_config.d/01-suitcase.conf": None}, "01-suitcase.conf is missing"),
        (
            {"etc/shadow": "root:$6$salt$secrethash:19000:0:99999:7:::\n"},
            "user root (/etc/shadow) is 'password hash:19000",
        ),
        ({"root/.ssh/authorized_keys": "ssh-rsa AAAAB3Nza other\n"}, "1 key(s) added"),
        ({"root/.ssh/authorized_keys2": "ssh-rsa AAAAB3Nza other\n"}, "authorized_keys2"),
        (
            {
                "etc/passwd": "root:x:0:0:root:/root:/bin/bash\nu:x:1000:1000::/home/u:/bin/sh\n",
                "home/u/.ssh/authorized_keys": "ssh-rsa AAAAB3Nza other\n",
            },
            "/home/u/.ssh/authorized_keys: 1 key(s) added",
        ),
        (
            {"boot/grub/grub.cfg": "linux /vmlinuz root=/dev/sda1\n"},
            "/boot/grub is not in the master",
        ),
    ],
)
def test_a_drift_fails_parity(tmp_path: Path, change: dict[str, str | None], expected: str) -> None:
    found = differences(tmp_path, "aws-hvm", change)
    assert any(expected in line for line in found), found
    assert not any("secrethash" in line or "$6$" in line for line in found), "a hash was printed"


def test_mode_and_owner_count(tmp_path: Path) -> None:
    master = make(tmp_path / "master", MASTER)
    derived = tmp_path / "derived"
    shutil.copytree(master, derived)
    (derived / "etc/ssh/sshd_config").chmod(0o666)
    found = compare(contents(master, RULES, {}), contents(derived, RULES, {}), "aws-hvm", RULES)
    assert found == ["/etc/ssh/sshd_config differs from the master (not a declared aws-hvm delta)"]


def test_vagrant_may_add_its_user_and_keys_but_not_another(tmp_path: Path) -> None:
    vagrant = {
        "etc/passwd": MASTER["etc/passwd"] + "vagrant:x:1000:1000::/home/vagrant:/bin/bash\n",
        "etc/shadow": MASTER["etc/shadow"] + "vagrant:*:19000:0:99999:7:::\n",
        "etc/group": MASTER["etc/group"] + "vagrant:x:1000:\n",
        "home/vagrant/.ssh/authorized_keys": "ssh-rsa AAAAB3Nza insecure\n",
    }
    assert differences(tmp_path / "a", "vagrant", vagrant) == []
    vagrant["etc/shadow"] = "root:$6$x$y:19000:0:99999:7:::\nvagrant:*:19000:0:99999:7:::\n"
    assert differences(tmp_path / "b", "vagrant", vagrant) == [
        "user root (/etc/shadow) is 'password hash:19000:0:99999:7:::' in vagrant "
        "but 'password none:19000:0:99999:7:::' in the master"
    ]


def test_globs() -> None:
    assert matches("/boot/initrd.img-6.1.0-13-amd64", ["/boot/initrd.img-*"])
    assert not matches("/boot/x/initrd.img-6.1", ["/boot/initrd.img-*"])
    assert matches("/home/vagrant/.ssh/authorized_keys", ["/home/vagrant/**"])
    assert matches("/etc/rc.d/rc3.d/S50cloud-init", ["/etc/rc.d/rc*.d/[SK]??cloud-*"])


def test_the_shipped_rules_load_and_a_bad_file_is_a_config_error(tmp_path: Path) -> None:
    rules = Rules.load(Paths.default())
    assert rules.trees == ["/etc", "/boot"]
    assert "/root/.ssh/authorized_keys" in rules.deltas["vagrant"].fewer_keys
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "parity.yaml").write_text("trees: [etc]\n")
    with pytest.raises(ConfigError, match="absolute paths"):
        Rules.load(Paths(tmp_path))
    (tmp_path / "specs" / "parity.yaml").write_text("deltas: [1, 2]\n")
    with pytest.raises(ConfigError, match="not a valid parity file"):
        Rules.load(Paths(tmp_path))


def test_parity_never_holds_on_nothing(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    empty = contents(tmp_path / "a", RULES, {})
    found = compare(empty, contents(tmp_path / "b", RULES, {}), "aws-hvm", RULES)
    assert any("nothing to compare" in line for line in found)
