"""Reach a built image: boot it in QEMU behind a throw-away overlay, or mount it read-only.

Both are context managers that always tear down (VM killed, mounts and loop devices released),
on failure and on Ctrl-C too. Neither ever writes to the artifact itself unless asked to.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import re
import shlex
import socket
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from suitcase import artifact, netns
from suitcase.command import dies_with_us, require, run
from suitcase.errors import BootTimeout, BuildError, ToolError
from suitcase.keys import KeyPair, connect_options, ensure_key_pair
from suitcase.redact import redact_text
from suitcase.safety import UnsafeFolder, remove_tree_quietly, write_beneath
from suitcase.sweep import Record, kill_recorded, scratch_dir, stale_vm_records, wait_gone

#: Where Debian's vagrant package keeps the well-known insecure key pair (not copied into the repo).
VAGRANT_KEY_GLOBS = (
    "/usr/share/rubygems-integration/all/gems/vagrant-*/keys/vagrant",
    "/opt/vagrant/embedded/gems/gems/vagrant-*/keys/vagrant",
)


@dataclass(frozen=True)
class Login:
    """How to reach a booted VM over SSH."""

    user: str
    port: int
    key: Path
    #: QEMU's pid when the forward listens in its own network namespace (suitcase.netns)
    netns_pid: int | None = None

    @property
    def address(self) -> str:
        where = "127.0.0.1" if self.netns_pid is None else "the VM's own 127.0.0.1"
        return f"{where}:{self.port}"

    def connect(self, timeout: float) -> socket.socket:
        """A connection to the VM's sshd: through its own network, or 127.0.0.1:`port`."""
        if self.netns_pid is not None:
            return netns.connect(self.netns_pid, self.port, timeout)
        return socket.create_connection(("127.0.0.1", self.port), timeout)


def vagrant_insecure_key() -> Path:
    for pattern in VAGRANT_KEY_GLOBS:
        found = sorted(Path("/").glob(pattern.lstrip("/")))
        if found:
            return found[-1]
    raise ToolError("the Vagrant insecure key was not found; install Debian's vagrant package")


def vm_cpus(sharing: int, cores: int | None = None) -> int:
    """vCPUs for one of `sharing` VMs that run at once: the host's cores split between them.

    Under TCG every vCPU is a host thread: three 2-vCPU VMs on 2 cores are 6 threads fighting
    for 2 cores (and for TCG's translation locks), which is why -n 3 verified only x1.19 faster
    than -n 0. One VM alone keeps every core.

    >>> vm_cpus(3, cores=2), vm_cpus(1, cores=2), vm_cpus(2, cores=8)
    (1, 2, 4)
    """
    available = cores if cores is not None else len(os.sched_getaffinity(0))
    return max(1, available // max(1, sharing))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


#: written into a verification copy of an AWS image, never into the image: a cidata seed is
#: read at this boot only (the shipped image lists only Ec2, so no attached volume can configure
#: an instance)
NOCLOUD_CFG = "etc/cloud/cloud.cfg.d/99-suitcase-verify.cfg"
NOCLOUD = "# Suitcase verification boot only\ndatasource_list: [ NoCloud, None ]\n"


def _with_nocloud(disk: Path, info: dict[str, object], work: Path) -> Path:
    """A raw copy of `disk` in `work` whose cloud-init reads the NoCloud seed (sparse: seconds)."""
    copy = work / "verify.raw"
    if info.get("format") == "raw":
        run(["cp", "--sparse=always", "--", str(disk), str(copy)])
    else:
        artifact.convert(disk, copy, "raw")
    with mounted(copy, writable=True, keep_dir=work) as root:
        try:
            write_beneath(root, NOCLOUD_CFG, NOCLOUD)
        except (UnsafeFolder, OSError) as exc:
            raise BuildError(f"{disk.name}: cannot add the verification's NoCloud: {exc}") from None
    return copy


def _seed_iso(folder: Path, public_key: str) -> Path:
    """A cloud-init NoCloud seed carrying a throw-away key as the instance's public key.

    The key arrives as meta-data `public-keys`, as EC2's key pair does, so cloud-init installs it
    for root exactly as it would on an instance (the images set disable_root: false).
    """
    meta = {
        "instance-id": "suitcase-verify",
        "local-hostname": "suitcase-verify",
        "public-keys": [public_key],
    }
    (folder / "meta-data").write_text(json.dumps(meta) + "\n")
    (folder / "user-data").write_text("#cloud-config\n{}\n")
    iso = folder / "seed.iso"
    run(
        [
            "genisoimage",
            "-quiet",
            "-output",
            str(iso),
            "-volid",
            "cidata",
            "-joliet",
            "-rock",
            str(folder / "user-data"),
            str(folder / "meta-data"),
        ]
    )
    return iso


ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def console_lines(console: Path, count: int) -> list[str]:
    """A guest serial console's last `count` non-blank lines, colour codes removed, redacted.

    The whole console is redacted before it is cut, so a private key whose BEGIN line is above
    the tail is still masked (the guest wrote it raw: it may print anything).
    """
    try:
        text = console.read_text(errors="replace")
    except OSError:
        return []
    text = redact_text(ANSI.sub("", text).replace("\r\n", "\n"))
    lines = [line.rstrip()[:200] for line in text.splitlines()]
    return [line for line in lines if line.strip()][-count:]


class BootHung(BootTimeout):
    """SSH never answered at all: the boot hung (or the guest never brought sshd up)."""


class BootRetryWarning(UserWarning):
    """A boot never answered SSH and the machine was booted again."""


@contextlib.contextmanager
def booted(
    disk: Path,
    login: str,
    build_key: KeyPair | None = None,
    accelerator: str = "tcg",
    memory: int = 1536,
    cpus: int = 2,
    timeout: float = 900,
    keep_dir: Path | None = None,
    boots: int = 2,
    first_boot_limit: float = 300,
    runs_dir: Path | None = None,
) -> Iterator[Login]:
    """Boot `disk` (never modified: a qcow2 overlay takes the writes) and wait for SSH.

    `login` is "build-key" (root with the build set's key), "vagrant" (the insecure key) or
    "cloud-init" (a NoCloud seed creates a user with a throw-away key).

    A boot whose SSH never answers within `first_boot_limit` (about 20-80 s is normal under TCG)
    is stopped and the disk booted again from a fresh overlay, up to `boots` boots within
    `timeout` in all, with a BootRetryWarning. A machine that answers but does not settle, or
    refuses the login, is not retried: that is the image's fault.

    QEMU dies with this process however it dies (parent-death signal) and runs in a network
    namespace of its own, SSH forwarded from its loopback (suitcase.netns). With `runs_dir`,
    each VM is recorded there (a pid file) while it runs, and VMs recorded by processes that
    have died are killed first.
    """
    require("qemu-system-x86_64")
    pidfile = None
    if runs_dir is not None:
        for stale in stale_vm_records(runs_dir):
            kill_recorded(stale)
        pidfile = runs_dir / f"vm-{os.getpid()}-{next(_VM_NUMBERS)}.json"
    # a killed run's VM scratch (overlays, the throw-away key, a raw copy) goes with the next
    work = (
        Path(tempfile.mkdtemp(prefix="suitcase-vm-", dir=keep_dir))
        if keep_dir
        else scratch_dir("suitcase-vm")
    )
    proc: subprocess.Popen[bytes] | None = None
    try:
        info = artifact.disk_info(disk)
        argv = [
            "qemu-system-x86_64",
            "-accel",
            _accel(accelerator),
            *CPU,
            "-m",
            str(memory),
            "-smp",
            str(cpus),
            "-display",
            "none",
            "-monitor",
            "none",
            "-serial",
            f"file:{work / 'console.log'}",
        ]
        if login == "build-key":
            assert build_key is not None
            who = Login("root", 0, build_key.private)
        elif login == "vagrant":
            who = Login("vagrant", 0, vagrant_insecure_key())
        elif login == "cloud-init":
            # the shipped image lists only its platform's datasource: NoCloud, for this boot
            # only, comes from the verification side (a copy of the disk), never the image
            disk, info = _with_nocloud(disk, info, work), {"format": "raw"}
            # RSA: the one key type every sshd accepts (EL6's OpenSSH 5.3 knows no Ed25519)
            throwaway = ensure_key_pair(work / "key", "suitcase-verify", "rsa")
            argv += ["-drive", f"file={_seed_iso(work, throwaway.public_line)},media=cdrom"]
            who = Login("root", 0, throwaway.private)
        else:
            raise ValueError(login)
        deadline = time.monotonic() + timeout
        for boot in range(1, boots + 1):
            overlay = work / f"overlay{boot}.qcow2"
            run(
                [
                    "qemu-img",
                    "create",
                    "-q",
                    "-f",
                    "qcow2",
                    "-F",
                    str(info["format"]),
                    "-b",
                    str(disk.resolve()),
                    str(overlay),
                ]
            )
            drive = ["-drive", f"file={overlay},if=virtio,format=qcow2"]
            proc = _start([*argv, *drive], work, pidfile)
            who = Login(who.user, SSH_FORWARD, who.key, proc.pid)
            left = deadline - time.monotonic()
            budget = left if boot == boots else min(left / 2, first_boot_limit)
            try:
                # the seed's key reaches authorized_keys through cloud-init itself: a refusal
                # in its first minutes may only mean it is not there yet
                grace = REFUSED_GRACE if login == "cloud-init" else 0.0
                _wait_for_ssh(who, proc, work, budget, refused_grace=grace)
                break
            except BootHung as error:
                if boot == boots:
                    raise
                _stop(proc)
                warnings.warn(
                    f"{disk.name}: boot {boot} of {boots} never answered SSH ({error}); "
                    "booting again from a fresh overlay",
                    BootRetryWarning,
                    stacklevel=3,
                )
        yield who
    finally:
        if proc is not None:
            _stop(proc, pidfile)
        remove_tree_quietly(work)


#: A CPU model every accelerator offers (TCG and KVM alike) with all the features it can: QEMU's
#: default qemu64 lacks x86-64-v2, which EL9's glibc requires.
CPU = ("-cpu", "max")
#: The guest's SSH, forwarded from this port of the VM's own loopback (no other process's)
SSH_FORWARD = 2222
_VM_NUMBERS = itertools.count(1)


def _start(argv: list[str], work: Path, pidfile: Path | None = None) -> subprocess.Popen[bytes]:
    """Start QEMU in a network namespace of its own, SSH forwarded from its 127.0.0.1.

    Not restrict=on: QEMU's DHCP then hands out no gateway and no resolver, and the booted
    system's resolv.conf is a spec. The empty namespace closes the rest (suitcase.netns): the
    guest reaches nothing of the host, and the forward is on no host port.

    QEMU gets a parent-death signal and a session of its own (Ctrl-C reaches Suitcase, which
    stops it); `pidfile` records it while it runs.
    """
    net = [
        "-netdev",
        f"user,id=n0,hostfwd=tcp:127.0.0.1:{SSH_FORWARD}-:22",
        "-device",
        "virtio-net-pci,netdev=n0",
    ]
    with (work / "qemu.err").open("wb") as err:
        proc = subprocess.Popen(
            dies_with_us(netns.isolated([*argv, *net])),
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
        )
    if pidfile is not None:
        Record.of(proc.pid, [*argv, *net]).write(pidfile)
    return proc


def _stop(proc: subprocess.Popen[bytes], pidfile: Path | None = None) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if pidfile is not None:
        record = Record.read(pidfile)
        if record is not None and record.pid == proc.pid:
            wait_gone(record, 30)
            pidfile.unlink(missing_ok=True)


def _accel(accelerator: str) -> str:
    return "tcg,thread=multi" if accelerator == "tcg" else accelerator


# First boot is not over when sshd first answers: cloud-init's later stages may still
# reconfigure (even restart) services. Specs look at the settled system, so wait for
# cloud-init (where it runs) and for systemd to leave "starting". Bounded by `timeout`.
SETTLE = r"""
if cloud-init status >/dev/null 2>&1; then cloud-init status --wait >/dev/null 2>&1 || true; fi
if command -v systemctl >/dev/null 2>&1; then
    while :; do
        case $(systemctl is-system-running 2>/dev/null) in
        initializing|starting) sleep 2 ;;
        *) break ;;
        esac
    done
fi
"""


#: seconds a cloud-init login may be refused before that counts (its key arrives at first boot)
REFUSED_GRACE = 120.0


def _wait_for_ssh(
    who: Login,
    proc: subprocess.Popen[bytes],
    work: Path,
    timeout: float,
    refused_grace: float = 0.0,
) -> None:
    """Return once the machine has settled and a fresh SSH login after that works.

    A login the guest refuses fails at once (LoginRefused), or once it was refused for
    `refused_grace` seconds in a row: a key baked into the image will not appear later.
    """
    import paramiko

    # every try before sshd is up is a refused or cut connection, which paramiko's transport
    # thread logs with a traceback: said once below, if it never comes up (a handler here keeps
    # Python from printing those on stderr when nothing configured logging)
    quiet = logging.getLogger("paramiko.transport")
    if not quiet.handlers:
        quiet.addHandler(logging.NullHandler())
    deadline = time.monotonic() + timeout
    first_refusal: float | None = None
    last = "no answer"
    settled = False
    answered = False
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = (work / "qemu.err").read_text(errors="replace").strip()[-300:]
            raise BuildError(f"QEMU exited ({proc.returncode}) before SSH came up: {err}")
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        try:
            # ssh-rsa for OpenSSH < 7.2 (its probe connection first: an sshd may serve one
            # connection at a time)
            options = connect_options("127.0.0.1", who.port, opener=who.connect)
            client.connect(
                "127.0.0.1",
                port=who.port,
                sock=who.connect(10),
                username=who.user,
                key_filename=str(who.key),
                timeout=10,
                banner_timeout=10,
                auth_timeout=10,
                allow_agent=False,
                look_for_keys=False,
                **options,
            )
            answered = True
            if not settled:
                left = max(1, int(deadline - time.monotonic()))
                _stdin, stdout, _stderr = client.exec_command(
                    f"timeout {left} sh -c {shlex.quote(SETTLE)}"
                )
                settled = stdout.channel.recv_exit_status() == 0
                if settled:
                    continue  # log in afresh: what the specs' first connection will do
                last = "boot had not settled"
            else:
                _stdin, stdout, _stderr = client.exec_command("true")
                if stdout.channel.recv_exit_status() == 0:
                    return
        except (OSError, paramiko.SSHException) as exc:
            last = str(exc) or type(exc).__name__
            # sshd answered and refused the key: the image's fault, never a hung boot, and no
            # later try will do better (paramiko may raise a bare SSHException for it)
            refused = _refused(client, exc)
            if refused and first_refusal is None:
                first_refusal = time.monotonic()
            elif not refused:
                first_refusal = None
            if first_refusal is not None and time.monotonic() - first_refusal >= refused_grace:
                raise LoginRefused(
                    f"the guest refused the SSH login of {who.user} with key "
                    f"{_key_fingerprint(who.key)} on {who.address} ({last}); the image "
                    f"does not authorize that key for {who.user}"
                ) from None
            answered = answered or isinstance(exc, paramiko.AuthenticationException)
        finally:
            client.close()
        time.sleep(5)
    console = console_lines(work / "console.log", 5)
    error = BuildError if answered else BootHung
    raise error(
        f"no SSH to {who.user}@{who.address} within {int(timeout)} s ({last}); "
        "console: " + " | ".join(console)
    )


class LoginRefused(BuildError):
    """The guest's sshd answered and refused the login: the image's fault, reported at once."""


def _refused(client: object, exc: BaseException) -> bool:
    """Did the key exchange finish and authentication fail (not time out) on this try?"""
    import paramiko

    transport = client.get_transport()  # type: ignore[attr-defined]
    if transport is None or transport.session_id is None or transport.is_authenticated():
        return False  # no SSH session yet: sshd is not (fully) up, try again
    if not isinstance(exc, paramiko.SSHException) or isinstance(exc, paramiko.ChannelException):
        return False
    return "timeout" not in str(exc).lower()  # a slow guest may not answer auth in time


def _key_fingerprint(key: Path) -> str:
    import paramiko

    try:
        return str(paramiko.PKey.from_path(key).fingerprint)
    except (OSError, paramiko.SSHException, ValueError):
        return f"{key} (unreadable)"


@contextlib.contextmanager
def mounted(image: Path, writable: bool = False, keep_dir: Path | None = None) -> Iterator[Path]:
    """Mount the root filesystem of a disk (raw or qcow2, partitioned or not) and yield its path.

    Read-only unless `writable`; qcow2 is first flattened to a temporary raw copy. Always
    nosuid,nodev, and nothing is mounted inside it: the image's own `proc` or `dev` may be a
    link to anywhere on the host. Its programs run only in suitcase.sandbox.
    """
    require("mount")
    # a killed run's mount (and GB-sized raw copy) is released and removed by the next
    work = (
        Path(tempfile.mkdtemp(prefix="suitcase-mnt-", dir=keep_dir))
        if keep_dir
        else scratch_dir("suitcase-mnt")
    )
    target = work / "root"
    target.mkdir()
    mounts: list[Path] = []
    try:
        raw = image
        if artifact.disk_info(image).get("format") != "raw":
            if writable:
                raise BuildError(f"{image} is not raw: cannot mount it writable")
            raw = artifact.convert(image, work / "disk.raw", "raw")
        if artifact.is_bare_filesystem(raw):  # the paravirt disk: no partition table
            offset, length = 0, raw.stat().st_size
        else:
            offset, length = artifact.first_partition(raw)
        mode = "rw" if writable else "ro"
        options = [f"loop,{mode},nosuid,nodev,offset={offset},sizelimit={length}"]
        if not writable:
            options = [o + extra for o in options for extra in (",noload", ",norecovery", "")]
        for opts in options:
            result = subprocess.run(
                ["mount", "-o", opts, str(raw), str(target)],
                capture_output=True,
                text=True,
                check=False,
            )
            if result.returncode == 0:
                break
        else:
            raise BuildError(f"cannot mount {image}: {result.stderr.strip()}")
        mounts.append(target)
        yield target
    finally:
        for point in reversed(mounts):
            subprocess.run(["umount", "-l", str(point)], check=False, capture_output=True)
        # Never delete through a mount that is still there: that would reach into the image or /dev.
        remove_tree_quietly(work)
