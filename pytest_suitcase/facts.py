"""Facts specs read from a testinfra host, the same way on a booted VM and on a mounted image."""

from __future__ import annotations

import re
import shlex
from typing import Any

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


def read(host: Any, path: str) -> str:
    """File content, or "" when the file does not exist (root-only files through sudo)."""
    result = host.run("cat " + shlex.quote(path))
    return str(result.stdout) if result.rc == 0 else ""


def _bls_text(host: Any) -> str:
    """The `options` of every BLS entry but rescue ones, `$kernelopts` (EL8) taken from grubenv."""
    listing = host.run(f"ls -1 {BLS_ENTRIES}/*.conf 2>/dev/null").stdout.split()
    env: dict[str, str] = {}
    for path in GRUBENV:
        for line in read(host, path).splitlines():
            name, sep, value = line.partition("=")
            if sep and not name.startswith("#"):
                env.setdefault(name.strip(), value.strip())
    text = "".join(read(host, p) for p in sorted(listing) if "rescue" not in p.rsplit("/", 1)[-1])
    return re.sub(r"\$\{?(\w+)\}?", lambda m: env.get(m.group(1), m.group(0)), text)


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
        text = _bls_text(host) if path == BLS_ENTRIES else read(host, path)
        lines = [m.group(1).strip() for m in re.finditer(pattern, text, re.M)]
        if lines:
            return lines
    raise NoKernelLine(f"no kernel command line found in {', '.join(searched) or config}")


def sshd_option(host: Any, name: str) -> str | None:
    """The effective value of an sshd_config keyword: the first one wins, Include files inline."""

    def walk(path: str, depth: int = 0) -> str | None:
        for line in read(host, path).splitlines():
            words = line.split()
            if not words or words[0].startswith("#"):
                continue
            if words[0].lower() == "include" and depth < 3:
                for pattern in words[1:]:
                    if not pattern.startswith("/"):
                        pattern = "/etc/ssh/" + pattern
                    listing = host.run(f"ls -1 {pattern} 2>/dev/null").stdout.split()
                    for included in sorted(listing):
                        value = walk(included, depth + 1)
                        if value is not None:
                            return value
            elif words[0].lower() == "match":
                return None  # options after Match are conditional: stop like sshd does
            elif words[0].lower() == name.lower() and len(words) > 1:
                return words[1]
        return None

    return walk("/etc/ssh/sshd_config")


def initramfs_modules(host: Any) -> dict[str, set[str]]:
    """Kernel module names inside each initramfs in /boot."""
    found: dict[str, set[str]] = {}
    images = host.run("ls -1 /boot/initrd.img-* /boot/initramfs-*.img 2>/dev/null").stdout.split()
    for image in images:
        if "kdump" in image or "rescue" in image:
            continue
        lister = "lsinitramfs" if "initrd.img-" in image else "lsinitrd"
        listing = host.run(f"{lister} {shlex.quote(image)}").stdout
        names = re.findall(r"/([A-Za-z0-9_-]+)\.ko(?:\.[a-z]+)?$", listing, re.M)
        found[image] = {n.replace("-", "_") for n in names}
    return found


def fstab_entry(host: Any, mount_point: str) -> list[str] | None:
    """The fields of the fstab line that mounts `mount_point`."""
    for line in read(host, "/etc/fstab").splitlines():
        words = line.split()
        if len(words) >= 3 and not words[0].startswith("#") and words[1] == mount_point:
            return words
    return None


def root_filesystem(host: Any) -> str | None:
    """The filesystem type fstab mounts at /."""
    entry = fstab_entry(host, "/")
    return entry[2] if entry else None


def authorized_keys(host: Any, user_home: str) -> str | None:
    """The raw authorized_keys of a home folder, or None if absent."""
    path = f"{user_home}/.ssh/authorized_keys"
    if host.run("test -e " + shlex.quote(path)).rc != 0:
        return None
    return read(host, path)


def login_users(host: Any) -> list[str]:
    """Accounts with a UID of 1000 or more (people, not system users), nobody excepted."""
    users = []
    for line in read(host, "/etc/passwd").splitlines():
        parts = line.split(":")
        if len(parts) > 2 and parts[2].isdigit() and 1000 <= int(parts[2]) < 65534:
            users.append(parts[0])
    return users
