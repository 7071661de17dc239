#!/usr/bin/env bash
# Per-machine identity that every instance must create for itself: SSH host
# keys, machine-id, DHCP leases, cloud-init state.
set -euo pipefail
# shellcheck source=SCRIPTDIR/../lib/suitcase.sh
. "$SUITCASE_SCRIPTS/lib/suitcase.sh"

say "removing SSH host keys (regenerated at boot)"
rm -f /etc/ssh/ssh_host_*

if [ -e /etc/machine-id ]; then
    say "emptying /etc/machine-id"
    : > /etc/machine-id
fi
rm -f /var/lib/dbus/machine-id

rm -f /var/lib/dhcp/*.leases /var/lib/dhclient/* /var/lib/NetworkManager/*.lease 2>/dev/null || true
rm -rf /var/lib/cloud/instance /var/lib/cloud/instances /var/lib/cloud/data /var/lib/cloud/sem
rm -f /etc/udev/rules.d/70-persistent-net.rules
