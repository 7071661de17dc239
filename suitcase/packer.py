"""The Packer runner: var-file in, live progress out, a redacted log per stage, artifacts parsed.

Packer 1.6.6 prints sensitive variables unmasked in -machine-readable mode, so its stream is only
ever shown or logged through a Redactor.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from suitcase.command import Redactor, require, run, stream
from suitcase.errors import BootTimeout, BuildError, ConfigError, ToolError
from suitcase.manifest import write_atomic

ON_ERROR = ("cleanup", "abort", "ask", "run-cleanup-provisioner")
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
    return env


def write_var_file(path: Path, variables: dict[str, object]) -> Path:
    """Packer user variables are strings; the file is private to the build folder."""
    values = {k: _as_string(v) for k, v in variables.items()}
    write_atomic(path, json.dumps(values, indent=2, sort_keys=True) + "\n", mode=0o600)
    return path


def _as_string(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def redactor_for(variables: dict[str, object]) -> Redactor:
    return Redactor(str(v) for k, v in variables.items() if _SENSITIVE_NAME.search(k))


def validate(template: Path, var_file: Path, cwd: Path | None = None) -> None:
    """`packer validate`; raises ConfigError with Packer's own words on failure."""
    result = run(
        ["packer", "validate", f"-var-file={var_file}", str(template)],
        cwd=cwd,
        env=packer_env(),
        check=False,
    )
    if result.returncode != 0:
        text = (result.stdout + result.stderr).strip().replace("\n", " ")
        raise ConfigError(f"{template.name} does not validate: {text[:400]}")


def parse_machine_line(line: str) -> tuple[str, str, list[str]] | None:
    """Split a -machine-readable line into (target, type, data); None for anything else."""
    parts = line.split(",")
    if len(parts) < 3 or not parts[0].isdigit():
        return None
    data = [p.replace("%!(PACKER_COMMA)", ",").replace("\\n", "\n") for p in parts[2:]]
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

    code, tail = stream(
        argv,
        log=log,
        on_line=handle,
        redact=redactor_for(variables),
        cwd=workdir,
        env=packer_env(cache_dir),
        pidfile=pidfile,
        leave_running=on_error == "abort",
    )
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


def _note_ports(text: str, result: PackerRun) -> None:
    ssh = re.search(r"[Ff]ound port for communicator \(SSH[^)]*\): (\d+)", text)
    if ssh:
        result.ssh_port = ssh.group(1)
    vnc = re.search(r"[Ff]ound available VNC port: (\d+)|vnc://[\d.]+:(\d+)", text)
    if vnc:
        result.vnc_port = vnc.group(1) or vnc.group(2)
