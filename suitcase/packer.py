"""The Packer runner: var-file in, live progress out, a redacted log per stage, artifacts parsed.

Packer 1.6.6 prints sensitive variables unmasked in -machine-readable mode, so its stream is only
ever shown or logged through a Redactor, and only after Packer's escapes (`%!(PACKER_COMMA)`,
`\\n`) are undone: a secret with a comma is one secret again before it is looked for.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from suitcase import buildsecrets
from suitcase.command import require, run, stream
from suitcase.errors import BootTimeout, BuildError, ConfigError, ToolError
from suitcase.manifest import write_atomic
from suitcase.redact import LineRedactor, Redactor, open_log, remember, scrub_file
from suitcase.safety import remove_tree_quietly
from suitcase.sweep import scratch_dir, stale_scratch

ON_ERROR = ("cleanup", "abort", "ask", "run-cleanup-provisioner")
#: Packer's private temporary folder: `<prefix><pid>-<start>-<random>` of the Suitcase owning it
TMP_PREFIX = "suitcase-packer-"
_SENSITIVE_NAME = re.compile(r"(?i)secret|password|passwd|token|private_key_content")


@dataclass
class PackerRun:
    """What a `packer build` reported: its artifact files and, for a kept VM, how to reach it."""

    artifacts: list[str] = field(default_factory=list)
    ssh_port: str | None = None
    vnc_port: str | None = None
    errors: list[str] = field(default_factory=list)


def packer_version() -> str:
    require("packer")
    out = run(["packer", "version"], env=packer_env()).stdout
    match = re.search(r"v?(\d+\.\d+\.\d+)", out)
    if not match:
        raise ToolError(f"cannot read the Packer version from: {out.strip()[:80]}")
    return match.group(1)


def packer_env(cache_dir: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["CHECKPOINT_DISABLE"] = "1"  # no phoning home: these machines have no network for it
    env["PACKER_NO_COLOR"] = "1"
    if cache_dir is not None:
        env["PACKER_CACHE_DIR"] = str(cache_dir)
    # the templates' sensitive `build_secrets` defaults to this: set from SUITCASE_SECRET_*
    # alone, never inherited, and never in a var file
    env[buildsecrets.PACKER_ENV] = buildsecrets.packer_value(buildsecrets.build_secrets(env))
    return env


def stale_temp_dirs(base: Path | None = None) -> list[Path]:
    """Packer temporary folders whose Suitcase is gone (killed while Packer ran)."""
    return stale_scratch(TMP_PREFIX.rstrip("-"), base)


QMP_ENV = "SUITCASE_QMP_SOCKET"


@contextlib.contextmanager
def private_tmp() -> Iterator[Path]:
    """Packer's TMPDIR: a 0700 folder of this run, removed afterwards, and swept by the next run
    when this one is killed. Packer keeps its whole unredacted log (its panic log, `packer-log*`)
    and shell-local's scripts there, and deletes them only when it exits cleanly: in the shared
    /tmp, a killed build would leave a provisioner's secrets there for good. Short, on purpose:
    Packer's plugin sockets live there too, and a socket path has at most 107 bytes."""
    path = scratch_dir(TMP_PREFIX.rstrip("-"))
    try:
        yield path
    finally:
        remove_tree_quietly(path)


def write_var_file(path: Path, variables: dict[str, object]) -> Path:
    """Packer user variables are strings; the file is private to the build folder."""
    values = {k: _as_string(v) for k, v in variables.items()}
    write_atomic(path, json.dumps(values, indent=2, sort_keys=True) + "\n", mode=0o600)
    return path


def _as_string(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def sensitive_values(variables: dict[str, object], template: Path | None = None) -> list[str]:
    """The values to hide: `*password*`/`*secret*`/`*token*` variables, the template's
    `sensitive-variables`, the build secrets (SUITCASE_SECRET_*, as Packer gets them too) and
    the text of the private key the build logs in with."""
    declared: set[str] = set()
    if template is not None:
        try:
            listed = json.loads(template.read_text()).get("sensitive-variables", [])
            declared = {str(name) for name in listed} if isinstance(listed, list) else set()
        except (OSError, ValueError, AttributeError):
            pass  # `packer validate` says what is wrong with the template
    values = [
        _as_string(v)
        for k, v in variables.items()
        if (k in declared or _SENSITIVE_NAME.search(k)) and not isinstance(v, bool)
    ]
    key_file = variables.get("ssh_private_key_file")
    if key_file:
        # no key file, no key text to hide (Packer will say it is missing)
        with contextlib.suppress(OSError, UnicodeDecodeError):
            values.append(Path(str(key_file)).read_text())
    return values + buildsecrets.forms(buildsecrets.build_secrets())


def redactor_for(variables: dict[str, object], template: Path | None = None) -> PackerRedactor:
    """A Redactor for one build; the process remembers the values for errors shown later."""
    secrets = sensitive_values(variables, template)
    remember(*secrets)
    return PackerRedactor(secrets)


class PackerRedactor(Redactor):
    """Redacts Packer's -machine-readable stream field by field, decoded."""

    def lines(self) -> LineRedactor:
        return MachineLineRedactor(self)


class MachineLineRedactor(LineRedactor):
    """Decode each text field (commas, newlines), redact it, encode it again: the log keeps
    Packer's format, never a secret. A key block is followed per channel (a provisioner's stdout
    is `ui,message`, its stderr `ui,error`): the two interleave, and one's END must not end the
    other's block."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__(redactor)  # this one's state: lines that are not machine-readable
        self.channels: dict[tuple[str, ...], LineRedactor] = {}

    def __call__(self, line: str) -> str:
        parts = line.split(",")
        if len(parts) < 3 or not parts[0].isdigit():
            return super().__call__(line)
        head = 4 if parts[2] == "ui" and len(parts) > 4 else 3  # timestamp,target,type[,level]
        channel = tuple(parts[1:head])
        state = self.channels.setdefault(channel, LineRedactor(self.redactor))
        fields = [self.redactor.known(p) for p in parts[1:head]]
        fields += [_redact_field(part, state) for part in parts[head:]]
        return ",".join([parts[0], *fields])


def _redact_field(field: str, state: LineRedactor) -> str:
    text = state.redactor.known(_unescape(field))  # a known secret may span the field's lines
    return _escape("\n".join(state(line) for line in text.split("\n")))


def _unescape(field: str) -> str:
    return field.replace("\\n", "\n").replace("\\r", "\r").replace("%!(PACKER_COMMA)", ",")


def _escape(text: str) -> str:
    return text.replace(",", "%!(PACKER_COMMA)").replace("\r", "\\r").replace("\n", "\\n")


def validate(template: Path, var_file: Path, cwd: Path | None = None) -> None:
    """`packer validate`; raises ConfigError with Packer's own words (redacted) on failure."""
    result = run(
        ["packer", "validate", f"-var-file={var_file}", str(template)],
        cwd=cwd,
        env=packer_env(),
        check=False,
    )
    if result.returncode != 0:
        try:
            variables = json.loads(var_file.read_text())
        except (OSError, ValueError):
            variables = {}
        redact = redactor_for(variables if isinstance(variables, dict) else {}, template)
        text = redact((result.stdout + result.stderr).strip()).replace("\n", " ")
        raise ConfigError(f"{template.name} does not validate: {text[:400]}")


def parse_machine_line(line: str) -> tuple[str, str, list[str]] | None:
    """Split a -machine-readable line into (target, type, data); None for anything else."""
    parts = line.split(",")
    if len(parts) < 3 or not parts[0].isdigit():
        return None
    data = [_unescape(p) for p in parts[2:]]
    return parts[1], data[0], data[1:]


def build(
    template: Path,
    variables: dict[str, object],
    *,
    workdir: Path,
    log: Path,
    on_message: Callable[[str], None],
    on_error: str = "cleanup",
    cache_dir: Path | None = None,
    pidfile: Path | None = None,
) -> PackerRun:
    """Run `packer build` for one stage; raise BuildError naming the log on failure.

    Packer, its plugins and its QEMU run contained and recorded in `pidfile` (see
    `command.stream`): they die with Suitcase however it dies.
    """
    if on_error not in ON_ERROR:
        raise ConfigError(f"--on-error must be one of {', '.join(ON_ERROR)}")
    redact = redactor_for(variables, template)
    console = _console_file(variables)
    if console is not None:
        # QEMU opens an existing -serial file without changing its mode: private from the start
        open_log(console).close()
    var_file = write_var_file(workdir / "variables.json", variables)
    argv = [
        "packer",
        "build",
        "-machine-readable",
        "-color=false",
        f"-on-error={on_error}",
        f"-var-file={var_file}",
        str(template),
    ]
    result = PackerRun()

    def handle(line: str) -> None:
        parsed = parse_machine_line(line)
        if parsed is None:
            if line.strip():
                on_message(line.strip())
            return
        _target, kind, data = parsed
        if kind == "ui" and len(data) >= 2:
            for text in data[1].splitlines():
                if text.strip():
                    on_message(text.rstrip())
                _note_ports(text, result)
            if data[0] == "error":
                result.errors.append(data[1].strip())
        elif kind == "artifact" and len(data) >= 3 and data[1] == "file":
            result.artifacts.append(data[3] if len(data) > 3 else data[2])

    try:
        with private_tmp() as tmp:
            code, tail = stream(
                argv,
                log=log,
                on_line=handle,
                redact=redact,
                cwd=workdir,
                # qemu-iso's QMP socket (vnc_use_password sets the VNC password through it):
                # in the 0700 folder, short enough for a socket path, gone with the run
                env={**packer_env(cache_dir), "TMPDIR": str(tmp), QMP_ENV: str(tmp / "qmp")},
                pidfile=pidfile,
                leave_running=on_error == "abort",
            )
    finally:
        var_file.unlink(missing_ok=True)  # its secrets were for Packer alone
        if console is not None:
            # the guest printed it raw: only a redacted copy stays (or none, if that failed)
            with contextlib.suppress(OSError):
                scrub_file(console, redact)
    if code != 0:
        reason = result.errors[-1] if result.errors else "see the log"
        lines = [f"packer build failed (exit {code}): {reason.splitlines()[0] if reason else ''}"]
        lines.append(f"log: {log}")
        if on_error == "abort" and result.ssh_port:
            lines.append(
                f"VM kept running: ssh -i {variables.get('ssh_private_key_file')} "
                f"-p {result.ssh_port} root@127.0.0.1"
                + (f"; VNC on 127.0.0.1:{result.vnc_port}" if result.vnc_port else "")
            )
        lines.append("last lines:")
        lines.extend("  " + t for t in tail[-10:])
        if any("Timeout waiting for SSH" in error for error in result.errors):
            raise BootTimeout("\n".join(lines))
        raise BuildError("\n".join(lines))
    return result


def _console_file(variables: dict[str, object]) -> Path | None:
    """The guest console file QEMU writes for this build, if a file of ours (not /dev/null)."""
    name = variables.get("serial_log")
    if not name:
        return None
    path = Path(str(name))
    if path.exists() and not path.is_file():
        return None
    return path if path.parent.is_dir() else None


def _note_ports(text: str, result: PackerRun) -> None:
    ssh = re.search(r"[Ff]ound port for communicator \(SSH[^)]*\): (\d+)", text)
    if ssh:
        result.ssh_port = ssh.group(1)
    # Packer prints a display number (vnc://127.0.0.1:52 is port 5952); "without a password"
    # is qemu-disk's, whose -vnc none leaves no VNC at all
    vnc = re.search(r"VNC \((?:[\d.]+):(\d+)\)|vnc://[\d.]+:(\d+),password", text)
    if vnc:
        result.vnc_port = vnc.group(1) or str(5900 + int(vnc.group(2)))
