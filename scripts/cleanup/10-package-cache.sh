#!/usr/bin/env bash
# Package manager caches.
set -euo pipefail
# shellcheck source=SCRIPTDIR/../lib/suitcase.sh
. "$SUITCASE_SCRIPTS/lib/suitcase.sh"

case $SUITCASE_FAMILY in
debian)
    say "apt-get clean"
    apt-get clean
    rm -f /var/cache/apt/*.bin
    ;;
el)
    if have dnf; then
        say "dnf clean all"
        dnf clean all >/dev/null
    else
        say "yum clean all"
        yum clean all >/dev/null
    fi
    rm -rf /var/cache/yum/* /var/cache/dnf/*
    ;;
*) fail "unknown family $SUITCASE_FAMILY" ;;
esac
# Guest additions ISO that a VirtualBox build may upload.
rm -f /root/VBoxGuestAdditions*.iso /home/*/VBoxGuestAdditions*.iso
