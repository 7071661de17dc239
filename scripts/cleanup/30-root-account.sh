#!/usr/bin/env bash
# root: password locked; authorized_keys by stage:
#   master        keeps the build key (derived stages and verification use it)
#   vagrant       empty
#   aws-*         a single newline (cloud-init adds the instance's key)
set -euo pipefail
# shellcheck source=SCRIPTDIR/../lib/suitcase.sh
. "$SUITCASE_SCRIPTS/lib/suitcase.sh"

say "locking root's password"
if have usermod; then
    usermod -L root
else
    passwd -l root >/dev/null
fi

case $SUITCASE_STAGE in
master) mode=keep ;;
vagrant) mode=empty ;;
aws-hvm|aws-paravirt) mode=newline ;;
*) fail "unknown stage $SUITCASE_STAGE" ;;
esac
say "root's authorized_keys: $mode"
write_root_authorized_keys "$mode"
