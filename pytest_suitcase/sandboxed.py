"""testinfra for a mounted image: its commands run in suitcase.sandbox, never in a chroot.

Keeps the name "chroot" (facts that probe a mounted image from the host side ask for it), and
testinfra's quoting; only where the command runs changes.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from testinfra.backend.base import CommandResult
from testinfra.backend.chroot import ChrootBackend
from testinfra.host import Host

from suitcase import sandbox


class SandboxBackend(ChrootBackend):  # type: ignore[misc]
    """`/bin/sh -c COMMAND` of the image at `name`, inside the sandbox, with no host shell."""

    def run(self, command: str, *args: str, **kwargs: Any) -> CommandResult:
        cmd = self.get_command(command, *args)
        proc = subprocess.run(
            sandbox.argv(Path(self.name), ["/bin/sh", "-c", cmd]),
            capture_output=True,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        out = self.result(proc.returncode, self.encode(cmd), proc.stdout, proc.stderr)
        out.command = self.encode(cmd)
        return out


def image_host(root: Path) -> Any:
    """A testinfra host for the image mounted at `root`."""
    backend = SandboxBackend(str(root))
    host = Host(backend)
    backend.set_host(host)
    return host
