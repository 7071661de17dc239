#!/usr/bin/env bash
# The vagrant user: Vagrant's well-known insecure key, passwordless sudo.
# (VirtualBox guest additions are not installed: the templates use
# guest_additions_mode=disable.)
set -euo pipefail
# shellcheck source=SCRIPTDIR/../lib/suitcase.sh
. "$SUITCASE_SCRIPTS/lib/suitcase.sh"

VAGRANT_INSECURE_KEY='ssh-rsa AAAAB3NzaC1yc2EAAAABIwAAAQEA6NF8iallvQVp22WDkTkyrtvp9eWW6A8YVr+kz4TjGYe7gHzIw+niNltGEFHzD8+v1I2YJ6oXevct1YeS0o9HZyN1Q9qgCgzUFtdOKLv6IedplqoPkcmF0aYet2PkEDo3MlTBckFXPITAMzF8dJSIFo9D8HfdOV0IAdx4O7PtixWKn5y2hMNG0zQPyUecp4pzC6kivAIhyfHilFR61RGL+GPXQ2MWZWFYbAGjyiYJnAmCP3NOTd0jMZEnDkbUvxhMmBYSdETk1rRgm+R4LOzFUGaHqHDLKLX+FIPKcF96hrucXzcWyLbIbEgE98OHlnVYCzRdK8jlqm8tehUc9c9WhQ== vagrant insecure public key'

if ! id vagrant >/dev/null 2>&1; then
    say "creating user vagrant"
    useradd --create-home --shell /bin/bash --comment vagrant vagrant
fi
# No usable password (key login only); '*' is not a "locked" account, so
# sshd without PAM accepts the key too.
usermod -p '*' vagrant

home=$(getent passwd vagrant | cut -d: -f6)
install -d -m 0700 -o vagrant -g vagrant "$home/.ssh"
printf '%s\n' "$VAGRANT_INSECURE_KEY" > "$home/.ssh/authorized_keys"
chown vagrant:vagrant "$home/.ssh/authorized_keys"
chmod 0600 "$home/.ssh/authorized_keys"
if have restorecon; then restorecon -R "$home/.ssh" || true; fi

say "passwordless sudo for vagrant"
mkdir -p /etc/sudoers.d
tmp=$(mktemp /etc/sudoers.d/.vagrant.XXXXXX)
cat > "$tmp" <<'SUDO'
Defaults:vagrant !requiretty
vagrant ALL=(ALL) NOPASSWD: ALL
SUDO
chmod 0440 "$tmp"
if have visudo; then
    visudo -cf "$tmp" >/dev/null || { rm -f "$tmp"; fail "sudoers fragment rejected by visudo"; }
fi
mv -f "$tmp" /etc/sudoers.d/vagrant
# EL: make sure sudoers reads sudoers.d (EL6's may not).
if [ -f /etc/sudoers ] && ! grep -qE '^[#@]includedir[[:space:]]+/etc/sudoers.d' /etc/sudoers; then
    echo '#includedir /etc/sudoers.d' >> /etc/sudoers
fi
