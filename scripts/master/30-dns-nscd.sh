#!/usr/bin/env bash
# Resolver options and the name service cache daemon (when installed).
set -euo pipefail
# shellcheck source=SCRIPTDIR/../lib/suitcase.sh
. "$SUITCASE_SCRIPTS/lib/suitcase.sh"

# Short resolver timeouts; single-request-reopen avoids the A/AAAA
# same-socket problem seen on some cloud resolvers.
options="timeout:2 attempts:3 single-request-reopen"
case $SUITCASE_FAMILY in
debian)
    # dhclient rewrites resolv.conf: add the options through a hook.
    if [ -d /etc/dhcp/dhclient-enter-hooks.d ]; then
        cat > /etc/dhcp/dhclient-enter-hooks.d/suitcase-resolv-options <<HOOK
# Suitcase: resolver options appended to the resolv.conf dhclient writes.
RESOLV_CONF_OPTIONS="$options"
HOOK
        cat > /etc/dhcp/dhclient-exit-hooks.d/suitcase-resolv-options <<'HOOK'
# Suitcase: add resolver options after dhclient wrote resolv.conf.
if [ -n "${RESOLV_CONF_OPTIONS:-}" ] && [ -f /etc/resolv.conf ] && [ ! -L /etc/resolv.conf ]; then
    case $reason in
    BOUND|RENEW|REBIND|REBOOT)
        grep -q '^options ' /etc/resolv.conf || echo "options $RESOLV_CONF_OPTIONS" >> /etc/resolv.conf
        ;;
    esac
fi
HOOK
    fi
    ;;
el)
    if [ "$SUITCASE_MAJOR" -ge 9 ]; then
        f=/etc/NetworkManager/system-connections/eth0.nmconnection
        if [ -f "$f" ]; then
            nm_keyfile_dns_options "$f" "$options"
        fi
    else
        f=/etc/sysconfig/network-scripts/ifcfg-eth0
        if [ -f "$f" ]; then
            sed -i '/^RES_OPTIONS=/d' "$f"
            echo "RES_OPTIONS=\"$options\"" >> "$f"
        fi
    fi
    ;;
*) fail "unknown family $SUITCASE_FAMILY" ;;
esac

if service_exists nscd; then
    say "enabling nscd"
    enable_service nscd
else
    say "nscd not installed: skipped"
fi
