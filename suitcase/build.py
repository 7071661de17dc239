"""Run a build plan: each stage that is not done goes bootstrap → Packer → artifacts → manifest."""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import shutil
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from suitcase import artifact, media, packer
from suitcase.answerfile import boot_command, render
from suitcase.command import Redactor, require, signal_of, stream
from suitcase.context import Context, git_revision, tool_versions
from suitcase.errors import BootTimeout, BuildError, ConfigError
from suitcase.keys import KeyPair, ensure_key_pair, fingerprint
from suitcase.machine import console_lines, vm_cpus
from suitcase.manifest import (
    MANIFEST_NAME,
    UPLOAD_COOKIE,
    Manifest,
    Output,
    describe_output,
    write_manifest,
)
from suitcase.plan import BuildPlan, Stage, StageState
from suitcase.redact import open_log
from suitcase.safety import remove_tree, remove_tree_quietly
from suitcase.sweep import release, stop_own

Say = Callable[[str], None]
SSH_TIMEOUT = "10m"  # a disk boot answers in under a minute, even under TCG
INSTALL_SSH_TIMEOUT = "90m"  # an installer answers SSH only once the install is done
BOOTS = 2  # a guest that never answered SSH is booted once more before the stage fails
#: The process tree a stage runs (bootstrap, then Packer), recorded while it runs.
RUN_RECORD = ".run.json"


@dataclass(frozen=True)
class StageResult:
    stage: str
    built: bool
    seconds: float
    manifest: Manifest


#: the manifest field (in `extra`) holding the fingerprint of the key a stage was built with
KEY_FIELD = "build_key"


def build_key(ctx: Context, plan: BuildPlan) -> KeyPair:
    """The build set's key pair: made for a new set, never again for a set that has stages.

    A set whose stages exist but whose keys/ folder is gone, or holds another key than the
    fingerprint its manifests record, is an error: a new key would let `test_no_build_key` pass
    with the real build key baked into the images. (Manifests from before fingerprints were
    recorded are accepted while the key is there.)
    """
    folder = ctx.workspace.keys_dir / plan.build_set.id
    key_type = plan.os.build_key_type
    recorded = _recorded_keys(ctx, plan)
    have = (folder / f"id_{key_type}").is_file() and (folder / f"id_{key_type}.pub").is_file()
    if recorded and not have:
        known = sorted({fp for fp in recorded.values() if fp})
        raise BuildError(
            f"build set {plan.build_set.id} has built stages ({', '.join(recorded)}) but its "
            f"build key {folder}/id_{key_type} is missing; they were built with "
            f"{' and '.join(known) or 'a key their manifests do not record'}: restore that "
            "key (a new one is never made for a set that has stages), or clean the set"
        )
    pair = ensure_key_pair(folder, f"suitcase-build-{plan.build_set.id}", key_type)
    if recorded:
        current = fingerprint(pair.public_line)
        for stage, recorded_fp in recorded.items():
            if recorded_fp and recorded_fp != current:
                raise BuildError(
                    f"build set {plan.build_set.id}: {stage} was built with key {recorded_fp}, "
                    f"but {folder} holds {current}; restore the key it was built with, or "
                    "clean the set"
                )
    return pair


def _recorded_keys(ctx: Context, plan: BuildPlan) -> dict[str, str | None]:
    """{stage: the key fingerprint its manifest records (None: an older manifest)} of the set."""
    from suitcase.imagetypes import IMAGE_TYPES
    from suitcase.manifest import read_manifest

    found: dict[str, str | None] = {}
    for image in IMAGE_TYPES:
        manifest = read_manifest(ctx.workspace.stage_dir(image, plan.build_set))
        if manifest is not None:
            value = manifest.extra.get(KEY_FIELD)
            found[image] = value if isinstance(value, str) else None
    return found


def run_plan(
    ctx: Context,
    plan: BuildPlan,
    say: Say,
    on_error: str = "cleanup",
    wait: float = 0,
    after_stage: Callable[[StageResult], None] | None = None,
    before_unlock: Callable[[], None] | None = None,
) -> list[StageResult]:
    """Build every stage of `plan` that is not done, parents first, holding the build-set lock.

    The master first; then the derived stages to build, up to `build_jobs` (site.yaml) at once,
    each VM given its share of the cores (suitcase.machine.vm_cpus): they depend on the master
    alone, and a VM's boot leaves cores idle that another build's boot or disk work fills. A
    failed derived build lets the others finish (a rerun builds only what failed), then its
    error is raised. `after_stage` is told of each done stage (built or skipped) as soon as it
    is done, and `before_unlock` runs last, still under the lock: `all` uploads finished stages
    while the next one builds, and waits for those uploads before another process may take the
    set. Results come in the plan's order.
    """
    results: dict[str, StageResult] = {}

    def done(result: StageResult) -> None:
        results[result.stage] = result
        if after_stage is not None:
            after_stage(result)

    with ctx.workspace.lock(plan.build_set, wait=wait):
        states = plan.states()
        preflight(ctx, plan, [s.stage for s in states if not s.done])
        todo: list[StageState] = []
        for state in states:
            name = state.stage.image.name
            if state.done and state.manifest is not None:
                say(f"[{name}] up to date (key {state.stage.key[:12]}), skipped")
                _drop_scratch(state.stage.directory, say, name)
                done(StageResult(name, False, 0.0, state.manifest))
            elif state.stage.parent is None:  # a master: what the others derive from, first
                done(_build_one(ctx, plan, state, say, on_error))
            else:
                todo.append(state)
        jobs = build_jobs(ctx, on_error, len(todo))
        if jobs == 1:
            for state in todo:
                done(_build_one(ctx, plan, state, say, on_error))
        else:
            _build_at_once(ctx, plan, todo, say, on_error, jobs, done)
        if before_unlock is not None:
            before_unlock()
    return [results[s.image.name] for s in plan.stages if s.image.name in results]


def build_jobs(ctx: Context, on_error: str, stages: int) -> int:
    """How many derived stages build at once: site.yaml's `build_jobs`, at most one per stage,
    and one when a failed VM is kept or Packer asks what to do (one VM, one question at a time)."""
    if on_error in ("abort", "ask"):
        return 1
    return max(1, min(ctx.site.build_jobs, stages))


def _build_one(
    ctx: Context,
    plan: BuildPlan,
    state: StageState,
    say: Say,
    on_error: str,
    cpus: int | None = None,
    cancelled: threading.Event | None = None,
) -> StageResult:
    name = state.stage.image.name
    say(f"[{name}] building: {state.reason}")
    started = time.monotonic()
    manifest = build_stage(ctx, plan, state.stage, say, on_error, state.reason, cpus, cancelled)
    seconds = time.monotonic() - started
    say(summary_line(name, seconds, manifest))
    return StageResult(name, True, seconds, manifest)


def _build_at_once(
    ctx: Context,
    plan: BuildPlan,
    todo: list[StageState],
    say: Say,
    on_error: str,
    jobs: int,
    done: Callable[[StageResult], None],
) -> None:
    """Build `todo` in `jobs` threads, each stage's VM with its share of the cores.

    Each stage's Packer runs contained and dies with this process however it dies (its
    parent-death signal belongs to the thread that started it, which waits for it). On Ctrl-C
    or SIGTERM the stages in flight are stopped through their run records, and the interrupt is
    raised once every thread has ended; no stage is left half-written (its manifest goes last).
    """
    cpus = min(ctx.site.cpus, vm_cpus(jobs))
    say(f"building {', '.join(s.stage.image.name for s in todo)} at once ({cpus} vCPU each)")
    cancelled = threading.Event()
    errors: list[BaseException] = []
    with concurrent.futures.ThreadPoolExecutor(jobs, thread_name_prefix="suitcase-build") as pool:
        futures = {
            pool.submit(_build_one, ctx, plan, s, say, on_error, cpus, cancelled): s for s in todo
        }
        try:
            for future in concurrent.futures.as_completed(futures):
                try:
                    done(future.result())
                except BuildError as error:  # the others go on: their stages are good
                    errors.append(error)
        except BaseException:
            cancelled.set()
            for state in futures.values():
                stop_own(state.stage.directory / RUN_RECORD)
            concurrent.futures.wait(futures)
            raise
    if errors:
        raise errors[0]


def preflight(ctx: Context, plan: BuildPlan, todo: list[Stage]) -> None:
    """Refuse before touching anything: missing tools, templates, media, checksums or mirrors."""
    if not todo:
        return
    from suitcase.ostemplate import image_refusal

    for stage in todo:
        refusal = image_refusal(plan.os.spec, stage.image.name, ctx.site.ami_xen_only)
        if refusal:
            raise ConfigError(f"{stage.image.name} of {plan.os.name} would not boot: {refusal}")
    media.preflight(ctx, plan, todo)  # checksum, mirror, repositories, local ISO, cloud-init
    tools = ["packer", "qemu-img"]
    if plan.builder == "qemu":
        tools.append("qemu-system-x86_64")
    for stage in todo:
        if not stage.template.is_file():
            raise ConfigError(f"Packer template {stage.template} does not exist")
        if stage.image.is_master and plan.os.method == "installer":
            plan.os.iso_checksum()
            _iso_url(ctx, plan)
        if stage.image.is_master and plan.os.method == "bootstrap":
            tools += ["debootstrap", "losetup", "extlinux"]
            if not ctx.site.mirror(plan.os.distribution):
                raise ConfigError(
                    f"no mirror for {plan.os.distribution}: set "
                    f"mirrors.{plan.os.distribution.lower()} in site.yaml"
                )
        if stage.parent is not None and stage.parent not in {t.image.name for t in todo}:
            _parent_disk(plan, stage.parent)
    for tool in tools:
        require(tool)
    check_free_space(ctx.workspace.root, plan.os.disk_size_mb, [s.image.name for s in todo])


# Each stage writes at most about half its disk size (outputs and scratch copies), plus a
# margin. Without room QEMU pauses the guest (werror=enospc): the build would look like a boot
# that never answers SSH, so the shortage is refused up front instead.
FREE_MARGIN_MB = 1024


def needed_space_mb(disk_size_mb: int, stages: int) -> int:
    return FREE_MARGIN_MB + stages * disk_size_mb // 2


def check_free_space(root: Path, disk_size_mb: int, stages: list[str]) -> None:
    needed = needed_space_mb(disk_size_mb, len(stages))
    free = shutil.disk_usage(root if root.exists() else root.parent).free // 2**20
    if free < needed:
        raise BuildError(
            f"not enough free space in {root}: {free / 1024:.1f} GiB free, building "
            f"{', '.join(stages)} needs about {needed / 1024:.1f} GiB"
        )


def summary_line(name: str, seconds: float, manifest: Manifest) -> str:
    main = manifest.outputs[0]
    return (
        f"[{name}] built in {int(seconds) // 60}m{int(seconds) % 60:02d}s: {main.path} "
        f"{main.size / 2**30:.2f} GiB sha256 {main.sha256[:16]}…"
    )


def build_stage(
    ctx: Context,
    plan: BuildPlan,
    stage: Stage,
    say: Say,
    on_error: str,
    reason: str = "",
    cpus: int | None = None,
    cancelled: threading.Event | None = None,
) -> Manifest:
    """Build one stage; `cpus` overrides the site's vCPUs (builds at once share the cores), and
    `cancelled` stops it between its steps (another build was interrupted)."""
    name = stage.image.name
    directory = stage.directory
    if directory.is_symlink():
        raise ConfigError(f"refusing to build into {directory}: it is a symlink")
    ctx.workspace.inside(directory.parent)
    keys = build_key(ctx, plan)  # before anything is touched: a lost key stops the build here
    directory.mkdir(parents=True, exist_ok=True)
    # An earlier run killed mid-stage may have left processes, mounts or loop devices here:
    # release them (or refuse) before anything in the folder is touched.
    pidfile = directory / RUN_RECORD
    for line in release(directory, pidfile):
        say(f"[{name}] {line}")
    # The stage is no longer done from here on: its manifest goes first, its outputs last.
    (directory / MANIFEST_NAME).unlink(missing_ok=True)
    # an upload cookie describes what was shipped of the earlier build, not of this one
    (directory / UPLOAD_COOKIE).unlink(missing_ok=True)
    work = directory / ".build"
    remove_tree(work)
    work.mkdir()
    # Files are replaced, never rewritten in place: a hard-linked copy of the workspace (or a
    # reader holding the old file) keeps what it had.
    log = directory / "build.log"
    for stale in (log, *directory.glob("console*.log")):
        stale.unlink(missing_ok=True)
    with open_log(log) as handle:  # 0600 from its creation, like every log
        handle.write(
            f"suitcase: building {name} of {plan.build_set.id} (key {stage.key}): {reason}\n"
        )
    started = _now()

    def stage_say(text: str) -> None:
        if cancelled is not None and cancelled.is_set():
            raise KeyboardInterrupt  # another build was interrupted: this one stops too
        say(f"[{name}] {text}")

    try:
        if cancelled is not None and cancelled.is_set():
            raise KeyboardInterrupt  # another build was interrupted before this one began
        variables = stage_variables(ctx, plan, stage, keys, work)
        if cpus is not None:
            variables["cpus"] = cpus
        if on_error == "abort":  # a failed VM is kept for debugging: it must outlive Packer
            variables["qemu_binary"] = "qemu-system-x86_64"
        if stage.image.is_master and plan.os.method == "bootstrap":
            variables["source_disk"] = str(
                _bootstrap(ctx, plan, keys, work, log, stage_say, pidfile)
            )
        run = run_packer(
            stage.template,
            variables,
            work=work,
            log=log,
            console=directory / "console.log",
            say=stage_say,
            on_error=on_error,
            cache_dir=ctx.workspace.cache_dir,
            # an installer that never answered is not booted again: that would be a reinstall
            boots=1 if stage.image.is_master and plan.os.method == "installer" else BOOTS,
            pidfile=pidfile,
        )
        stage_say("packer finished; writing artifacts")
        packer_bytes = sum(p.stat().st_blocks * 512 for p in (work / "packer").rglob("*"))
        outputs = _finish(ctx, plan, stage, work, run, stage_say)
    except BuildError as error:
        if on_error != "abort":
            remove_tree_quietly(work)
        raise BuildError(str(error) + _console_tail(directory / "console.log")) from None
    except BaseException as error:
        if isinstance(error, KeyboardInterrupt):
            signum = signal_of(error)
            with log.open("a") as handle:
                handle.write(
                    f"suitcase: interrupted ({signal.Signals(signum).name}); {name} was not built\n"
                )
        if on_error != "abort":
            remove_tree_quietly(work)
        raise
    manifest = Manifest(
        stage=name,
        os=plan.os.name,
        timestamp=plan.build_set.timestamp,
        key=stage.key,
        inputs=stage.inputs,
        parent={"stage": stage.parent, "key": stage.inputs["parent"]} if stage.parent else None,
        outputs=outputs,
        tool_versions=tool_versions(),
        git_revision=git_revision(ctx.paths.root),
        started=started,
        finished=_now(),
        suitcase_version=tool_versions()["suitcase"],
        extra={
            "builder": plan.builder,
            "build_id": plan.build_set.id,
            "derive": ctx.site.derive,
            # bytes Packer's own output took on disk: an overlay's writes, or a full copy
            "packer_output_bytes": packer_bytes,
            # which key the set was built with: a later run refuses any other (build_key)
            KEY_FIELD: fingerprint(keys.public_line),
        },
    )
    write_manifest(directory, manifest)
    remove_tree_quietly(work)
    return manifest


def _drop_scratch(directory: Path, say: Say, name: str) -> None:
    """A run killed between its manifest and its clean-up leaves `.build` behind: Packer's own
    disk, which may hold what provisioning wrote and deleted (a password, a script). The stage is
    done, so that scratch is removed now (never across a mount: kept, and said, if one is below)."""
    work = directory / ".build"
    if work.exists() or work.is_symlink():
        if remove_tree_quietly(work):
            say(f"[{name}] removed the scratch a killed run left ({work})")
        else:
            say(f"[{name}] could not remove the scratch a killed run left ({work})")


def run_packer(
    template: Path,
    variables: dict[str, object],
    *,
    work: Path,
    log: Path,
    console: Path,
    say: Say,
    on_error: str,
    cache_dir: Path | None,
    boots: int = BOOTS,
    pidfile: Path | None = None,
) -> packer.PackerRun:
    """`packer build`, booting again (up to `boots` in all) when the guest never answered SSH.

    Under TCG a guest very rarely hangs in early boot; a second boot of the same disk is cheap
    next to failing a whole build set. Each failed boot's console is kept beside the log
    (console.boot1.log, ...). Any other failure, or --on-error abort/ask, is not retried.
    """
    for boot in range(1, boots + 1):
        try:
            return packer.build(
                template,
                variables,
                workdir=work,
                log=log,
                on_message=say,
                on_error=on_error,
                cache_dir=cache_dir,
                pidfile=pidfile,
            )
        except BootTimeout as error:
            if boot == boots or on_error != "cleanup":
                raise
            kept = console.with_name(f"console.boot{boot}.log")
            if console.exists():
                console.replace(kept)
            first = str(error).splitlines()[0]
            say(f"boot {boot} of {boots} failed ({first}); guest console kept as {kept.name}")
            say(f"booting again ({boot + 1} of {boots})")
            with log.open("a") as handle:
                handle.write(f"suitcase: boot {boot} of {boots} failed; booting again\n")
            remove_tree_quietly(work / "packer")
    raise AssertionError("unreachable")


def _console_tail(console: Path, count: int = 15) -> str:
    """The guest's last console lines, redacted, for a build that failed (say, a boot that never
    got SSH). console_lines redacts the whole console before cutting its tail."""
    if not console.exists():
        return ""
    lines = console_lines(console, count)
    if not lines:
        return f"\nguest console: {console} (empty: the guest printed nothing)"
    return f"\nguest console: {console}, last lines:\n" + "\n".join("  " + line for line in lines)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def stage_variables(
    ctx: Context, plan: BuildPlan, stage: Stage, keys: KeyPair, work: Path
) -> dict[str, object]:
    """The Packer user variables of one stage (the Debian master's source disk comes later)."""
    variables = _common_variables(ctx, plan, stage, keys, work)
    if stage.image.is_master and plan.os.method == "bootstrap":
        variables["source_disk"] = str(work / "bootstrap.raw")
        variables["source_format"] = "raw"
    elif stage.image.is_master:
        variables.update(_installer_variables(ctx, plan, keys, work))
    else:
        assert stage.parent is not None
        parent = plan.stage(stage.parent).directory
        if plan.builder == "virtualbox":
            variables["source_disk"] = str(parent / "ovf" / f"{plan.build_set.id}-master.ovf")
        else:
            variables["source_disk"] = str(parent / "disk.qcow2")
    return variables


def _common_variables(
    ctx: Context, plan: BuildPlan, stage: Stage, keys: KeyPair, work: Path
) -> dict[str, object]:
    return {
        "vm_name": f"{plan.build_set.id}-{stage.image.name}",
        "output_directory": str(work / "packer"),
        "source_format": "qcow2",
        "use_backing_file": not stage.image.is_master and ctx.site.derive == "overlay",
        "accelerator": ctx.site.accelerator,
        "headless": True,
        "cpus": ctx.site.cpus,
        "memory": ctx.site.memory,
        "disk_size": plan.os.disk_size_mb,
        "ssh_username": "root",
        "ssh_private_key_file": str(keys.private),
        "ssh_timeout": SSH_TIMEOUT,
        "scripts_dir": str(ctx.paths.scripts_dir),
        # QEMU with a parent-death signal: it dies with Packer however Packer dies
        "qemu_binary": str(ctx.paths.scripts_dir / "host" / "qemu.sh"),
        "stage": stage.image.name,
        "os_family": plan.os.family,
        "os_name": plan.os.name,
        "os_major": plan.os.major,
        "build_id": plan.build_set.id,
        "serial_log": str(stage.directory / "console.log"),
    }


def _bootstrap(
    ctx: Context,
    plan: BuildPlan,
    keys: KeyPair,
    work: Path,
    log: Path,
    say: Say,
    pidfile: Path | None = None,
) -> Path:
    """Debian: debootstrap into a bootable raw disk (packages cached under packer_cache/).

    The script runs in a private mount and PID namespace: the chroot's /proc, /sys, /dev and the
    disk's mount are never visible outside it and vanish, with every process it started, however
    it or Suitcase dies. Only its loop device is global; the next run's sweep detaches it.
    """
    mirror = ctx.site.mirror(plan.os.distribution)
    if not mirror:
        raise ConfigError(
            f"no mirror for {plan.os.distribution}: set mirrors.{plan.os.distribution.lower()} "
            "in site.yaml"
        )
    boot = plan.os.bootstrap
    cache = ctx.workspace.cache_dir / "debootstrap" / f"{boot['suite']}-{plan.os.data['arch']}"
    cache.mkdir(parents=True, exist_ok=True)
    output = work / "bootstrap.raw"
    argv = [
        "bash",
        str(ctx.paths.scripts_dir / "bootstrap" / "debian-disk.sh"),
        "--output",
        str(output),
        "--size-mb",
        str(plan.os.disk_size_mb),
        "--suite",
        str(boot["suite"]),
        "--mirror",
        mirror,
        "--cache-dir",
        str(cache),
        "--authorized-key",
        str(keys.public),
        "--packages",
        ",".join(boot["packages"]),
    ]
    say("bootstrapping the master disk with debootstrap")
    code, tail = stream(
        argv, log=log, on_line=say, redact=Redactor(), pidfile=pidfile, private_mounts=True
    )
    if code != 0:
        raise BuildError(
            f"bootstrap failed (exit {code}); log: {log}\n"
            + "\n".join("  " + t for t in tail[-10:])
        )
    return output


def _installer_variables(
    ctx: Context, plan: BuildPlan, keys: KeyPair, work: Path
) -> dict[str, object]:
    """EL: the ISO, its checksum, the rendered kickstart served over Packer's HTTP server."""
    os_template = plan.os
    checksum = os_template.iso_checksum()
    iso_url = _iso_url(ctx, plan)
    http = work / "http"
    http.mkdir()
    (http / "ks.cfg").write_text(
        render(
            os_template,
            ctx.paths,
            keys.public_line,
            media.kickstart_repos(ctx.site, os_template),
            plan.build_set.id,
        )
    )
    return {
        "iso_url": iso_url,
        "iso_checksum": checksum,
        "http_directory": str(http),
        "ssh_timeout": INSTALL_SSH_TIMEOUT,
        **boot_variables(boot_command(os_template, ctx.paths)),
    }


def _iso_url(ctx: Context, plan: BuildPlan) -> str:
    """The install medium: <workspace>/iso/<file> if present, else <release's mirror>/<iso_path>."""
    return media.iso_url(ctx.workspace.root, ctx.site, plan.os)


def boot_variables(entry: dict[str, str]) -> dict[str, object]:
    """The template types `boot_keys`, then `boot_line` and the kickstart URL with `ks_arg`."""
    return {"boot_keys": entry["keys"], "boot_line": entry["args"], "ks_arg": entry["ks_arg"]}


def _parent_disk(plan: BuildPlan, parent: str) -> Path:
    parent_dir = plan.stage(parent).directory
    disk = parent_dir / "disk.qcow2"
    if not disk.is_file():
        raise BuildError(f"the {parent} disk {disk} is missing; build {parent} first")
    return disk


def _finish(
    ctx: Context, plan: BuildPlan, stage: Stage, work: Path, run: packer.PackerRun, say: Say
) -> list[Output]:
    """Flatten and package Packer's output into the stage folder; checksum every output."""
    directory = stage.directory
    produced = _packer_disk(work / "packer", plan.builder)
    name = stage.image.name
    files: list[tuple[Path, str]] = []
    if plan.builder == "virtualbox":
        files = _finish_virtualbox(plan, name, work / "packer", directory, say)
    elif name == "master":
        target = directory / "disk.qcow2"
        produced.replace(target)
        files.append((target, "disk"))
    elif name == "vagrant":
        say("flattening the overlay into a standalone qcow2")
        disk = artifact.convert(produced, directory / "disk.qcow2", "qcow2")
        box = artifact.libvirt_box(disk, directory / f"{plan.build_set.id}.box")
        files += [(box, "box"), (disk, "disk")]
    elif name == "aws-hvm":
        say("flattening into a raw disk and a streamOptimized VMDK (side by side)")
        # The VMDK (compressed, CPU-bound) converts while the raw disk is written and then
        # checksummed: both read the same overlay, and nothing is checksummed twice.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            vmdk_job = pool.submit(
                artifact.convert,
                produced,
                directory / "disk.vmdk",
                "vmdk",
                "subformat=streamOptimized",
            )
            try:
                raw = artifact.convert(produced, directory / "disk.raw", "raw")
                raw_output = describe_output(directory, raw, "raw")
                vmdk = vmdk_job.result()
            except BaseException:
                vmdk_job.cancel()
                raise
        say("checksumming the VMDK (the raw disk was checksummed while it converted)")
        return [raw_output, describe_output(directory, vmdk, "vmdk")]
    elif name == "aws-paravirt":
        say("extracting the root filesystem as a single-partition disk")
        full = artifact.convert(produced, work / "full.raw", "raw")
        offset, length = artifact.first_partition(full)
        root = artifact.sparse_copy(full, directory / "root.raw", offset, length)
        files.append((root, "raw-partition"))
    say("checksumming outputs")
    outputs = [describe_output(directory, path, kind) for path, kind in files]
    if name == "vagrant":
        box_out = next(o for o in outputs if o.kind == "box")
        provider = "virtualbox" if plan.builder == "virtualbox" else "libvirt"
        catalog = artifact.box_catalog(
            directory / "catalog.json",
            f"suitcase/{plan.os.name}",
            plan.build_set.timestamp,
            provider,
            (directory / box_out.path).as_uri(),
            box_out.sha256,
        )
        outputs.append(describe_output(directory, catalog, "box-catalog"))
    return outputs


def _packer_disk(output_dir: Path, builder: str) -> Path:
    if not output_dir.is_dir():
        raise BuildError(f"packer left no output in {output_dir}")
    if builder == "virtualbox":
        return output_dir
    disks = [p for p in output_dir.iterdir() if p.is_file()]
    if len(disks) != 1:
        raise BuildError(f"expected one disk in {output_dir}, found {len(disks)}")
    return disks[0]


def _finish_virtualbox(
    plan: BuildPlan, name: str, export: Path, directory: Path, say: Say
) -> list[tuple[Path, str]]:
    """VirtualBox exports an OVF folder: keep it for the master, box or convert it otherwise."""
    if name == "master":
        target = directory / "ovf"
        export.replace(target)
        return [(p, "ovf" if p.suffix == ".ovf" else "ovf-disk") for p in sorted(target.iterdir())]
    if name == "vagrant":
        box = artifact.virtualbox_box(export, directory / f"{plan.build_set.id}.box")
        return [(box, "box")]
    vmdk = next(export.glob("*.vmdk"), None)
    if vmdk is None:
        raise BuildError(f"{export} holds no VMDK")
    say("converting the VirtualBox disk")
    if name == "aws-hvm":
        raw = artifact.convert(vmdk, directory / "disk.raw", "raw")
        return [(raw, "raw")]
    full = artifact.convert(vmdk, export / "full.raw", "raw")
    offset, length = artifact.first_partition(full)
    return [(artifact.sparse_copy(full, directory / "root.raw", offset, length), "raw-partition")]
