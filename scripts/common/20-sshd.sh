#!/usr/bin/env bash
# sshd: root by key only, no passwords, on every image.
set -euo pipefail
# shellcheck source=SCRIPTDIR/../lib/suitcase.sh
. "$SUITCASE_SCRIPTS/lib/suitcase.sh"

case $SUITCASE_FAMILY in
debian) root_login=prohibit-password ;;
el)
    if [ "$SUITCASE_MAJOR" -le 7 ]; then
        root_login=without-password
    else
        root_login=prohibit-password
    fi
    ;;
*) fail "unknown family $SUITCASE_FAMILY" ;;
esac

config=/etc/ssh/sshd_config
[ -f "$config" ] || fail "$config not found"
# sshd takes the first value it reads for an option. Where sshd_config
# includes sshd_config.d first (Debian 12, EL9), a drop-in named 01-* wins;
# elsewhere the options go at the top of sshd_config (before any Match).
settings="PermitRootLogin $root_login
PasswordAuthentication no
ChallengeResponseAuthentication no
UseDNS no"

# Remove our earlier lines and conflicting active ones from the main file.
sed -i -E '/^[[:space:]]*(PermitRootLogin|PasswordAuthentication|ChallengeResponseAuthentication|UseDNS)[[:space:]]/d; /^# suitcase:/d' "$config"
if grep -qE '^[[:space:]]*Include[[:space:]]+/etc/ssh/sshd_config.d/' "$config"; then
    say "drop-in /etc/ssh/sshd_config.d/01-suitcase.conf (PermitRootLogin $root_login)"
    mkdir -p /etc/ssh/sshd_config.d
    rm -f /etc/ssh/sshd_config.d/50-suitcase.conf
    printf '# suitcase: root by key only\n%s\n' "$settings" > /etc/ssh/sshd_config.d/01-suitcase.conf
    chmod 0644 /etc/ssh/sshd_config.d/01-suitcase.conf
else
    say "top of $config (PermitRootLogin $root_login)"
    tmp=$(mktemp "$config.XXXXXX")
    printf '# suitcase: root by key only\n%s\n' "$settings" | cat - "$config" > "$tmp"
    chmod 0600 "$tmp"
    mv -f "$tmp" "$config"
fi
if have restorecon; then restorecon "$config" || true; fi

# Test the configuration (host keys exist while the build runs).
sshd_bin=$(command -v sshd || echo /usr/sbin/sshd)
"$sshd_bin" -t || fail "sshd -t rejects the configuration"
