"""Identity and network: nothing of the build network travels with the image."""

import re

import pytest

from pytest_suitcase import facts

# Where each family pins an interface: (glob, patterns that pin it to a MAC or the build network).
MAC = r"([0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}"
PINNING = (
    ("/etc/udev/rules.d/*.rules", rf"ATTRS?\{{address\}}\s*==|{MAC}"),
    ("/etc/network/interfaces /etc/network/interfaces.d/*", r"^\s*hwaddress\b"),
    ("/etc/sysconfig/network-scripts/ifcfg-*", r"^\s*(HWADDR|MACADDR)\s*="),
    ("/etc/NetworkManager/system-connections/*", r"^\s*(mac-address|cloned-mac-address)\s*="),
    ("/etc/systemd/network/*", r"^\s*(MACAddress|PermanentMACAddress)\s*="),
    ("/etc/netplan/*", r"^\s*macaddress\s*:"),
)


# resolv.conf links into /run resolve only once the service that writes there runs at boot.
RUNTIME_RESOLVERS = (
    ("/run/systemd/resolve/", "systemd-resolved"),
    ("/run/NetworkManager/", "NetworkManager"),
    ("/run/resolvconf/", "resolvconf"),
    ("/run/connman/", "connman"),
)


def test_resolv_conf_has_no_build_resolver(image):
    """A baked resolver is the build network's (QEMU's 10.0.2.3): unreachable on any platform.
    A link must resolve in the image, or into /run where an enabled service writes it at boot
    (checked offline too: aws-paravirt is never booted here)."""
    path = facts.link_target(image, "/etc/resolv.conf")
    if path is not None:
        writers = [unit for prefix, unit in RUNTIME_RESOLVERS if path.startswith(prefix)]
        if writers:
            assert image.service(writers[0]).is_enabled, (
                f"/etc/resolv.conf links to {path}, which only {writers[0]} writes, "
                "and it is not enabled"
            )
        else:
            assert facts.exists(image, path), f"/etc/resolv.conf dangles (links to {path})"
    else:
        assert facts.file_type(image, "/etc/resolv.conf") is not None, (
            "/etc/resolv.conf is missing: nothing proves it is free of the build's resolver, "
            "and nothing at boot is declared to write it"
        )
        text = facts.read_required(image, "/etc/resolv.conf")
        address = facts.build_network_address(text)
        assert address is None, f"/etc/resolv.conf names the build network's {address}"
        words = [line.split()[0] for line in text.splitlines() if line.split()]
        baked = [w for w in words if w in ("nameserver", "search", "domain")]
        assert baked == [], f"/etc/resolv.conf carries the build's {sorted(set(baked))}"


@pytest.mark.suitcase_booted
def test_resolv_conf_resolves(host):
    """On the booted system resolv.conf exists (a link that resolves) and names a resolver."""
    text = facts.read(host, "/etc/resolv.conf")
    assert text is not None, "/etc/resolv.conf is missing or a dangling link"
    assert re.search(r"^\s*nameserver\s+\S+", text, re.M), "/etc/resolv.conf names no nameserver"


def test_no_interface_pinned_to_the_build_network(image):
    """A MAC or a 10.0.2.x address of the build VM renames or misconfigures the NIC elsewhere."""
    pinned = []
    for pattern, regex in PINNING:
        for path in facts.glob(image, pattern):
            if facts.file_type(image, path) != "f":
                continue
            text = facts.read_required(image, path)
            if re.search(regex, text, re.M):
                pinned.append(path)
            elif facts.build_network_address(text):
                pinned.append(f"{path} ({facts.build_network_address(text)})")
    assert pinned == [], f"interfaces pinned to the build machine or network: {pinned}"
