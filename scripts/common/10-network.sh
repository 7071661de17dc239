#!/usr/bin/env bash
# Classic NIC naming (eth0) and DHCP on eth0, on every image.
set -euo pipefail
# shellcheck source=SCRIPTDIR/../lib/suitcase.sh
. "$SUITCASE_SCRIPTS/lib/suitcase.sh"

say "kernel line: net.ifnames=0 biosdevname=0"
kernel_args "net.ifnames biosdevname" "net.ifnames=0 biosdevname=0"

# Rules pinning names to MAC addresses would rename eth0 on another machine.
rm -f /etc/udev/rules.d/70-persistent-net.rules /etc/udev/rules.d/75-persistent-net-generator.rules

case $SUITCASE_FAMILY in
debian)
    if [ -d /etc/systemd/network ] && systemctl is-enabled systemd-networkd >/dev/null 2>&1; then
        say "systemd-networkd: eth0 on DHCP"
        cat > /etc/systemd/network/10-eth0.network <<'NET'
[Match]
Name=eth0

[Network]
DHCP=yes
NET
    else
        say "ifupdown: eth0 on DHCP"
        mkdir -p /etc/network/interfaces.d
        if ! grep -qE '^[[:space:]]*source(-directory)?[[:space:]]+/etc/network/interfaces.d' /etc/network/interfaces 2>/dev/null; then
            echo 'source /etc/network/interfaces.d/*' >> /etc/network/interfaces
        fi
        # Drop stanzas for other names left by an installer.
        sed -i -E '/^(auto|allow-hotplug)[[:space:]]+(en|eth[1-9])/d; /^iface[[:space:]]+(en|eth[1-9])/,/^$/d' /etc/network/interfaces
        cat > /etc/network/interfaces.d/eth0 <<'NET'
allow-hotplug eth0
iface eth0 inet dhcp
NET
    fi
    ;;
el)
    if [ "$SUITCASE_MAJOR" -ge 9 ]; then
        say "NetworkManager keyfile: eth0 on DHCP"
        rm -f /etc/NetworkManager/system-connections/en*.nmconnection
        install -d -m 0755 /etc/NetworkManager/system-connections
        cat > /etc/NetworkManager/system-connections/eth0.nmconnection <<'NET'
[connection]
id=eth0
type=ethernet
interface-name=eth0
autoconnect=true

[ipv4]
method=auto

[ipv6]
method=auto
NET
        chmod 0600 /etc/NetworkManager/system-connections/eth0.nmconnection
    else
        say "ifcfg: eth0 on DHCP"
        for f in /etc/sysconfig/network-scripts/ifcfg-*; do
            [ -e "$f" ] || continue
            case ${f##*/ifcfg-} in lo|eth0) ;; *) rm -f "$f" ;; esac
        done
        cat > /etc/sysconfig/network-scripts/ifcfg-eth0 <<'NET'
DEVICE=eth0
NAME=eth0
TYPE=Ethernet
BOOTPROTO=dhcp
ONBOOT=yes
NM_CONTROLLED=no
PERSISTENT_DHCLIENT=yes
NET
        if [ "$SUITCASE_MAJOR" -ge 8 ]; then
            # EL8 has no network-scripts by default: let NetworkManager read ifcfg.
            sed -i 's/^NM_CONTROLLED=no$/NM_CONTROLLED=yes/' /etc/sysconfig/network-scripts/ifcfg-eth0
        fi
        grep -q '^NETWORKING=' /etc/sysconfig/network 2>/dev/null || echo 'NETWORKING=yes' >> /etc/sysconfig/network
    fi
    ;;
*) fail "unknown family $SUITCASE_FAMILY" ;;
esac
