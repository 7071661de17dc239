#!/usr/bin/env bash
# State the build's own boots and logins leave: DHCP leases, the resolver of the build network
# (QEMU's 10.0.2.3) in resolv.conf, journals, wtmp/btmp/lastlog, package lists, cloud-init
# state, files in /root, nscd's caches, the random seed and the persistent timers' stamps.
# Scrubbed now, and on systemd once more at the very end of the build's shutdown: dhclient's
# release, systemd-update-utmp's shutdown record, the random seed and the journal of the
# shutdown itself are written after this script ran.
set -euo pipefail
# shellcheck source=SCRIPTDIR/../lib/suitcase.sh
. "$SUITCASE_SCRIPTS/lib/suitcase.sh"

# What the build's shutdown may write again (kept as one script so both runs do the same).
SCRUB=$(cat <<'SCRUB'
rm -f /var/lib/dhcp/*.leases /var/lib/dhcp/*.lease /var/lib/dhclient/* \
    /var/lib/NetworkManager/*.lease /var/lib/dhcpcd/* 2>/dev/null
# dhclient/NetworkManager write the instance's own resolver at boot: an empty file, not a
# baked one (a symlink, e.g. to systemd-resolved's, is the distribution's choice and stays).
if [ -f /etc/resolv.conf ] && [ ! -L /etc/resolv.conf ]; then
    : > /etc/resolv.conf
    chmod 0644 /etc/resolv.conf
fi
# Emptied, not removed: sysvinit (EL6) never recreates them; systemd-tmpfiles would.
for f in /var/log/wtmp /var/log/btmp /var/log/lastlog; do
    if [ -f "$f" ]; then : > "$f"; fi
done
if [ -d /var/log/journal ]; then
    # journald keeps /var/log/journal open to the very end (systemd-journal-flush's stop only
    # relinquishes /var when it is a mount of its own) and may open a new file there after the
    # folder is emptied: it is sent to /run first (systemd 243+; older ones keep the ordering)
    journalctl --relinquish-var >/dev/null 2>&1 || true
    find /var/log/journal -mindepth 1 -maxdepth 1 -exec rm -rf {} +
fi
# nscd's persistent caches hold the build's lookups (hosts, users); nscd writes them on stop.
rm -f /var/cache/nscd/* /var/db/nscd/* 2>/dev/null
# Every instance would share the build's random seed (systemd-random-seed saves it at
# shutdown, and loads it at the next boot: each instance would start from the same one) and
# the build's times of the persistent timers (apt-daily, fstrim, ...: when they last ran).
rm -f /var/lib/systemd/random-seed /var/lib/systemd/timers/stamp-* 2>/dev/null
true
SCRUB
)

say "DHCP leases, resolv.conf, wtmp/btmp/lastlog, journals"
bash -c "$SCRUB"

if [ -d /run/systemd/system ] && have systemctl; then
    # Runs its ExecStop after the units named in Before= have stopped (stop order is the reverse
    # of start order): after ifdown released the lease, after the utmp shutdown record, after
    # journald left /var (systemd-journal-flush's stop). It lives in /run: it never ships.
    say "the same once more at the end of this boot's shutdown (suitcase-scrub.service)"
    printf '%s\n' "$SCRUB" > /run/suitcase-scrub.sh
    cat > /run/systemd/system/suitcase-scrub.service <<'UNIT'
[Unit]
Description=Suitcase: scrub what the build's shutdown writes
DefaultDependencies=no
RequiresMountsFor=/var/log /var/lib
Conflicts=shutdown.target
Before=shutdown.target systemd-update-utmp.service systemd-journal-flush.service
Before=systemd-random-seed.service
Before=networking.service network.service NetworkManager.service systemd-networkd.service
Before=ifup@eth0.service dhclient.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/true
ExecStop=/bin/bash /run/suitcase-scrub.sh
UNIT
    systemctl daemon-reload
    systemctl start suitcase-scrub.service
elif [ -d /etc/rc.d/rc0.d ]; then
    # sysvinit (EL6): an S00 script of runlevel 0 runs after every K script stopped the network
    # and before halt; it removes itself, so it never ships.
    hook=/etc/rc.d/rc0.d/S00suitcase-scrub
    say "the same once more at the end of this boot's shutdown ($hook)"
    { printf '#!/bin/bash\n'; printf '%s\n' "$SCRUB"; printf 'rm -f %s\n' "$hook"; } > "$hook"
    chmod 0755 "$hook"
fi

say "package lists"
if [ -d /var/lib/apt/lists ]; then
    find /var/lib/apt/lists -mindepth 1 -maxdepth 1 ! -name lock ! -name partial ! -name auxfiles \
        -exec rm -rf {} +
    find /var/lib/apt/lists/partial /var/lib/apt/lists/auxfiles -mindepth 1 -delete 2>/dev/null || true
fi
rm -rf /var/cache/dnf/* /var/cache/yum/*

say "cloud-init state (its shipped scripts/ folders stay)"
if [ -d /var/lib/cloud ]; then
    find /var/lib/cloud -mindepth 1 -maxdepth 1 ! -name scripts -exec rm -rf {} +
fi

say "/root: only the shell skeleton and .ssh/authorized_keys"
# Answer files and logs of the installer (anaconda-ks.cfg, original-ks.cfg, install.log,
# the kickstart's %post log), caches, known_hosts: nothing of the build ships in /root.
find /root -mindepth 1 -maxdepth 1 ! -name .bashrc ! -name .profile ! -name .bash_profile \
    ! -name .bash_logout ! -name .cshrc ! -name .tcshrc ! -name .ssh -exec rm -rf {} +
if [ -d /root/.ssh ]; then
    find /root/.ssh -mindepth 1 -maxdepth 1 ! -name authorized_keys -exec rm -rf {} +
fi
