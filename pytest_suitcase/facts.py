"""Facts specs read from a testinfra host, the same way on a booted VM and on a mounted image."""

from __future__ import annotations

import ipaddress
import re
import shlex
import subprocess
from typing import Any

import pytest

# Where each boot loader keeps kernel command lines, in the order they are looked at. BLS
# entries (EL8/9: /boot/loader/entries/*.conf, `options` lines) come before grub2's grub.cfg,
# which on those releases only says `blscfg`; grub legacy is EL6's (and PV-GRUB's) loader.
BLS_ENTRIES = "/boot/loader/entries"
BOOT_CONFIGS = (
    ("/boot/extlinux/extlinux.conf", r"^\s*APPEND\s+(.*)$"),
    (BLS_ENTRIES, r"^options\s+(.*)$"),
    ("/boot/grub2/grub.cfg", r"^\s*linux(?:16|efi)?\s+\S+\s+(.*)$"),
    ("/boot/grub/grub.cfg", r"^\s*linux(?:16|efi)?\s+\S+\s+(.*)$"),
    ("/boot/grub/grub.conf", r"^\s*kernel\s+\S+\s+(.*)$"),
    ("/boot/grub/menu.lst", r"^\s*kernel\s+\S+\s+(.*)$"),
)
GRUBENV = ("/boot/grub2/grubenv", "/boot/grub/grubenv")


class NoKernelLine(AssertionError):
    """No boot loader configuration of the image holds a kernel command line."""


# Exit code of the shell snippets below when what they look at does not exist; anything else
# that is not 0 (a broken sudo, an unreadable file, a missing tool) fails the spec.
MISSING = 99


def _fail(message: str) -> None:
    __tracebackhide__ = True
    pytest.fail(message, pytrace=False)


def _checked(host: Any, command: str, what: str) -> str | None:
    """stdout of `command`, None when it exits MISSING; any other failure fails the spec."""
    __tracebackhide__ = True
    result = host.run(command)
    if result.rc == MISSING:
        return None
    if result.rc != 0:
        detail = (str(result.stderr).strip() or str(result.stdout).strip())[:300]
        _fail(f"cannot read {what} (exit {result.rc}): {detail or 'no output'}")
    return str(result.stdout)


def read(host: Any, path: str) -> str | None:
    """File content (root-only files through sudo), None when there is no such file.

    A file that exists but cannot be read (permissions, a broken sudo, a folder) fails the spec
    naming the path: a check must never run on an empty string it mistook for the file.
    """
    __tracebackhide__ = True
    q = shlex.quote(path)
    return _checked(host, f"if [ ! -e {q} ]; then exit {MISSING}; fi; cat -- {q}", path)


def read_required(host: Any, path: str) -> str:
    """File content; a missing file fails the spec like an unreadable one."""
    __tracebackhide__ = True
    text = read(host, path)
    if text is None:
        _fail(f"{path} does not exist")
    return str(text)


def exists(host: Any, path: str) -> bool:
    """Whether a path (or a symlink, dangling or not) exists; an error fails the spec instead
    of answering "no" (testinfra's `file().exists` says False when sudo itself fails)."""
    __tracebackhide__ = True
    q = shlex.quote(path)
    out = _checked(host, f"if [ -e {q} ] || [ -L {q} ]; then echo yes; else echo no; fi", path)
    if out is None or out.strip() not in ("yes", "no"):
        _fail(f"cannot tell whether {path} exists (answer {out!r})")
    return str(out).strip() == "yes"


def tree(host: Any, path: str, depth: int | None = None) -> list[tuple[str, int, str]] | None:
    """(type, size, path relative to `path`) of everything below a folder, None when it is absent.

    Types are find's %y letters (f file, d folder, l symlink, ...). `find` failing fails the spec.
    """
    __tracebackhide__ = True
    q = shlex.quote(path)
    limit = f" -maxdepth {depth}" if depth is not None else ""
    out = _checked(
        host,
        f"if [ ! -e {q} ]; then exit {MISSING}; fi; "
        f"find {q}/ -mindepth 1{limit} -printf '%y %s %P\\n'",
        path,
    )
    if out is None:
        return None
    entries = []
    for line in out.splitlines():
        kind, size, name = [*line.split(" ", 2), "", ""][:3]
        if kind and size.isdigit():
            entries.append((kind, int(size), name))
    return sorted(entries, key=lambda e: e[2])


def file_type(host: Any, path: str) -> str | None:
    """find's %y letter of a path, not following a symlink (f, d, l, ...); None when absent."""
    __tracebackhide__ = True
    q = shlex.quote(path)
    out = _checked(
        host,
        f"if [ ! -e {q} ] && [ ! -L {q} ]; then exit {MISSING}; fi; "
        f"find {q} -maxdepth 0 -printf %y",
        path,
    )
    return None if out is None else out.strip()


def link_target(host: Any, path: str) -> str | None:
    """Where a symlink leads inside the image, every link resolved (`readlink -m`: the target
    need not exist); None when `path` is no symlink. `readlink` failing fails the spec."""
    __tracebackhide__ = True
    q = shlex.quote(path)
    out = _checked(host, f"if [ ! -L {q} ]; then exit {MISSING}; fi; readlink -m -- {q}", path)
    if out is None:
        return None
    if not out.strip().startswith("/"):
        _fail(f"cannot resolve the link {path} (readlink said {out.strip()!r})")
    return out.strip()


def glob(host: Any, pattern: str) -> list[str]:
    """Paths matching a shell glob (none: []); the shell failing fails the spec."""
    __tracebackhide__ = True
    script = f'for f in {pattern}; do if [ -e "$f" ] || [ -L "$f" ]; then echo "$f"; fi; done'
    return sorted((_checked(host, script, pattern) or "").splitlines())


def _bls_text(host: Any) -> str:
    """The `options` of every BLS entry but rescue ones, `$kernelopts` (EL8) taken from grubenv."""
    listing = glob(host, f"{BLS_ENTRIES}/*.conf")
    env: dict[str, str] = {}
    for path in GRUBENV:
        for line in (read(host, path) or "").splitlines():
            name, sep, value = line.partition("=")
            if sep and not name.startswith("#"):
                env.setdefault(name.strip(), value.strip())
    text = "".join(
        read(host, p) or "" for p in sorted(listing) if "rescue" not in p.rsplit("/", 1)[-1]
    )
    return re.sub(r"\$\{?(\w+)\}?", lambda m: env.get(m.group(1), m.group(0)), text)


def _config_lines(host: Any, path: str, pattern: str) -> list[str]:
    text = _bls_text(host) if path == BLS_ENTRIES else read(host, path) or ""
    return [m.group(1).strip() for m in re.finditer(pattern, text, re.M)]


def kernel_lines(host: Any, config: str | None = None) -> list[str]:
    """The kernel command lines of the image's boot loader (the first configuration holding any).

    Raises NoKernelLine when there is none, so a spec about kernel arguments can never pass
    on an image whose boot configuration it failed to find.
    """
    searched = []
    for path, pattern in BOOT_CONFIGS:
        if config is not None and path != config:
            continue
        searched.append(path)
        lines = _config_lines(host, path, pattern)
        if lines:
            return lines
    raise NoKernelLine(f"no kernel command line found in {', '.join(searched) or config}")


def all_kernel_lines(host: Any) -> dict[str, list[str]]:
    """Every boot loader configuration present with its kernel lines (an entry in any of them
    can be booted, so specs about the root device look at all of them). NoKernelLine if none."""
    found = {}
    for path, pattern in BOOT_CONFIGS:
        lines = _config_lines(host, path, pattern)
        if lines:
            found[path] = lines
    if not found:
        raise NoKernelLine(
            f"no kernel command line found in {', '.join(p for p, _ in BOOT_CONFIGS)}"
        )
    return found


def run_as_login_user(host: Any, command: str) -> Any:
    """Run `command` as the SSH login user, without the sudo testinfra wraps commands in."""
    backend = host.backend
    saved = backend.sudo
    backend.sudo = False
    try:
        return host.run(command)
    finally:
        backend.sudo = saved


def sshd_options(host: Any, name: str) -> list[str]:
    """Every value an sshd_config keyword is given, in sshd's reading order (Include files
    inline, nothing after the first Match): sshd takes the first for most keywords, all of them
    for list keywords such as HostKey."""
    values: list[str] = []

    def walk(path: str, depth: int = 0) -> bool:
        """Collect `name`'s values from `path`; False once a Match block starts."""
        text = read_required(host, path) if depth == 0 else read(host, path) or ""
        for line in text.splitlines():
            words = line.split()
            if not words or words[0].startswith("#"):
                continue
            if words[0].lower() == "include" and depth < 3:
                for pattern in words[1:]:
                    if not pattern.startswith("/"):
                        pattern = "/etc/ssh/" + pattern
                    for included in glob(host, pattern):
                        if not walk(included, depth + 1):
                            return False
            elif words[0].lower() == "match":
                return False  # options after Match are conditional: stop like sshd does
            elif words[0].lower() == name.lower() and len(words) > 1:
                values.append(words[1])
        return True

    walk("/etc/ssh/sshd_config")
    return values


def sshd_option(host: Any, name: str) -> str | None:
    """The effective value of an sshd_config keyword: the first one wins, Include files inline."""
    values = sshd_options(host, name)
    return values[0] if values else None


def initramfs_modules(host: Any) -> dict[str, set[str]]:
    """Kernel module names inside each initramfs in /boot (a lister failing fails the spec)."""
    __tracebackhide__ = True
    found: dict[str, set[str]] = {}
    for image in glob(host, "/boot/initrd.img-* /boot/initramfs-*.img"):
        if "kdump" in image or "rescue" in image:
            continue
        lister = "lsinitramfs" if "initrd.img-" in image else "lsinitrd"
        listing = _checked(host, f"{lister} {shlex.quote(image)}", image) or ""
        names = re.findall(r"/([A-Za-z0-9_-]+)\.ko(?:\.[a-z]+)?$", listing, re.M)
        found[image] = {n.replace("-", "_") for n in names}
    return found


def fstab_entry(host: Any, mount_point: str) -> list[str] | None:
    """The fields of the fstab line that mounts `mount_point` (a missing fstab fails)."""
    for line in read_required(host, "/etc/fstab").splitlines():
        words = line.split()
        if len(words) >= 3 and not words[0].startswith("#") and words[1] == mount_point:
            return words
    return None


def fstab_root_type(host: Any) -> str | None:
    """The file system type fstab says it mounts at / (what the image claims, not what it is)."""
    entry = fstab_entry(host, "/")
    return entry[2] if entry else None


def authorized_keys(host: Any, user_home: str) -> str | None:
    """The raw authorized_keys of a home folder, or None if absent (unreadable fails)."""
    return read(host, f"{user_home}/.ssh/authorized_keys")


def passwd(host: Any) -> list[list[str]]:
    """/etc/passwd as lists of its seven fields (a missing or unreadable file fails)."""
    rows = []
    for line in read_required(host, "/etc/passwd").splitlines():
        parts = line.split(":")
        if line.strip() and not line.startswith("#"):
            rows.append([*parts, *[""] * 7][:7])
    if not any(row[0] == "root" for row in rows):
        _fail("/etc/passwd has no root entry: not an account database")
    return rows


def login_users(host: Any) -> list[str]:
    """Accounts with a UID from login.defs' UID_MIN (1000; EL6: 500) below nobody's 65534."""
    first = 1000
    for line in (read(host, "/etc/login.defs") or "").splitlines():
        words = line.split()
        if len(words) == 2 and words[0] == "UID_MIN" and words[1].isdigit():
            first = int(words[1])
    return [r[0] for r in passwd(host) if r[2].isdigit() and first <= int(r[2]) < 65534]


def uid0_accounts(host: Any) -> list[str]:
    """Every account whose UID is 0 (or not a number, which some tools read as 0)."""
    return [r[0] for r in passwd(host) if not r[2].isdigit() or int(r[2]) == 0]


def password_state(field: str) -> str:
    """The state of one /etc/shadow password field, never the hash: 'none' (no usable password:
    `*`, `!`, `!!`, `LK`, `NP`, `x`), 'empty' (a login without any password), 'locked hash' (a
    hash behind `!`: locked now, a working password again after `passwd -u`), 'hash'."""
    bare = field.lstrip("!")
    if field == "":
        return "empty"
    if bare == "" or bare.startswith("*") or bare in ("x", "LK", "NP"):
        return "none"
    return "locked hash" if field.startswith("!") else "hash"


def password_states(host: Any) -> dict[str, str]:
    """password_state() per account of /etc/shadow (the one shadow parser specs use)."""
    states: dict[str, str] = {}
    for line in read_required(host, "/etc/shadow").splitlines():
        name, _, rest = line.partition(":")
        if not name or line.startswith("#"):
            continue
        states.setdefault(name, password_state(rest.split(":", 1)[0]))
    return states


def root_filesystem_probe(host: Any) -> dict[str, str]:
    """blkid's view of the root file system's superblock (TYPE, UUID, LABEL, ...).

    A mounted image (testinfra's chroot backend) is probed from the build host, where its loop
    device is; a booted system probes its own root device.
    """
    __tracebackhide__ = True
    backend = getattr(host, "backend", None)
    if getattr(backend, "NAME", None) == "chroot":
        root = str(getattr(backend, "name", ""))
        source = subprocess.run(
            ["findmnt", "-n", "-o", "SOURCE", "--mountpoint", root],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        if not source:
            _fail(f"cannot find the device mounted at {root}")
        probe = subprocess.run(
            ["blkid", "-p", "-o", "export", source], capture_output=True, text=True, check=False
        )
        text = probe.stdout if probe.returncode == 0 else None
        what = f"{source} (the image's root)"
    else:
        text = _checked(
            host,
            "dev=$(findmnt -n -o SOURCE /) || "
            "dev=$(awk '$2 == \"/\" {print $1}' /proc/mounts | tail -1); "
            'blkid -p -o export "$dev"',
            "the root file system's ids",
        )
        what = "the root device"
    if not text:
        _fail(f"blkid found no file system on {what}")
    return dict(line.split("=", 1) for line in str(text).splitlines() if "=" in line)


def root_filesystem_ids(host: Any) -> dict[str, str]:
    """The root file system's real UUID and LABEL (keys present only when set)."""
    ids = root_filesystem_probe(host)
    return {k: v for k, v in ids.items() if k in ("UUID", "LABEL") and v}


def root_filesystem_type(host: Any) -> str:
    """The type of the file system that really is root: a mounted image's from its superblock
    (blkid on the build host's loop device), a booted system's from its mount table."""
    __tracebackhide__ = True
    backend = getattr(host, "backend", None)
    if getattr(backend, "NAME", None) == "chroot":
        kind = root_filesystem_probe(host).get("TYPE", "")
    else:
        kind = _checked(host, "findmnt -n -o FSTYPE /", "the root file system's type") or ""
        kind = kind.strip()
    if not kind:
        _fail("cannot tell the root file system's type")
    return kind


def names_root(spec: str, ids: dict[str, str]) -> bool:
    """Whether a `LABEL=x`/`UUID=x` device spec (as in fstab or root=) is the root file system."""
    kind, sep, value = spec.partition("=")
    return bool(sep) and kind in ("UUID", "LABEL") and ids.get(kind) == value.strip("\"'")


def kernel_root(line: str) -> str | None:
    """The `root=` value of a kernel command line (the last one wins, as in the kernel)."""
    roots = [w[len("root=") :] for w in line.split() if w.startswith("root=")]
    return roots[-1] if roots else None


def build_network_address(text: str) -> str | None:
    """The first address of QEMU's user network (10.0.2.0/24, the build's) in a text."""
    for word in re.findall(r"\b10\.0\.2\.\d{1,3}\b", text):
        try:
            if ipaddress.ip_address(word) in ipaddress.ip_network("10.0.2.0/24"):
                return str(word)
        except ValueError:
            continue
    return None


def cloud_datasources(host: Any) -> list[str] | None:
    """cloud-init's effective `datasource_list`: cloud.cfg, then cloud.cfg.d/*.cfg in name order,
    the last file that sets it wins (None: no file sets it, cloud-init's built-in list)."""
    import yaml

    __tracebackhide__ = True
    found = None
    for path in ["/etc/cloud/cloud.cfg", *glob(host, "/etc/cloud/cloud.cfg.d/*.cfg")]:
        text = read(host, path)
        if text is None:
            continue
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            _fail(f"{path} is not YAML cloud-init can read: {exc}")
        if isinstance(data, dict) and "datasource_list" in data:
            value = data["datasource_list"]
            found = [str(v) for v in value] if isinstance(value, list) else [str(value)]
    return found


def size(host: Any, path: str) -> int | None:
    """Size in bytes of a file (None when absent; `stat` failing fails the spec)."""
    __tracebackhide__ = True
    q = shlex.quote(path)
    out = _checked(host, f"if [ ! -e {q} ]; then exit {MISSING}; fi; stat -L -c %s {q}", path)
    if out is None:
        return None
    if not out.strip().isdigit():
        _fail(f"cannot tell the size of {path} (stat said {out.strip()!r})")
    return int(out.strip())


def world_writable(host: Any, folder: str) -> list[str]:
    """Paths below `folder` anyone may write: not symlinks (always 0777), not sticky folders."""
    __tracebackhide__ = True
    q = shlex.quote(folder)
    out = _checked(
        host,
        f"if [ ! -d {q} ]; then exit {MISSING}; fi; "
        f"find {q}/ ! -type l -perm -0002 ! \\( -type d -perm -1000 \\) -print",
        folder,
    )
    if out is None:
        _fail(f"{folder} does not exist")
    return sorted(p.rstrip("/") for p in str(out).splitlines())


# sudoers(5): `#include`/`#includedir` are directives, not comments (as `@include...`); `#` followed
# by digits where a user goes is a uid (`#1000 ALL=(ALL) ALL` is a rule); any other `#` starts a
# comment. Files in an included folder are read in name order, except names ending in `~` or
# holding a `.`; a relative include is relative to the including file's folder.
SUDO_INCLUDE = re.compile(r"^[#@](include|includedir)\s+(\S.*?)\s*$")
SUDO_COMMENT = re.compile(r"(?<!\\)#(?!\d).*$")


def sudoers(host: Any, path: str = "/etc/sudoers") -> list[tuple[str, str]]:
    """(file, logical line) of every sudoers line sudo reads: comments dropped, continuation
    lines joined, `@include`/`#include` and `@includedir`/`#includedir` followed in place.
    A missing /etc/sudoers or included file fails the spec (sudo itself refuses to run)."""
    __tracebackhide__ = True
    found: list[tuple[str, str]] = []

    def walk(name: str, depth: int) -> None:
        if depth > 8:
            _fail(f"sudoers includes nest deeper than 8 levels at {name}")
        text = read_required(host, name)
        for raw in re.sub(r"\\\n", " ", text).splitlines():
            line = raw.strip()
            include = SUDO_INCLUDE.match(line)
            if include:
                kind, target = include.groups()
                target = target.strip('"')
                if not target.startswith("/"):
                    target = name.rsplit("/", 1)[0] + "/" + target
                if kind == "include":
                    walk(target, depth + 1)
                else:
                    entries = tree(host, target, depth=1) or []
                    for kind_, _, entry in entries:
                        if kind_ in ("f", "l") and not entry.endswith("~") and "." not in entry:
                            walk(f"{target.rstrip('/')}/{entry}", depth + 1)
                continue
            line = SUDO_COMMENT.sub("", line).strip()
            if line:
                found.append((name, line))

    walk(path, 0)
    return found


def sudo_rules(lines: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The user specifications among sudoers lines (Defaults and aliases dropped)."""
    directive = re.compile(r"^(Defaults\b|[A-Z][A-Za-z]*_Alias\b)")
    return [(f, line) for f, line in lines if not directive.match(line)]


def boot_kernel_versions(host: Any) -> list[str]:
    """The kernel versions the image's boot loader boots (every entry of every configuration):
    each kernel image a menu names, links resolved in the image, `vmlinuz-<version>`."""
    __tracebackhide__ = True
    pattern = re.compile(r"^\s*(?:LINUX|KERNEL|linux(?:16|efi)?|kernel)\s+(\S+)", re.M | re.I)
    images = []
    for path, _ in BOOT_CONFIGS:
        if path == BLS_ENTRIES:
            texts = [read(host, p) or "" for p in glob(host, f"{BLS_ENTRIES}/*.conf")]
        else:
            texts = [read(host, path) or ""]
        for text in texts:
            images += pattern.findall(text)
    if not images:
        raise NoKernelLine("no boot loader entry names a kernel image")
    versions = []
    for image in dict.fromkeys(images):
        candidates = [image] if image.startswith("/boot/") else [image, f"/boot{image}"]
        script = "; ".join(
            f"if [ -e {shlex.quote(c)} ]; then readlink -f -- {shlex.quote(c)}; exit 0; fi"
            for c in candidates
        )
        real = _checked(host, f"{script}; exit {MISSING}", image)
        if real is None:
            _fail(f"the boot loader names {image}, which does not exist")
        base = str(real).strip().rsplit("/", 1)[-1]
        if not base.startswith("vmlinuz-"):
            _fail(f"cannot tell the kernel version of {image} ({base})")
        versions.append(base[len("vmlinuz-") :])
    return sorted(set(versions))


def kernel_module_present(host: Any, version: str, module: str) -> bool:
    """Whether kernel `version` has `module`: a .ko file in its own /lib/modules tree (never
    another kernel's) or built in (modules.builtin). `find` failing fails the spec."""
    __tracebackhide__ = True
    folder = f"/lib/modules/{version}"
    entries = tree(host, folder)
    if entries is None:
        _fail(f"{folder} does not exist: the booted kernel has no modules")
    names = {name.rsplit("/", 1)[-1] for kind, _, name in entries or [] if kind == "f"}
    if any(re.fullmatch(rf"{re.escape(module)}\.ko(\.[a-z]+)?", n) for n in names):
        return True
    builtin = read(host, f"{folder}/modules.builtin") or ""
    return any(
        line.rsplit("/", 1)[-1] == f"{module}.ko" for line in builtin.split() if line.strip()
    )


def cloud_init_reporting(caps: Any) -> tuple[bool, str]:
    """How the OS's cloud-init reports its run (its capability table's version): whether
    `cloud-init status` exists (from 17.2), and the folder of result.json and status.json
    (/run/cloud-init from 17.x; 0.7.5, the CentOS 6/7 extras' one, writes them only to
    /var/lib/cloud/data, and EL6 has no /run/cloud-init at all)."""
    modern = bool(caps.cloud_init_at_least("17.2"))
    return modern, "/run/cloud-init" if modern else "/var/lib/cloud/data"
