"""testinfra's paramiko backend, taught to log in to old sshd (EL6, CentOS 7.0) as well as new."""

from __future__ import annotations

import functools
from typing import Any

import paramiko
from testinfra.backend.paramiko import ParamikoBackend
from testinfra.host import Host

from suitcase.keys import connect_options
from suitcase.machine import Login


class SuitcaseParamikoBackend(ParamikoBackend):  # type: ignore[misc]
    """Connects like testinfra's backend, plus ssh-rsa for an RSA key against OpenSSH < 7.2.

    paramiko signs with rsa-sha2-512 when the server sends no server-sig-algs, which OpenSSH
    before 7.2 neither sends nor understands; see suitcase.keys.connect_options.
    """

    @functools.cached_property
    def client(self) -> paramiko.SSHClient:
        client = paramiko.SSHClient()
        # every verification boot has fresh host keys: there is nothing to check them against
        client.set_missing_host_key_policy(paramiko.WarningPolicy())
        port = int(self.host.port) if self.host.port else 22
        login: Login | None = getattr(self, "login", None)
        opener = login.connect if login is not None else None
        options = connect_options(self.host.name, port, self.timeout, opener)  # probe first
        client.connect(
            self.host.name,
            port=port,
            sock=opener(self.timeout) if opener else None,
            username=self.host.user,
            key_filename=self.ssh_identity_file,
            timeout=self.timeout,
            allow_agent=False,
            look_for_keys=False,
            **options,
        )
        return client


def ssh_host(login: Login) -> Any:
    """A testinfra host for a booted VM (`sudo` when the login is not root)."""
    backend = SuitcaseParamikoBackend(
        f"{login.user}@127.0.0.1:{login.port}",
        ssh_identity_file=str(login.key),
        sudo=login.user != "root",
    )
    backend.login = login  # connects through the VM's own network (suitcase.netns)
    host = Host(backend)
    backend.set_host(host)
    return host
