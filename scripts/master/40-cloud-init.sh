#!/usr/bin/env bash
# cloud-init configuration, written in the master but disabled there: the
# AWS stages enable it.
set -euo pipefail
# shellcheck source=SCRIPTDIR/../lib/suitcase.sh
. "$SUITCASE_SCRIPTS/lib/suitcase.sh"

if [ ! -d /etc/cloud ]; then
    # EL6 releases whose repositories carry no cloud-init (6.5's extras) build masters without
    # it; Suitcase refuses their AWS stages before any VM starts (suitcase/media.py).
    if [ "$SUITCASE_FAMILY" = el ] && [ "$SUITCASE_MAJOR" -eq 6 ]; then
        say "cloud-init is not installed: nothing to configure (no AWS images of this OS)"
        exit 0
    fi
    fail "cloud-init is not installed (/etc/cloud missing): install it in the master"
fi
mkdir -p /etc/cloud/cloud.cfg.d
say "writing /etc/cloud/cloud.cfg.d/90-suitcase.cfg"
cat > /etc/cloud/cloud.cfg.d/90-suitcase.cfg <<'CFG'
# Suitcase: images log in as root with the instance's key pair; no
# distribution default user is created.
# The platform's datasource only: with NoCloud listed, any volume labelled cidata attached
# to an instance would configure it (a new instance-id, its user-data run and its keys
# installed as root). Verification boots add NoCloud to a copy of the disk, never here.
datasource_list: [ Ec2, None ]
disable_root: false
# sshd already refuses passwords (scripts/common/20-sshd.sh). "false" here would make
# cloud-init rewrite sshd_config and restart sshd during first boot, resetting any
# login in progress; "unchanged" leaves it alone.
ssh_pwauth: unchanged
users: []
ssh_deletekeys: true
preserve_hostname: false
manage_etc_hosts: true
CFG
chmod 0644 /etc/cloud/cloud.cfg.d/90-suitcase.cfg

# Installer/bootstrap state must not leak into instances.
rm -rf /var/lib/cloud/instance /var/lib/cloud/instances /var/lib/cloud/data /var/lib/cloud/sem

say "cloud-init disabled in the master"
cloud_init off
